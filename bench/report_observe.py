#!/usr/bin/env python3
"""Turns run-observe.sh's raw measurements into bench/results/<date>-observe.md and .png.

Inputs (written by run-observe.sh into its temp dir):
  --runs  TSV, one line per load run:
          variant round requests duration_us p50_us p99_us errors cpu_us tail_us
          rss_kib other_us collector_us collector_tail_us spans_started
          spans_exported spans_dropped spans_failed log_lines log_dropped scrapes
          busy_us
          (cpu_us: the proxy's utime+stime during the load; tail_us: the same from
          the end of the load until every span was exported or dropped and the access log
          stopped growing; collector_*: the trace collector's, 0 without one;
          spans_* and log_dropped: the proxy's own counters over the run, from
          /api/v1/stats; log_lines: lines in the access log file; scrapes:
          /stats/prometheus answers 200 during the run; busy_us: the machine's
          busy time, all cores; worker_us log_us export_us rest_us: the proxy's
          CPU over run and tail by thread: its workers, the access log writer,
          the trace exporter, the others)
  --info  TSV: key <TAB> value, machine and settings, shown as is
  --order the variants, space-separated

Per variant, each figure is the median over rounds; errors, dropped spans and
dropped lines are summed. CPU µs/req counts the tail (the export of a run's last
spans). The ratio to `off` is taken per round (the variants of a round ran
back to back) and its median reported, next to the ratio of the medians. The
chart is report_h2.py's (CPU µs/req and req/s).
"""
import argparse
import math

from report_h2 import load_info, medians, ratio, save_md, tsv_lines, write_png
from report_tls import other_cpu_warning

NAMES = {"off": "mosn-off", "log": "mosn-log", "trace": "mosn-trace", "all": "mosn-all",
         "sw": "mosn-sw"}
WHAT = {
    "off": "no access log, no tracing (metrics: always on)",
    "log": "+ access log (file, MOSN's default format)",
    "trace": "+ tracing, 100 % sampled, OpenTelemetry (OTLP/gRPC)",
    "all": "access log + OpenTelemetry tracing 100 % + Prometheus scrape every "
           "SCRAPE s: the issue's \"on\"",
    "sw": "+ tracing, 100 % sampled, SkyWalking (gRPC)",
}
TARGET_ADDED = 0.15   # the issue: metrics + access log + tracing add under 15 %
MEDIANS = ("ratio", "rps", "p50_us", "p99_us", "cpu_us_req", "tail_us_req", "proxy_pct",
           "collector_pct", "collector_us_span", "spans_per_req", "exported_per_req",
           "lines_per_req", "scrapes", "busy_pct", "rss_mib", "other_pct", "worker_us_req",
           "log_us_req", "export_us_req", "rest_us_req", "export_us_span", "no_drop_us_req")


def load_runs(path, cores):
    rows = {}
    for (v, rnd, req, dur, p50, p99, err, cpu, tail, rss, other, col, col_tail, started,
         exported, dropped, failed, lines, log_dropped, scrapes, busy, worker, log_w, export,
         rest) in tsv_lines(path):
        req, dur = int(req), float(dur)
        pct = lambda us: 100 * int(us) / dur  # noqa: E731  (% of one core)
        exported = int(exported)
        rows.setdefault(v, []).append({
            "round": int(rnd), "requests": req, "rps": req / (dur / 1e6),
            "p50_us": float(p50), "p99_us": float(p99), "errors": int(err),
            "cpu_us_req": (int(cpu) + int(tail)) / req, "tail_us_req": int(tail) / req,
            "proxy_pct": pct(cpu), "collector_pct": pct(col),
            "collector_us_span": (int(col) + int(col_tail)) / exported if exported else math.nan,
            "started": int(started), "spans_per_req": int(started) / req,
            "exported_per_req": exported / req, "dropped": int(dropped),
            "failed": int(failed), "lines_per_req": int(lines) / req,
            "log_dropped": int(log_dropped), "scrapes": int(scrapes),
            "busy_pct": pct(busy) / cores, "rss_mib": int(rss) / 1024,
            "other_pct": max(0.0, pct(other)),
            "worker_us_req": int(worker) / req, "log_us_req": int(log_w) / req,
            "export_us_req": int(export) / req, "rest_us_req": int(rest) / req,
            "export_us_span": int(export) / exported if exported else math.nan,
            # What the exporter would have spent had no span been dropped.
            "no_drop_us_req": (int(cpu) + int(tail) + int(export) / exported
                               * (int(started) - exported)) / req if exported else math.nan,
        })
    return rows


def summarize(rows):
    return medians(rows, MEDIANS, sums=("errors", "started", "dropped", "failed", "log_dropped"),
                   maxes={"other_max": "other_pct"})


