#!/usr/bin/env python3
"""The grpcio upstream of bench/run-h2.sh's grpc-py scenario: a real gRPC server
(grpcio's asyncio server, C core HTTP/2) on 127.0.0.1:PORT in plaintext h2c,
serving /mosn.test.Echo/Unary (tests/peers/echo.proto) by echoing the request
message back unchanged. Bytes in, bytes out: no protobuf (de)serialisation and
no per-call logging, so the server spends as little Python as grpcio allows.

    grpc_upstream.py PORT

Prints "READY <port>" once serving; stops on SIGTERM/SIGINT. Runs with the
repo's test venv (.venv, scripts/setup.sh), which has grpcio.
"""
import asyncio
import signal
import sys

import grpc


async def unary(request, context):
    return request


async def main(port):
    handler = grpc.method_handlers_generic_handler(
        "mosn.test.Echo", {"Unary": grpc.unary_unary_rpc_method_handler(unary)})
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((handler,))
    bound = server.add_insecure_port("127.0.0.1:%d" % port)
    if not bound:
        sys.exit("grpc_upstream: cannot listen on 127.0.0.1:%d" % port)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("READY %d" % bound, flush=True)
    await stop.wait()
    await server.stop(0.2)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
