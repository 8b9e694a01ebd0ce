#!/usr/bin/env python3
"""Turns run-h2.sh's raw measurements into bench/results/<date>-h2.md and .png.

Inputs (written by run-h2.sh into its temp dir):
  --runs  TSV, one line per h2load run:
          scenario round proxy requests duration_us mean_us sd_us p50_us p99_us
          failed errored grpc_errors cpu_us rss_kib other_us upstream_cpu_us
          (round 0 is the direct-to-upstream reference run; cpu_us and rss_kib
          are then the upstream's own and upstream_cpu_us is 0; p50/p99 are
          "nan" when run without h2load --log-file)
  --info  TSV: key <TAB> value, machine and settings, shown as is

Per scenario and proxy, each figure is the median over rounds; errors are
summed over rounds, since any error matters.
"""
import argparse
import math
import statistics

import matplotlib

matplotlib.use("Agg")  # no display on a benchmark box
import matplotlib.pyplot as plt  # noqa: E402

NAMES = {
    "mosn": "mosn-rs",
    "envoy": "Envoy",
    "nghttpx": "nghttpx",
    "nginx": "nginx (grpc_pass)",
    "direct": "upstream (direct)",
}
SCENARIOS = {
    "h2c": ("h2c: GET /, 20-byte body",
            "upstream nginx (`listen ... http2`, h2c prior knowledge) returning a fixed "
            "20-byte body."),
    "grpc": ("gRPC unary, canned upstream",
             "POST /mosn.test.Echo/Unary (`content-type: application/grpc`, `te: trailers`) "
             "with a 29-byte gRPC message; upstream nghttpd answering the same 29 bytes "
             "followed by the trailer `grpc-status: 0` (a fast C upstream, so the proxy is "
             "what is measured; it sends no content-type, see bench/README.md)."),
    "grpc-py": ("gRPC unary, grpcio upstream",
                "the same call; upstream a real gRPC server (grpcio asyncio server, "
                "`bench/grpc_upstream.py`, echoing the message). It caps req/s (grpcio "
                "takes 1.2–1.4 cores: see the upstream CPU column), and at ~5k calls/s "
                "every proxy handles nearly each call on a wakeup of its own, batching "
                "little: CPU per call is several times that of the grpc scenario for all "
                "of them. Compare proxies within this table, not with the others."),
}
# Target for mosn-rs (issue item 8): at most half of Envoy's CPU per request.
TARGET_VS_ENVOY = 0.5
# Other processes' CPU during a run above this (% of one core) gets flagged.
OTHER_CPU_WARN_PCT = 20


def num(s):
    return float(s) if s not in ("", "nan") else math.nan


def tsv_lines(path):
    """The fields of each non-empty line of a TSV file. Also used by report_tls.py
    and report_rpc.py, with the helpers below."""
    with open(path) as f:
        for line in f:
            if line.strip():
                yield line.rstrip("\n").split("\t")


def medians(rows, keys, sums=(), maxes=None):
    """A summary of rows (rounds): per key of keys the median, NaNs left out; per
    key of sums the total; per NAME: KEY of maxes, NAME the largest KEY; rounds."""
    def med(k):
        vals = [r[k] for r in rows if not math.isnan(r[k])]
        return statistics.median(vals) if vals else math.nan
    s = {k: med(k) for k in keys}
    s.update({k: sum(r[k] for r in rows) for k in sums})
    s.update({name: max(r[k] for r in rows) for name, k in (maxes or {}).items()})
    s["rounds"] = len(rows)
    return s


def ratio(a, b):
    return "–" if not (a and b) or math.isnan(a) or math.isnan(b) else f"{a / b:.2f}×"


def arrange(rows, summarize, scenarios, order):
    """rows {scenario: {proxy: [run]}} -> (summaries {scenario: {proxy: summary}},
    the scenarios of the space-separated `scenarios` that have runs, and the proxies
    of `order` that have runs in them), both in the given order."""
    summ = {s: {p: summarize(r) for p, r in by.items()} for s, by in rows.items()}
    scens = [s for s in scenarios.split() if s in summ]
    return summ, scens, [p for p in order.split() if any(p in summ[s] for s in scens)]


