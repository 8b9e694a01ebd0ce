#!/usr/bin/env python3
"""A grpcio client for black-box tests: runs one case against TARGET (host:port,
plaintext HTTP/2 prior knowledge) and prints one JSON line with what happened.
Exit status 0 when the case's expectation holds, 1 when not (the JSON says why).

    grpc_client.py [--metadata K=V]... [--authority A] TARGET CASE [ARGS]

Cases:
    unary [TEXT]            echo of text and payload, trailing metadata x-trailer: done
                            and binary x-bin-bin: 00 01 02
    unary_status N          the server ends the call with status N; expects code N and
                            message "requested"
    client_stream N         N messages up, one answer: concatenated texts, count N
    server_stream N         N messages down, in order, then OK
    bidi N                  N round trips on one stream, each message sent only after
                            the previous echo arrived (needs true full duplex)
    large BYTES             a payload of BYTES bytes up and back, unchanged
    deadline MS             the server waits 2000 ms, the call has a deadline of MS ms;
                            expects DEADLINE_EXCEEDED in well under 2 s
    cancel                  a server stream of 1000 messages 50 ms apart; cancels after
                            the first; expects CANCELLED with 1 message received
    concurrent N            N unary calls at once on one channel; all must succeed
    health SERVICE [STATUS] grpc.health.v1 Check of SERVICE ("" for the server);
                            expects STATUS (default SERVING; NOT_SERVING, or a gRPC
                            code such as NOT_FOUND or UNIMPLEMENTED when the call fails)

Every call has a deadline (5 s unless the case sets one), so no case hangs.
Transparent retries and HTTP proxies from the environment are off.
"""

import argparse
import json
import os
import queue
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import grpc  # noqa: E402
import pbgen  # noqa: E402

pb, pb_grpc = pbgen.load()
CODES = pbgen.status_codes()
TIMEOUT = 5.0


def md_dict(md):
    out = {}
    for k, v in md or ():
        out[k] = v.hex() if isinstance(v, bytes) else v
    return out


def code_name(code):
    return code.name if code is not None else None


def rpc_error(e):
    """The fields of a failed call."""
    r = {"code": code_name(e.code()), "details": e.details()}
    try:
        r["trailing_metadata"] = md_dict(e.trailing_metadata())
    except Exception:  # not every RpcError is a Call
        pass
    return r