def add_round_ratios(rows, base="off"):
    """Sets each run's "ratio": its CPU µs/req ÷ that of `base` in the same round (NaN
    without one)."""
    ref = {r["round"]: r["cpu_us_req"] for r in rows.get(base, [])}
    for rs in rows.values():
        for r in rs:
            r["ratio"] = r["cpu_us_req"] / ref[r["round"]] if r["round"] in ref else math.nan


def median_interval(values, level=0.95):
    """A distribution-free interval for the median of `values` (NaNs left out): the
    order statistics x(k) and x(n+1-k), k the largest with P(k <= B <= n-k) >= level,
    B ~ Binomial(n, 1/2). None for fewer than 6 values (no such k)."""
    xs = sorted(v for v in values if not math.isnan(v))
    n = len(xs)
    below = 0.0  # P(B <= k-1): the interval [x(k), x(n+1-k)] misses the median
    best = None  # with probability 2 P(B <= k-1)
    for k in range(1, n // 2 + 1):
        below += math.comb(n, k - 1) / 2 ** n
        if 1 - 2 * below >= level:
            best = k
    return (xs[best - 1], xs[n - best]) if best else None


def verdict(rr, interval, target):
    """met / NOT met when the median's interval is on one side of 1 + target, else
    "not shown": the rounds do not tell."""
    if interval is None:
        return "met" if rr - 1 < target else "NOT met"
    low, high = interval
    if high - 1 < target:
        return "met"
    if low - 1 >= target:
        return "NOT met"
    return "not shown either way (the median's 95 % interval spans the target)"


def f(v, fmt="{:.1f}"):
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v)