def load_runs(path):
    rows = {}
    for (scen, rnd, proxy, req, dur, mean, sd, p50, p99, failed, errored, gerr,
         cpu, rss, other, upcpu) in tsv_lines(path):
        req, dur, cpu = int(req), int(float(dur)), int(cpu)
        rows.setdefault(scen, {}).setdefault(proxy, []).append({
            "round": int(rnd),
            "rps": req / (dur / 1e6),
            "mean_us": num(mean),
            "sd_us": num(sd),
            "p50_us": num(p50),
            "p99_us": num(p99),
            "failed": int(failed),
            "errored": int(errored),
            "grpc_errors": int(gerr),
            "cpu_us_req": cpu / req if req else math.nan,
            "rss_mib": int(rss) / 1024,
            "other_pct": 100 * max(0, int(other)) / dur,
            "upstream_pct": 100 * int(upcpu) / dur,
        })
    return rows


def load_info(path):
    with open(path) as f:
        return [line.rstrip("\n").split("\t", 1) for line in f if "\t" in line]


def summarize(rows):
    return medians(rows, ("rps", "mean_us", "sd_us", "p50_us", "p99_us", "cpu_us_req", "rss_mib",
                          "upstream_pct"),
                   sums=("failed", "errored", "grpc_errors"), maxes={"other_pct_max": "other_pct"})


def fmt_ms(us):
    return "–" if math.isnan(us) else f"{us / 1000:.2f}"


def write_md(path, scen_order, proxy_order, summ, info, png_name):
    d = dict(info)
    out = [f"# mosn-rs HTTP/2 benchmark, {d.get('date', '')}\n"]
    out.append(
        "Each proxy runs ONE worker on loopback, HTTP/2 without TLS (h2c, prior knowledge) "
        "on both sides, in front of the same upstream; all proxies of a scenario in the "
        f"same run. Load: `{d.get('load', 'h2load')}`. Figures are medians over rounds; "
        "errors are totals over rounds. **CPU µs/req** is the proxy's own utime+stime "
        "(all its processes and threads) over the run divided by the requests h2load "
        "completed; RSS is VmRSS summed over the proxy's processes after a run. "
        "*failed* is h2load's count of requests without a 2xx/3xx answer (it includes "
        "*errored*: stream or connection errors); *gRPC errors* are answers without the "
        "echoed message (e.g. a trailers-only error status), counted from h2load's DATA "
        "byte total. *upstream CPU* is the upstream's CPU time as % of one core during "
        "the run: near 100 % the upstream, not the proxy, limits req/s.\n")

    # Summary first: mosn-rs against the others, per scenario.
    out.append("## mosn-rs CPU per request against the others (same run)\n")
    hdr = "| scenario | mosn-rs µs/req |"
    sep = "|---|---:|"
    others = [p for p in proxy_order if p != "mosn"]
    for p in others:
        hdr += f" {NAMES[p]} µs/req | mosn-rs ÷ {NAMES[p].split()[0]} |"
        sep += "---:|---:|"
    hdr += " target ≤ 0.5× Envoy |"
    sep += "---|"
    out += [hdr, sep]
    for s in scen_order:
        ss = summ[s]
        m = ss.get("mosn", {}).get("cpu_us_req", math.nan)
        row = f"| {s} | {m:.1f} |" if not math.isnan(m) else f"| {s} | – |"
        for p in others:
            if p in ss:
                o = ss[p]["cpu_us_req"]
                row += f" {o:.1f} | {m / o:.2f}× |" if not math.isnan(m) else f" {o:.1f} | – |"
            else:
                row += " – | – |"
        if "mosn" in ss and "envoy" in ss:
            ratio = m / ss["envoy"]["cpu_us_req"]
            row += f" {'met' if ratio <= TARGET_VS_ENVOY else 'NOT met'} ({ratio:.2f}×) |"
        else:
            row += " – |"
        out.append(row)
    if "mosn" not in proxy_order:
        out.append("\nmosn-rs was not part of this run.")

    for s in scen_order:
        title, desc = SCENARIOS[s]
        ss = summ[s]
        out.append(f"\n## {s} — {title}\n")
        out.append(desc + "\n")
        grpc = s != "h2c"
        out.append("| proxy | req/s | mean ms | sd ms | p50 ms | p99 ms | failed (errored) | "
                   + ("gRPC errors | " if grpc else "")
                   + "CPU µs/req | RSS MiB | upstream CPU |")
        out.append("|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if grpc else "")
                   + "---:|---:|---:|")
        for p in [p for p in proxy_order if p in ss] + (["direct"] if "direct" in ss else []):
            r = ss[p]
            up = "–" if p == "direct" else f"{r['upstream_pct']:.0f} %"
            out.append(f"| {NAMES.get(p, p)} | {r['rps']:,.0f} | {fmt_ms(r['mean_us'])} | "
                       f"{fmt_ms(r['sd_us'])} | {fmt_ms(r['p50_us'])} | {fmt_ms(r['p99_us'])} | "
                       f"{r['failed']} ({r['errored']}) | "
                       + (f"{r['grpc_errors']} | " if grpc else "")
                       + f"{r['cpu_us_req']:.1f} | {r['rss_mib']:.1f} | {up} |")
        if "direct" in ss:
            out.append("\n*upstream (direct)* is h2load straight to the upstream, one run: its "
                       "CPU µs/req and RSS are the upstream's own.")
        busy = [p for p in ss if ss[p]["other_pct_max"] > OTHER_CPU_WARN_PCT]
        if busy:
            out.append(f"\n**Warning:** during some runs something else on the machine used "
                       f"more than {OTHER_CPU_WARN_PCT}% of a core ("
                       + ", ".join(f"{NAMES.get(p, p)}: up to {ss[p]['other_pct_max']:.0f}%"
                                   for p in busy)
                       + "). req/s and latency of those runs are understated; CPU µs/req "
                       "is less affected. Re-run on a quiet machine for publishable figures.")

    save_md(path, out, info, png_name)


