#!/usr/bin/env python3
"""Turns one h2load run into the one line bench/run-h2.sh records, so the
script does not depend on h2load's text layout or units.

    h2load_result.py OUTPUT [--log LOG] [--grpc-message-bytes N]

OUTPUT: h2load's stdout. LOG: its --log-file (one line per finished request:
start µs, status, µs to the end of the response), from which p50 and p99 are
taken; without it they are printed as nan. With --grpc-message-bytes N each
good response carries exactly N bytes of DATA (the 5-byte gRPC prefix and the
message): responses short of that are gRPC-level failures h2load cannot see
itself (e.g. a proxy's trailers-only UNAVAILABLE answer has HTTP status 200
and no DATA). h2load prints the DATA byte total exactly, so
grpc_errors = succeeded - data // N (never below 0).

Prints: H2RESULT requests=.. succeeded=.. failed=.. errored=.. timeout=..
        duration_us=.. mean_us=.. sd_us=.. p50_us=.. p99_us=.. data_bytes=..
        status_2xx=.. status_other=.. grpc_errors=..
"requests" is h2load's "done": every request that finished in the measured
time, answered or not (CPU per request divides by it, as run.sh divides by
wrk's request count). "failed" counts every request that did not end in a
2xx/3xx answer, so it includes "errored" (stream or connection errors), as in
h2load's own summary.
"""
import argparse
import math
import re
import sys

UNITS = {"us": 1, "ms": 1000, "s": 1_000_000}


def to_us(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not m:
        raise ValueError(f"time {text!r} not understood")
    return float(m.group(1)) * UNITS[m.group(2)]


def percentile(sorted_vals, q):
    """Nearest-rank percentile, as wrk reports it."""
    if not sorted_vals:
        return math.nan
    k = max(0, math.ceil(q / 100 * len(sorted_vals)) - 1)
    return sorted_vals[k]


def parse(text):
    r = {}
    m = re.search(r"^finished in ([\d.]+(?:us|ms|s)),", text, re.M)
    if not m:
        raise ValueError("no 'finished in' line: h2load did not complete")
    r["duration_us"] = to_us(m.group(1))
    m = re.search(r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", text, re.M)
    if not m:
        raise ValueError("no 'requests:' line")
    for k, v in zip(("total", "started", "done", "succeeded", "failed", "errored", "timeout"),
                    m.groups()):
        r[k] = int(v)
    m = re.search(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text, re.M)
    r["status_2xx"] = int(m.group(1)) if m else 0
    r["status_other"] = sum(int(x) for x in m.groups()[1:]) if m else 0
    m = re.search(r"\((\d+)\) data", text)
    r["data_bytes"] = int(m.group(1)) if m else 0
    m = re.search(r"^time for request:\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)", text, re.M)
    r["mean_us"] = to_us(m.group(3)) if m else math.nan
    r["sd_us"] = to_us(m.group(4)) if m else math.nan
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("output")
    ap.add_argument("--log")
    ap.add_argument("--grpc-message-bytes", type=int, default=0)
    a = ap.parse_args()
    with open(a.output, errors="replace") as f:
        try:
            r = parse(f.read())
        except ValueError as e:
            sys.exit(f"h2load_result: {a.output}: {e}")
    lat = []
    if a.log:
        with open(a.log) as f:
            for line in f:
                parts = line.split("\t")
                if len(parts) >= 3:
                    lat.append(int(parts[2]))
        lat.sort()
    r["p50_us"] = percentile(lat, 50)
    r["p99_us"] = percentile(lat, 99)
    r["grpc_errors"] = 0
    if a.grpc_message_bytes:
        r["grpc_errors"] = max(0, r["succeeded"] - r["data_bytes"] // a.grpc_message_bytes)
    r["requests"] = r["done"]
    keys = ("requests", "succeeded", "failed", "errored", "timeout", "duration_us", "mean_us",
            "sd_us", "p50_us", "p99_us", "data_bytes", "status_2xx", "status_other",
            "grpc_errors")
    print("H2RESULT " + " ".join(
        f"{k}={r[k]:.0f}" if isinstance(r[k], float) and not math.isnan(r[k])
        else f"{k}={r[k]}" for k in keys))


if __name__ == "__main__":
    main()