def summary_table(order, summ, scrape, rows):
    out = ["| variant | what is on | CPU µs/req | ÷ off (median of rounds) | added | "
           "÷ off (of medians) | req/s | p50 ms | p99 ms | errors |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    base = summ.get("off", {}).get("cpu_us_req", math.nan)
    for v in order:
        s = summ[v]
        rr = s["ratio"]
        added = "–" if math.isnan(rr) or v == "off" else f"{100 * (rr - 1):+.1f} %"
        out.append(f"| {NAMES[v]} | {WHAT[v].replace('SCRAPE', scrape)} | "
                   f"{s['cpu_us_req']:.1f} | {f(rr, '{:.2f}×')} | {added} | "
                   f"{ratio(s['cpu_us_req'], base)} | {s['rps']:,.0f} | "
                   f"{s['p50_us'] / 1000:.2f} | {s['p99_us'] / 1000:.2f} | {s['errors']} |")
    if "all" in summ and not math.isnan(summ["all"]["ratio"]):
        rr = summ["all"]["ratio"]
        interval = median_interval([r["ratio"] for r in rows["all"]])
        spread = ("" if interval is None else
                  f"; the median's 95 % interval, from the order statistics of the "
                  f"{summ['all']['rounds']} rounds: {interval[0]:.2f}× to {interval[1]:.2f}×")
        out.append(f"\nTarget (issue): metrics + access log + tracing at 100 % sampling add "
                   f"under {TARGET_ADDED:.0%} CPU per request: "
                   f"**{verdict(rr, interval, TARGET_ADDED)}** "
                   f"(mosn-all {rr:.2f}× mosn-off, {100 * (rr - 1):+.1f} %{spread}).")
    return out


def tracing_table(order, summ):
    traced = [v for v in order if summ[v]["started"]]
    if not traced:
        return []
    out = ["\n## Tracing: spans and the collector\n",
           "Counters from the proxy's `/api/v1/stats` (`tracing.*`), summed over rounds; "
           "per request and collector figures are medians. *after the load* is the proxy's CPU "
           "from the end of the load until every span of the run was exported or dropped "
           "(included in CPU µs/req above). The collector (crates/trace/examples/trace_sink.rs) runs on the same "
           "2 cores: its CPU is not the proxy's, shown here as % of one core during the "
           "run and µs per span it received (run and tail).\n",
           "| variant | spans started | per request | exported per request | dropped | "
           "dropped % | failed | proxy CPU after the load µs/req | exporter µs/span | "
           "CPU µs/req had none been dropped (est.) | collector CPU | collector µs/span |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for v in traced:
        s = summ[v]
        out.append(f"| {NAMES[v]} | {s['started']:,} | {s['spans_per_req']:.3f} | "
                   f"{s['exported_per_req']:.3f} | {s['dropped']:,} | "
                   f"{100 * s['dropped'] / s['started']:.1f} % | {s['failed']:,} | "
                   f"{s['tail_us_req']:.2f} | {f(s['export_us_span'], '{:.2f}')} | "
                   f"{f(s['no_drop_us_req'])} | {s['collector_pct']:.0f} % | "
                   f"{f(s['collector_us_span'])} |")
    if any(summ[v]["dropped"] for v in traced):
        out.append("\n**Spans were dropped**: the collector did not keep up, the proxy's export "
                   "queue (4,096 spans by default) filled and new spans were dropped and "
                   "counted. A dropped span still costs the proxy its creation, its ids, "
                   "its headers upstream, its finishing and its encoding (on the worker), "
                   "but not its sending: with a collector that keeps up, the tracing variants would cost "
                   "more than measured. *had none been dropped* adds the dropped spans at the "
                   "exporter thread's measured cost per exported span (an estimate).")
    return out


def threads_table(order, summ):
    base = summ.get("off")
    out = ["\n## Where the CPU goes\n",
           "The proxy's CPU per request (run and tail) by thread, from "
           "`/proc/PID/task/*/stat`: the worker (parsing, proxying, and on it the "
           "access log line's formatting and the spans' creation, finishing and "
           "protobuf encoding), the access log writer thread, the trace exporter "
           "thread (batching chunks of encoded spans, gRPC), the others (main thread: admin API, Prometheus text). "
           "*worker ± off* is the worker's against mosn-off's.\n",
           "| variant | worker µs/req | worker ± off | access-log writer µs/req | "
           "trace exporter µs/req | other threads µs/req | total µs/req |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for v in order:
        s = summ[v]
        total = s["worker_us_req"] + s["log_us_req"] + s["export_us_req"] + s["rest_us_req"]
        delta = f"{s['worker_us_req'] - base['worker_us_req']:+.1f}" if base else "–"
        out.append(f"| {NAMES[v]} | {s['worker_us_req']:.1f} | {delta} | {s['log_us_req']:.2f} | "
                   f"{s['export_us_req']:.2f} | {s['rest_us_req']:.2f} | {total:.1f} |")
    out.append("\n(Medians per column, so the total may differ slightly from CPU µs/req "
               "above; thread times are in 10 ms ticks.)")
    return out


def rounds_table(order, rows):
    out = ["\n## Per round\n",
           "| round | " + " | ".join(f"{NAMES[v]} µs/req (÷ off)" for v in order) + " |",
           "|---|" + "---:|" * len(order)]
    for n in sorted({r["round"] for v in order for r in rows[v]}):
        cells = []
        for v in order:
            r = next((r for r in rows[v] if r["round"] == n), None)
            cells.append("–" if r is None else f"{r['cpu_us_req']:.1f} ({f(r['ratio'], '{:.2f}×')})")
        out.append(f"| {n} | " + " | ".join(cells) + " |")
    return out


def detail_table(order, summ):
    out = ["\n## Details\n",
           "| variant | proxy CPU (% of a core) | machine busy (% of all cores) | "
           "access log lines per request | lines dropped (writer behind) | "
           "Prometheus scrapes per run | RSS MiB |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    out += [f"| {NAMES[v]} | {summ[v]['proxy_pct']:.0f} % | {summ[v]['busy_pct']:.0f} % | "
            f"{summ[v]['lines_per_req']:.3f} | {summ[v]['log_dropped']:,} | "
            f"{summ[v]['scrapes']:.0f} | {summ[v]['rss_mib']:.1f} |" for v in order]
    return out


def main():
    ap = argparse.ArgumentParser()
    for opt in ("--runs", "--info", "--md", "--png", "--order", "--scrape-every"):
        ap.add_argument(opt, required=True)
    ap.add_argument("--cores", type=int, required=True)
    a = ap.parse_args()

    rows = load_runs(a.runs, a.cores)
    add_round_ratios(rows)
    order = [v for v in a.order.split() if v in rows]
    summ = {v: summarize(rows[v]) for v in order}
    info = load_info(a.info)
    d = dict(info)

    out = [f"# mosn-rs observability cost, {d.get('date', '')}\n",
           "mosn-rs with ONE worker (`processor: 1`) on loopback in front of an nginx "
           "upstream returning a fixed 20-byte body, one instance per variant, all in the "
           f"same run, order rotated each round; load `{d.get('load', 'wrk')}`. Figures are "
           "medians over rounds; errors are totals (non-2xx/3xx + socket errors). "
           "**CPU µs/req** is the proxy's own utime+stime (all its threads: the worker, "
           "the access log writer, the trace exporter, the admin API) during the run plus "
           "the tail after it (the export of the run's last spans), divided by the requests "
           "the load completed. **÷ off** is that against mosn-off: the median of the per-round "
           "ratios (variants of a round ran back to back), and the ratio of the medians.\n",
           "## Summary\n"]
    out += summary_table(order, summ, a.scrape_every, rows)
    out += tracing_table(order, summ)
    out += threads_table(order, summ)
    out += rounds_table(order, rows)
    out += detail_table(order, summ)
    out += other_cpu_warning(summ, NAMES, "request")
    save_md(a.md, out, info, a.png.rsplit("/", 1)[-1])
    write_png(a.png, ["observe"], order, {"observe": summ},
              f"{d.get('date', '')} — mosn-rs, one worker, observability off/on, "
              f"{d.get('load', '')}, {d.get('cpu', '')}", names=NAMES, target=None)


if __name__ == "__main__":
    main()
