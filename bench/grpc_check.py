#!/usr/bin/env python3
"""One gRPC unary call with a real grpcio client, as bench/run-h2.sh's check that
a proxy passes gRPC correctly before it is measured (status OK from the
trailers, the echoed message intact).

    grpc_check.py HOST:PORT REQUEST_FILE

REQUEST_FILE is the h2load request body: a 5-byte gRPC prefix and the message.
Calls /mosn.test.Echo/Unary and expects the message back unchanged with status
OK. Prints one line; exit status 0 when that holds. Runs with the repo's test
venv (.venv), which has grpcio.
"""
import sys

import grpc


def main():
    target, path = sys.argv[1], sys.argv[2]
    with open(path, "rb") as f:
        message = f.read()[5:]
    options = [("grpc.enable_retries", 0), ("grpc.enable_http_proxy", 0)]
    with grpc.insecure_channel(target, options=options) as channel:
        call = channel.unary_unary("/mosn.test.Echo/Unary")  # bytes in, bytes out
        try:
            reply, c = call.with_call(message, timeout=5)
        except grpc.RpcError as e:
            print("grpc_check %s: %s %s" % (target, e.code(), e.details()))
            return 1
    ok = c.code() == grpc.StatusCode.OK and reply == message
    print("grpc_check %s: %s, reply %s" % (target, c.code().name,
                                           "echoed" if reply == message else repr(reply)))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
