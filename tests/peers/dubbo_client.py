#!/usr/bin/env python3
"""A Dubbo consumer for black-box tests, on dubbo-ssl-python 0.9.6 (its own Dubbo codec
and hessian2 encoder; a second implementation beside the Node one in node/).

    dubbo_client.py [OPTIONS] HOST:PORT CASE [ARGS]

It connects straight to HOST:PORT (DubboClient's `host=` argument: no zookeeper), runs
one case and prints one JSON line; exit status 0 when the case held.

Cases:
    echo N C        N calls of echo(String) from C threads at once; the library sends
                    them all on its one connection per host, matched by invoke id.
                    Each answer must be "<tag>:<its own request>". JSON: calls,
                    matched, mismatched, errors, error_samples, tags, p50_ms, p99_ms,
                    max_ms, ms
    sleep MS        one sleep(MS) call that must succeed
    timeout MS T    sleep(MS) with a T ms timeout: must fail with the library's
                    DubboRequestTimeoutException (defaults 2000 300)
    fail            fail() must come back as an error carrying the server's message
    heartbeat       one echo, then the library's own heartbeat (0xdabbe2, body "N");
                    the answer must arrive (see heartbeat() for the library bug this
                    works around)
    capture         echo("hello"), fail(), heartbeat, in sequence (for fixtures)
Options:
    --service NAME      interface (default com.mosn.test.DubboEcho)
    --version V         service version (default 1.0.0)
    --group G           the "group" attachment (default empty)
    --dubbo-version D   the Dubbo protocol version in the body (default 2.0.2)
    --timeout MS        timeout per call (default 3000)
    --size BYTES        pad each echo request with BYTES more characters
    --expect-tag TAG    echo: every answer must carry this tag

The library's first connection to a host costs 0.5 s (it sleeps so its select loop
sees the new socket), and call() without a timeout waits forever: every call here
has one.
"""

import json
import logging
import os
import random
import string
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

from dubbo_ssl.client import DubboClient  # noqa: E402
from dubbo_ssl.connection.connections import connection_pool  # noqa: E402

logging.basicConfig(level=logging.CRITICAL, stream=sys.stderr)


def finish(out, kase, t0):
    out["case"] = kase
    out["ms"] = int((time.monotonic() - t0) * 1000)
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
    # The library's reader and heartbeat threads are daemons; leave at once.
    os._exit(0 if out.get("ok") else 1)


def err_text(e):
    return "{}: {}".format(type(e).__name__, str(e).strip())


def pct(sorted_vals, p):
    if not sorted_vals:
        return None
    return sorted_vals[min(len(sorted_vals) - 1, int(len(sorted_vals) * p))]


def parse(argv):
    pos, opts = [], {}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("--"):
            if i + 1 >= len(argv):
                sys.exit("option {} needs a value".format(a))
            opts[a[2:]] = argv[i + 1]
            i += 2
        else:
            pos.append(a)
            i += 1
    return pos, opts


def heartbeat(host):
    """Makes the library send its own heartbeat and waits for the answer.

    The library sends one when a connection has been idle for 60 s, but its counter
    `client_heartbeats[host]` is never initialised, so that check raises KeyError (and
    logs it every 30 ms) instead of sending: seed the counter, then mark the
    connection idle. Any bytes read afterwards refresh `last_active`, and with no call
    in flight they can only be the heartbeat answer.
    """
    conn = connection_pool._connection_pool.get(host)
    if conn is None:
        return {"ok": False, "error": "no connection"}
    connection_pool.client_heartbeats[host] = 0
    conn.last_active = 0
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        if conn.last_active > 0:
            return {"ok": True, "pending": connection_pool.client_heartbeats.get(host)}
        time.sleep(0.01)
    return {"ok": False, "error": "no heartbeat answer within 3 s"}


