#!/usr/bin/env python3
"""A grpcio server for black-box tests: serves mosn.test.Echo (echo.proto) on
127.0.0.1:PORT in plaintext HTTP/2 (h2c).

    grpc_server.py PORT [--health]

PORT 0 picks a free port. Once serving it prints "READY <port>" on stdout; after that
one line per event, each "<KIND> <method> <json>":
    CALL Unary {"peer": "ipv4:127.0.0.1:5555", "metadata": {"user-agent": "..."}}
    CANCEL ServerStream {"sent": 1}     (the call ended before the handler finished:
                                         client cancel, deadline, reset stream; sent =
                                         messages handed to grpcio so far)
It exits on SIGTERM or SIGINT, and when its stdin reaches EOF (so a test that dies
never leaves it behind; run it with stdin open, not < /dev/null).

Behaviour of every method: `delay_ms` sleeps before each answer; `status` != 0 ends
the call with that gRPC status code and message "requested".
    Unary         echoes text, payload and count; trailing metadata x-trailer: done
                  and x-bin-bin: 00 01 02 (also on errors)
    ClientStream  one answer: the texts and payloads concatenated, count = messages
    ServerStream  `count` messages, text "<text><i>", count i, payload echoed
    Bidi          echoes each message as it arrives, count = its index
--health serves grpc.health.v1.Health with SERVING for "" and "mosn.test.Echo";
SIGUSR1 turns both to NOT_SERVING, SIGUSR2 back to SERVING.
Messages up to 8 MiB both ways.
"""

import argparse
import json
import os
import signal
import sys
import threading
import time
from concurrent import futures

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import grpc  # noqa: E402
import pbgen  # noqa: E402
import peer_lifetime  # noqa: E402

pb, pb_grpc = pbgen.load()
CODES = pbgen.status_codes()
TRAILERS = (("x-trailer", "done"), ("x-bin-bin", b"\x00\x01\x02"))

_out_lock = threading.Lock()


def emit(line):
    with _out_lock:
        try:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        except (OSError, ValueError):
            pass


def md_json(ctx):
    md = {}
    for k, v in ctx.invocation_metadata():
        md[k] = v.hex() if isinstance(v, bytes) else v
    return md


def nap(ms, ctx):
    """Sleeps ms milliseconds; False when the call ended meanwhile."""
    end = time.monotonic() + ms / 1000.0
    while True:
        if not ctx.is_active():
            return False
        left = end - time.monotonic()
        if left <= 0:
            return True
        time.sleep(min(left, 0.01))


class Tracker:
    """Logs CALL at start and CANCEL when the call ends before the handler finished."""

    def __init__(self, method, ctx):
        self.method = method
        self.sent = 0
        self.done = False
        emit("CALL %s %s" % (method, json.dumps({"peer": ctx.peer(), "metadata": md_json(ctx)})))
        ctx.add_callback(self._ended)

    def _ended(self):
        if not self.done:
            emit("CANCEL %s %s" % (self.method, json.dumps({"sent": self.sent})))

    def abort(self, ctx, status):
        self.done = True
        ctx.abort(CODES.get(status, grpc.StatusCode.UNKNOWN), "requested")


class Echo(pb_grpc.EchoServicer):
    def Unary(self, req, ctx):
        t = Tracker("Unary", ctx)
        if req.delay_ms and not nap(req.delay_ms, ctx):
            return pb.Msg()
        ctx.set_trailing_metadata(TRAILERS)
        if req.status:
            t.abort(ctx, req.status)
        t.done = True
        return pb.Msg(text=req.text, payload=req.payload, count=req.count)

    def ClientStream(self, reqs, ctx):
        t = Tracker("ClientStream", ctx)
        texts, payloads, n, delay, status = [], [], 0, 0, 0
        for r in reqs:
            texts.append(r.text)
            payloads.append(r.payload)
            n += 1
            delay = delay or r.delay_ms
            status = r.status or status
        if delay and not nap(delay, ctx):
            return pb.Msg()
        if status:
            t.abort(ctx, status)
        t.done = True
        return pb.Msg(text="".join(texts), payload=b"".join(payloads), count=n)

    def ServerStream(self, req, ctx):
        t = Tracker("ServerStream", ctx)
        for i in range(req.count):
            if req.delay_ms and not nap(req.delay_ms, ctx):
                return
            t.sent += 1  # counted before the yield: a cancel may never resume us
            yield pb.Msg(text="%s%d" % (req.text, i), payload=req.payload, count=i)
        if req.status:
            t.abort(ctx, req.status)
        t.done = True

    def Bidi(self, reqs, ctx):
        t = Tracker("Bidi", ctx)
        for r in reqs:
            if r.delay_ms and not nap(r.delay_ms, ctx):
                return
            if r.status:
                t.abort(ctx, r.status)
            t.sent += 1
            yield pb.Msg(text=r.text, payload=r.payload, count=t.sent - 1)
        t.done = True


def main():
    ap = argparse.ArgumentParser(description="mosn-rs test gRPC server")
    ap.add_argument("port", type=int)
    ap.add_argument("--health", action="store_true")
    args = ap.parse_args()

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=256),
        options=[
            ("grpc.max_send_message_length", pbgen.MAX_MESSAGE),
            ("grpc.max_receive_message_length", pbgen.MAX_MESSAGE),
            ("grpc.so_reuseport", 0),
        ],
    )
    pb_grpc.add_EchoServicer_to_server(Echo(), server)

    health = None
    if args.health:
        from grpc_health.v1 import health as hmod
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        health = hmod.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health, server)

        def set_all(status):
            for name in ("", "mosn.test.Echo"):
                health.set(name, status)

        set_all(health_pb2.HealthCheckResponse.SERVING)
        signal.signal(signal.SIGUSR1, lambda *_: set_all(health_pb2.HealthCheckResponse.NOT_SERVING))
        signal.signal(signal.SIGUSR2, lambda *_: set_all(health_pb2.HealthCheckResponse.SERVING))

    try:
        port = server.add_insecure_port("127.0.0.1:%d" % args.port)
    except RuntimeError as e:
        port, err = 0, e
    else:
        err = "port in use"
    if not port:
        sys.stderr.write("grpc_server: cannot listen on 127.0.0.1:%d: %s\n" % (args.port, err))
        return 2
    server.start()

    stop = peer_lifetime.stop_event()

    emit("READY %d" % port)
    while not stop.wait(0.2):
        pass
    server.stop(grace=0.3).wait(2)
    # os._exit: see peer_lifetime.stop_event.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