def save_md(path, out, info, png_name):
    """Writes the report's lines `out`, then the machine and settings table (info)
    and the chart png_name, to path. Also used by report_tls.py and report_rpc.py."""
    out = out + ["\n## Machine and settings\n", "| | |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in info]
    out.append(f"\n![chart]({png_name})\n")
    with open(path, "w") as f:
        f.write("\n".join(out))


def write_png(path, scen_order, proxy_order, summ, title, names=None, target=TARGET_VS_ENVOY):
    """Per scenario a row: CPU µs/req and req/s per proxy (mosn-rs in red).
    Also used by report_tls.py, with its own proxy names (names) and no
    target line (target=None)."""
    names = names or NAMES
    n = len(scen_order)
    fig, axes = plt.subplots(n, 2, figsize=(11, 3.4 * n + 0.6), squeeze=False)
    for row, s in enumerate(scen_order):
        ss = summ[s]
        proxies = [p for p in proxy_order if p in ss]
        labels = [names[p].replace(" (", "\n(") for p in proxies]
        colors = ["#d62728" if p == "mosn" else "#1f77b4" for p in proxies]
        ax1, ax2 = axes[row]
        bars = ax1.bar(labels, [ss[p]["cpu_us_req"] for p in proxies], color=colors)
        ax1.bar_label(bars, fmt="%.1f")
        if target and "envoy" in ss:
            t = target * ss["envoy"]["cpu_us_req"]
            ax1.axhline(t, ls="--", color="gray", lw=1)
            share = "½" if target == 0.5 else f"{target:g} ×"
            ax1.text(-0.4, t, f" mosn-rs target: {share} Envoy = {t:.1f}", va="bottom",
                     color="gray", fontsize=8)
        ax1.margins(y=0.15)
        ax1.set_title(f"{s}: proxy CPU per request (µs, lower is better)", fontsize=10)
        ax1.set_ylabel("µs of CPU / request")
        rl = labels + (["upstream\n(direct)"] if "direct" in ss else [])
        rv = [ss[p]["rps"] for p in proxies] + ([ss["direct"]["rps"]] if "direct" in ss else [])
        rc = colors + (["#7f7f7f"] if "direct" in ss else [])
        bars = ax2.bar(rl, rv, color=rc)
        ax2.bar_label(bars, fmt="%.0f")
        ax2.margins(y=0.15)
        ax2.set_title(f"{s}: throughput (req/s, higher is better)", fontsize=10)
        ax2.set_ylabel("requests / s")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", required=True)
    ap.add_argument("--info", required=True)
    ap.add_argument("--md", required=True)
    ap.add_argument("--png", required=True)
    ap.add_argument("--order", required=True, help="proxies, space-separated")
    ap.add_argument("--scenarios", required=True, help="scenarios, space-separated")
    a = ap.parse_args()

    summ, scen_order, proxy_order = arrange(load_runs(a.runs), summarize, a.scenarios, a.order)
    info = load_info(a.info)

    write_md(a.md, scen_order, proxy_order, summ, info, a.png.rsplit("/", 1)[-1])
    d = dict(info)
    write_png(a.png, scen_order, proxy_order, summ,
              f"{d.get('date', '')} — HTTP/2, one worker each, {d.get('load', '')}, "
              f"{d.get('cpu', '')}")


if __name__ == "__main__":
    main()
