#!/usr/bin/env python3
"""Idle keep-alive connection memory test.

Opens N HTTP/1.1 keep-alive connections to a proxy, sends one GET on each and
reads the full response (so the proxy has done real work on every connection
and holds whatever per-connection state it keeps after a request), then leaves
them all idle. The proxy's RSS (process tree, see procstat.py) is read before
the first connection and again once all are idle; the difference divided by the
number of connections is the memory an idle client connection costs.

Prints one JSON object on stdout. Bounded in time by --timeout (the whole open
phase) and --settle (the idle wait before the second reading).
"""
import argparse
import asyncio
import json
import resource
import sys
import time

import procstat

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: mosn-rs-bench-idle\r\n\r\n"


async def read_response(reader):
    """Reads one HTTP/1.1 response; returns the status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)  # chunk data + CRLF
            if size == 0:
                break
    else:
        await reader.readexactly(int(headers.get("content-length", "0")))
    return status


async def open_one(i, args, sem, conns, errors):
    # Spread the client side over several loopback source addresses so that
    # repeated runs never run short of ephemeral ports (TIME_WAIT included).
    src = f"127.0.0.{1 + i % args.sources}"
    async with sem:
        try:
            reader, writer = await asyncio.open_connection(
                args.host, args.port, local_addr=(src, 0))
            writer.write(REQUEST)
            status = await read_response(reader)
            if status != 200:
                raise RuntimeError(f"HTTP status {status}")
            conns.append((reader, writer))
        except Exception as e:  # counted, not fatal: the report shows failures
            errors.append(f"{type(e).__name__}: {e}")


async def run(args):
    rss_before = procstat.rss_kib(args.pid)
    conns, errors = [], []
    sem = asyncio.Semaphore(args.concurrency)
    t0 = time.monotonic()
    tasks = [asyncio.create_task(open_one(i, args, sem, conns, errors))
             for i in range(args.conns)]
    done, pending = await asyncio.wait(tasks, timeout=args.timeout)
    for t in pending:
        t.cancel()
    open_secs = time.monotonic() - t0

    # Let the proxy finish whatever it does after a response (return upstream
    # connections to the pool, shrink buffers) before reading its memory.
    await asyncio.sleep(args.settle)
    rss_after = procstat.rss_kib(args.pid)
    still_open = sum(1 for r, _ in conns if not r.at_eof() and r.exception() is None)

    for _, w in conns:
        w.transport.abort()  # RST: no need for orderly shutdown of 10k sockets
    await asyncio.sleep(0.2)

    n = len(conns)
    result = {
        "requested": args.conns,
        "established": n,
        "failed": len(errors) + len(pending),
        "still_open": still_open,
        "open_seconds": round(open_secs, 2),
        "rss_before_kib": rss_before,
        "rss_after_kib": rss_after,
        "kib_per_conn": round((rss_after - rss_before) / n, 2) if n else None,
        "first_errors": errors[:3],
    }
    print(json.dumps(result))
    return 0 if n == args.conns and still_open == n else 1


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pid", type=int, required=True, help="proxy's root PID")
    p.add_argument("--conns", type=int, default=10000)
    p.add_argument("--sources", type=int, default=4,
                   help="number of 127.0.0.x source addresses")
    p.add_argument("--concurrency", type=int, default=200,
                   help="connections being opened at once")
    p.add_argument("--timeout", type=float, default=120)
    p.add_argument("--settle", type=float, default=2)
    args = p.parse_args()

    # Each connection is one fd here: raise the soft limit as far as allowed.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < args.conns + 100:
        print(f"idle_conns: fd limit {hard} too low for {args.conns} connections",
              file=sys.stderr)

    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