def pattern(n):
    block = bytes(range(256))
    return (block * (n // 256 + 1))[:n]


class Runner:
    def __init__(self, channel, metadata):
        self.stub = pb_grpc.EchoStub(channel)
        self.channel = channel
        self.md = metadata

    def case_unary(self, text="hello"):
        payload = b"\x00\xffbin"
        resp, call = self.stub.Unary.with_call(
            pb.Msg(text=text, payload=payload, count=7), timeout=TIMEOUT, metadata=self.md)
        trailers = call.trailing_metadata()
        raw = dict(trailers)
        r = {
            "code": code_name(call.code()),
            "text": resp.text,
            "count": resp.count,
            "initial_metadata": md_dict(call.initial_metadata()),
            "trailing_metadata": md_dict(trailers),
        }
        r["ok"] = (resp.text == text and resp.payload == payload and resp.count == 7
                   and raw.get("x-trailer") == "done"
                   and raw.get("x-bin-bin") == b"\x00\x01\x02")
        return r

    def case_unary_status(self, n):
        n = int(n)
        try:
            self.stub.Unary(pb.Msg(text="s", status=n), timeout=TIMEOUT, metadata=self.md)
            return {"ok": False, "code": "OK", "expected": code_name(CODES.get(n))}
        except grpc.RpcError as e:
            r = rpc_error(e)
            r["expected"] = code_name(CODES.get(n))
            r["ok"] = e.code() == CODES.get(n) and e.details() == "requested"
            return r

    def case_client_stream(self, n):
        n = int(n)
        msgs = [pb.Msg(text="m%d," % i, payload=b"p") for i in range(n)]
        resp = self.stub.ClientStream(iter(msgs), timeout=TIMEOUT, metadata=self.md)
        want = "".join(m.text for m in msgs)
        return {"ok": resp.text == want and resp.count == n and resp.payload == b"p" * n,
                "code": "OK", "count": resp.count, "text_len": len(resp.text)}

    def case_server_stream(self, n):
        n = int(n)
        got = []
        call = self.stub.ServerStream(pb.Msg(text="s", count=n), timeout=TIMEOUT, metadata=self.md)
        for m in call:
            got.append((m.text, m.count))
        want = [("s%d" % i, i) for i in range(n)]
        return {"ok": got == want and call.code() == grpc.StatusCode.OK,
                "code": code_name(call.code()), "received": len(got)}

    def case_bidi(self, n):
        n = int(n)
        outbox = queue.Queue()

        def requests():
            while True:
                m = outbox.get()
                if m is None:
                    return
                yield m

        call = self.stub.Bidi(requests(), timeout=TIMEOUT, metadata=self.md)
        got, good = 0, True
        try:
            for i in range(n):
                outbox.put(pb.Msg(text="b%d" % i))
                m = next(call)
                good = good and m.text == "b%d" % i and m.count == i
                got += 1
        finally:
            outbox.put(None)
        rest = list(call)  # the server ends the stream after our end
        return {"ok": good and got == n and not rest and call.code() == grpc.StatusCode.OK,
                "code": code_name(call.code()), "round_trips": got}

    def case_large(self, size):
        size = int(size)
        data = pattern(size)
        resp = self.stub.Unary(pb.Msg(text="large", payload=data), timeout=TIMEOUT, metadata=self.md)
        return {"ok": resp.payload == data, "code": "OK", "bytes": len(resp.payload)}

    def case_deadline(self, ms):
        ms = int(ms)
        start = time.monotonic()
        try:
            self.stub.Unary(pb.Msg(text="slow", delay_ms=2000), timeout=ms / 1000.0, metadata=self.md)
            r = {"code": "OK"}
        except grpc.RpcError as e:
            r = rpc_error(e)
        elapsed = int((time.monotonic() - start) * 1000)
        r["elapsed_ms"] = elapsed
        r["ok"] = r["code"] == "DEADLINE_EXCEEDED" and elapsed < 1900
        return r

    def case_cancel(self):
        call = self.stub.ServerStream(pb.Msg(text="c", count=1000, delay_ms=50),
                                      timeout=TIMEOUT, metadata=self.md)
        received = 0
        r = {}
        try:
            for _ in call:
                received += 1
                if received == 1:
                    call.cancel()
            r["code"] = code_name(call.code())
        except grpc.RpcError as e:
            r.update(rpc_error(e))
        r["received"] = received
        r["ok"] = r["code"] == "CANCELLED" and received == 1
        return r

    def case_concurrent(self, n):
        n = int(n)
        futs = [self.stub.Unary.future(pb.Msg(text="c%d" % i, count=i), timeout=TIMEOUT,
                                       metadata=self.md) for i in range(n)]
        ok, codes = 0, {}
        for i, f in enumerate(futs):
            try:
                m = f.result()
                c = "OK"
                if m.text == "c%d" % i and m.count == i:
                    ok += 1
            except grpc.RpcError as e:
                c = code_name(e.code())
            codes[c] = codes.get(c, 0) + 1
        return {"ok": ok == n, "code": "OK" if ok == n else "MIXED", "succeeded": ok, "codes": codes}

    def case_health(self, service, expected="SERVING"):
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        stub = health_pb2_grpc.HealthStub(self.channel)
        try:
            resp = stub.Check(health_pb2.HealthCheckRequest(service=service),
                              timeout=TIMEOUT, metadata=self.md)
        except grpc.RpcError as e:
            r = rpc_error(e)
            r["expected"] = expected
            r["ok"] = r["code"] == expected  # e.g. NOT_FOUND for an unknown service
            return r
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)
        return {"ok": status == expected, "code": "OK", "status": status, "expected": expected}


def main():
    ap = argparse.ArgumentParser(description="mosn-rs test gRPC client")
    ap.add_argument("--metadata", action="append", default=[], metavar="K=V",
                    help="request metadata on every call (repeatable)")
    ap.add_argument("--authority", help=":authority to send instead of TARGET")
    ap.add_argument("target")
    ap.add_argument("case")
    ap.add_argument("args", nargs="*")
    a = ap.parse_args()

    metadata = [tuple(kv.split("=", 1)) for kv in a.metadata]
    options = [
        ("grpc.max_send_message_length", pbgen.MAX_MESSAGE),
        ("grpc.max_receive_message_length", pbgen.MAX_MESSAGE),
        ("grpc.enable_retries", 0),
        ("grpc.enable_http_proxy", 0),
    ]
    if a.authority:
        options.append(("grpc.default_authority", a.authority))
    result = {"case": a.case, "args": a.args, "target": a.target}
    fn = getattr(Runner, "case_" + a.case, None)
    if fn is None:
        result.update(ok=False, error="unknown case %r" % a.case)
    else:
        channel = grpc.insecure_channel(a.target, options=options)
        try:
            result.update(fn(Runner(channel, metadata), *a.args))
        except grpc.RpcError as e:
            result.update(rpc_error(e))
            result["ok"] = False
        except Exception as e:  # a wrong argument or a broken peer: still one JSON line
            result.update(ok=False, error="%s: %s" % (type(e).__name__, e))
        finally:
            channel.close()
    print(json.dumps(result, sort_keys=True), flush=True)
    return 0 if result.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