def main():
    pos, opts = parse(sys.argv[1:])
    if len(pos) < 2:
        sys.exit("usage: dubbo_client.py [OPTIONS] HOST:PORT CASE [ARGS]")
    host, kase, args = pos[0], pos[1], pos[2:]
    timeout = float(opts.get("timeout", "3000")) / 1000.0
    client = DubboClient(
        interface=opts.get("service", "com.mosn.test.DubboEcho"),
        group=opts.get("group", ""),
        version=opts.get("version", "1.0.0"),
        dubbo_version=opts.get("dubbo-version", "2.0.2"),
        host=host,
        verify=None,  # plain TCP
    )
    t0 = time.monotonic()

    if kase == "echo":
        n = int(args[0]) if args else 1
        conc = max(1, int(args[1]) if len(args) > 1 else 1)
        pad = "x" * int(opts.get("size", "0"))
        expect_tag = opts.get("expect-tag")
        lock = threading.Lock()
        st = {"matched": 0, "mismatched": 0, "errors": 0}
        samples, tags, lat = [], {}, []

        def one(i):
            rnd = "".join(random.choice(string.ascii_lowercase) for _ in range(8))
            msg = "req-{}-{}{}".format(i, rnd, pad)
            start = time.monotonic()
            try:
                res = client.call("echo", [msg], timeout=timeout)
            except Exception as e:  # noqa: BLE001 - every failure is counted
                with lock:
                    st["errors"] += 1
                    if len(samples) < 5:
                        samples.append("call {}: {}".format(i, err_text(e)))
                return
            ms = int((time.monotonic() - start) * 1000)
            ok = isinstance(res, str) and res.endswith(":" + msg)
            tag = res[: len(res) - len(msg) - 1] if ok else None
            with lock:
                lat.append(ms)
                if ok and (expect_tag is None or tag == expect_tag):
                    st["matched"] += 1
                    tags[tag] = tags.get(tag, 0) + 1
                else:
                    st["mismatched"] += 1
                    if len(samples) < 5:
                        samples.append("call {}: sent {} got {}".format(i, msg[:40], str(res)[:60]))

        with ThreadPoolExecutor(max_workers=conc) as pool:
            list(pool.map(one, range(n)))
        lat.sort()
        out = dict(st)
        out.update({
            "ok": st["matched"] == n, "calls": n, "concurrency": conc,
            "error_samples": samples, "tags": tags,
            "connections": len(connection_pool._connection_pool),
            "p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99),
            "max_ms": lat[-1] if lat else None,
        })
    elif kase == "sleep":
        ms = int(args[0]) if args else 100
        try:
            res = client.call("sleep", [ms], timeout=timeout)
            out = {"ok": isinstance(res, str) and res.endswith(":slept {}".format(ms)), "result": res}
        except Exception as e:  # noqa: BLE001
            out = {"ok": False, "error": err_text(e)}
    elif kase == "timeout":
        ms = int(args[0]) if args else 2000
        limit = float(args[1]) / 1000.0 if len(args) > 1 else 0.3
        try:
            res = client.call("sleep", [ms], timeout=limit)
            out = {"ok": False, "result": res, "error": "answered although it should time out"}
        except Exception as e:  # noqa: BLE001
            out = {"ok": type(e).__name__ == "DubboRequestTimeoutException", "error": err_text(e)}
    elif kase == "fail":
        try:
            res = client.call("fail", [], timeout=timeout)
            out = {"ok": False, "result": res, "error": "no error"}
        except Exception as e:  # noqa: BLE001
            out = {"ok": "requested failure" in str(e), "error": err_text(e)}
    elif kase == "heartbeat":
        try:
            client.call("echo", ["hb"], timeout=timeout)
            out = heartbeat(host)
        except Exception as e:  # noqa: BLE001
            out = {"ok": False, "error": "echo before heartbeat: " + err_text(e)}
    elif kase == "capture":
        try:
            echo = client.call("echo", ["hello"], timeout=timeout)
        except Exception as e:  # noqa: BLE001
            echo = err_text(e)
        try:
            fail = client.call("fail", [], timeout=timeout)
        except Exception as e:  # noqa: BLE001
            fail = err_text(e)
        hb = heartbeat(host)
        out = {
            "ok": str(echo).endswith(":hello") and "requested failure" in str(fail) and hb["ok"],
            "echo": echo, "fail": fail, "heartbeat": hb,
        }
    else:
        sys.exit("unknown case " + kase)
    finish(out, kase, t0)


if __name__ == "__main__":
    main()
