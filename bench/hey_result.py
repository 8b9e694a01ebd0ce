#!/usr/bin/env python3
"""Turns one hey run (its summary on stdout) into the one line bench/run-tls.sh
records, as wrk-report.lua does for wrk and h2load_result.py for h2load.

    hey_result.py OUTPUT

Prints: HEYRESULT requests=.. duration_us=.. p50_us=.. p99_us=.. errors=..
"requests" counts the answered requests (every status code); "errors" the
requests that got no answer (hey's "Error distribution": connect, TLS and
read errors) plus the answers with a status of 400 or more, as wrk counts
them. duration_us is hey's "Total" (its run, from the first request to the
last answer). p50/p99 come from hey's latency distribution (0.1 ms steps).
"""
import re
import sys


def parse(text):
    m = re.search(r"^\s*Total:\s+([\d.]+) secs", text, re.M)
    if not m:
        raise ValueError("no 'Total:' line: hey did not finish")
    r = {"duration_us": float(m.group(1)) * 1e6}
    for q in ("50", "99"):
        m = re.search(rf"^\s*{q}% in ([\d.]+) secs", text, re.M)
        r[f"p{q}_us"] = float(m.group(1)) * 1e6 if m else float("nan")
    statuses = {int(c): int(n) for c, n in
                re.findall(r"^\s*\[(\d{3})\]\s+(\d+) responses", text, re.M)}
    errors = text.split("Error distribution:", 1)
    failed = sum(int(n) for n in re.findall(r"^\s*\[(\d+)\]\s", errors[1], re.M)) \
        if len(errors) == 2 else 0
    r["requests"] = sum(statuses.values())
    r["errors"] = failed + sum(n for c, n in statuses.items() if c >= 400)
    return r


def main():
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUTPUT")
    with open(sys.argv[1], errors="replace") as f:
        try:
            r = parse(f.read())
        except ValueError as e:
            sys.exit(f"hey_result: {sys.argv[1]}: {e}")
    print("HEYRESULT " + " ".join(f"{k}={r[k]:.0f}" if r[k] == r[k] else f"{k}=nan"
                                  for k in ("requests", "duration_us", "p50_us", "p99_us",
                                            "errors")))


if __name__ == "__main__":
    main()
