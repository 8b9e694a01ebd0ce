#!/usr/bin/env python3
"""Turns run.sh's raw measurements into bench/results/<date>.md and .png.

Inputs (all written by run.sh into its temp dir):
  --runs  TSV, one line per wrk run:
          round proxy requests duration_us p50_us p99_us errors cpu_us rss_kib other_us
          (other_us: CPU used on the machine by anything but the proxy, the
          upstream and wrk during the run)
          (round 0 is the direct-to-upstream reference run; cpu_us and rss_kib
          are then the upstream nginx's own)
  --idle  TSV: proxy <TAB> JSON printed by idle_conns.py (may be empty)
  --info  TSV: key <TAB> value, machine and settings, shown as is

Per proxy, each figure is the median over rounds; errors are summed over
rounds, since any error matters.
"""
import argparse
import json
import statistics

import matplotlib

matplotlib.use("Agg")  # no display on a benchmark box
import matplotlib.pyplot as plt  # noqa: E402

NAMES = {
    "direct": "upstream (direct)",
    "nginx": "nginx",
    "haproxy": "HAProxy",
    "envoy": "Envoy",
    "mosn": "mosn-rs",
}
# Measured earlier on this machine kind (one worker, 20-byte body, wrk -c64).
REFERENCE = [
    ("nginx", 18, 1.0),
    ("HAProxy", 19, 1.1),
    ("MOSN (Go)", 50, 28),
    ("Envoy", 71, 16),
]
TARGET_CPU_US, TARGET_IDLE_KIB = 25, 4
# Other processes' CPU during a run above this (% of one core) gets flagged.
OTHER_CPU_WARN_PCT = 20


def load_runs(path):
    rows = {}
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            rnd, proxy, req, dur, p50, p99, err, cpu, rss, other = line.split("\t")
            req, dur, cpu = int(req), int(dur), int(cpu)
            rows.setdefault(proxy, []).append({
                "round": int(rnd),
                "rps": req / (dur / 1e6),
                "p50_us": float(p50),
                "p99_us": float(p99),
                "errors": int(err),
                "cpu_us_req": cpu / req if req else float("nan"),
                "rss_mib": int(rss) / 1024,
                "other_pct": 100 * max(0, int(other)) / dur,
            })
    return rows


def load_idle(path):
    out = {}
    with open(path) as f:
        for line in f:
            if line.strip():
                proxy, js = line.rstrip("\n").split("\t", 1)
                out[proxy] = json.loads(js)
    return out


def load_info(path):
    with open(path) as f:
        return [line.rstrip("\n").split("\t", 1) for line in f if "\t" in line]


def summarize(rows):
    med = lambda k: statistics.median(r[k] for r in rows)  # noqa: E731
    return {
        "rounds": len(rows),
        "rps": med("rps"),
        "p50_us": med("p50_us"),
        "p99_us": med("p99_us"),
        "errors": sum(r["errors"] for r in rows),
        "cpu_us_req": med("cpu_us_req"),
        "rss_mib": med("rss_mib"),
        "other_pct_max": max(r["other_pct"] for r in rows),
    }


def fmt_lat(us):
    return f"{us / 1000:.2f} ms"


def fmt_idle(res):
    if res is None:
        return "–"
    if res.get("kib_per_conn") is None:
        return "failed"
    s = f"{res['kib_per_conn']:.2f}"
    if res["established"] != res["requested"] or res["still_open"] != res["established"]:
        s += f" (open {res['still_open']}/{res['requested']})"
    return s


def write_md(path, order, summ, idle, info, png_name):
    out = []
    date = dict(info).get("date", "")
    out.append(f"# mosn-rs benchmark, {date}\n")
    out.append("Each proxy runs ONE worker on loopback in front of one nginx upstream "
               "returning a fixed 20-byte body. Load: `wrk -t1 -c64` with keep-alive. "
               "Figures are medians over rounds; errors are the total over rounds "
               "(non-2xx/3xx responses + socket errors). CPU µs/req is the proxy's "
               "own utime+stime (all its processes and threads) over the run divided "
               "by requests completed. RSS is VmRSS summed over the proxy's processes "
               "after a run. Idle KiB/conn is the RSS growth per idle keep-alive "
               "connection held open through the proxy after one GET each.\n")
    out.append("| proxy | req/s | p50 | p99 | errors | CPU µs/req | RSS MiB | idle KiB/conn |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    for p in order:
        s = summ[p]
        out.append(f"| {NAMES.get(p, p)} | {s['rps']:,.0f} | {fmt_lat(s['p50_us'])} | "
                   f"{fmt_lat(s['p99_us'])} | {s['errors']} | {s['cpu_us_req']:.1f} | "
                   f"{s['rss_mib']:.1f} | {fmt_idle(idle.get(p))} |")
    busy = [p for p in order if summ[p]["other_pct_max"] > OTHER_CPU_WARN_PCT]
    if busy:
        out.append(f"\n**Warning:** during some runs something else on the machine used more "
                   f"than {OTHER_CPU_WARN_PCT}% of a core ("
                   + ", ".join(f"{NAMES.get(p, p)}: up to {summ[p]['other_pct_max']:.0f}%"
                               for p in busy)
                   + "). req/s and latency of those runs are understated; CPU µs/req is "
                   "less affected. Re-run on a quiet machine for publishable figures.")
    if "direct" in summ:
        out.append("\nThe *upstream (direct)* row is wrk straight to the upstream, one run, "
                   "for reference: its CPU and RSS are the upstream nginx's own.")

    out.append("\n## mosn-rs CPU per request against the others (same run)\n")
    if "mosn" in summ:
        m = summ["mosn"]["cpu_us_req"]
        out.append("| against | their CPU µs/req | mosn-rs ÷ them |")
        out.append("|---|---:|---:|")
        for p in ("nginx", "haproxy", "envoy"):
            if p in summ:
                o = summ[p]["cpu_us_req"]
                out.append(f"| {NAMES[p]} | {o:.1f} | {m / o:.2f}× |")
        idle_m = idle.get("mosn", {}).get("kib_per_conn")
        ok_cpu = m <= TARGET_CPU_US
        ok_err = summ["mosn"]["errors"] == 0
        ok_idle = idle_m is not None and idle_m <= TARGET_IDLE_KIB
        out.append(f"\nTargets: CPU ≤ {TARGET_CPU_US} µs/req: {'met' if ok_cpu else 'NOT met'} "
                   f"({m:.1f}); zero errors: {'met' if ok_err else 'NOT met'}; "
                   f"idle ≤ {TARGET_IDLE_KIB} KiB/conn: "
                   + ("not measured" if idle_m is None else
                      f"{'met' if ok_idle else 'NOT met'} ({idle_m:.2f})") + ".")
    else:
        out.append("mosn-rs was not part of this run.")

    if idle:
        out.append("\n## Idle-connection test details\n")
        out.append("| proxy | connections held | RSS before MiB | RSS after MiB | open time s |")
        out.append("|---|---:|---:|---:|---:|")
        for p in order:
            r = idle.get(p)
            if r:
                out.append(f"| {NAMES.get(p, p)} | {r['still_open']}/{r['requested']} | "
                           f"{r['rss_before_kib'] / 1024:.1f} | {r['rss_after_kib'] / 1024:.1f} | "
                           f"{r['open_seconds']} |")
                if r.get("first_errors"):
                    out.append(f"| ↳ first errors | {'; '.join(r['first_errors'])} | | | |")

    out.append("\n## Reference figures on this machine kind (earlier measurements)\n")
    out.append("| proxy | CPU µs/req | idle KiB/conn |")
    out.append("|---|---:|---:|")
    for name, cpu, kib in REFERENCE:
        out.append(f"| {name} | {cpu} | {kib} |")
    out.append(f"| **mosn-rs target** | ≤ {TARGET_CPU_US} | ≤ {TARGET_IDLE_KIB} |")

    out.append("\n## Machine and settings\n")
    out.append("| | |")
    out.append("|---|---|")
    for k, v in info:
        out.append(f"| {k} | {v} |")
    out.append(f"\n![chart]({png_name})\n")
    with open(path, "w") as f:
        f.write("\n".join(out))


def write_png(path, order, summ, title):
    proxies = [p for p in order if p != "direct"]
    labels = [NAMES.get(p, p) for p in proxies]
    colors = ["#d62728" if p == "mosn" else "#1f77b4" for p in proxies]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))

    cpu = [summ[p]["cpu_us_req"] for p in proxies]
    bars = ax1.bar(labels, cpu, color=colors)
    ax1.bar_label(bars, fmt="%.1f")
    ax1.axhline(TARGET_CPU_US, ls="--", color="gray", lw=1)
    ax1.text(-0.4, TARGET_CPU_US, f" mosn-rs target {TARGET_CPU_US}", va="bottom",
             color="gray", fontsize=8)
    ax1.set_title("Proxy CPU per request (µs, lower is better)")
    ax1.set_ylabel("µs of CPU / request")

    rl = labels + (["upstream\n(direct)"] if "direct" in summ else [])
    rv = [summ[p]["rps"] for p in proxies] + ([summ["direct"]["rps"]] if "direct" in summ else [])
    rc = colors + (["#7f7f7f"] if "direct" in summ else [])
    bars = ax2.bar(rl, rv, color=rc)
    ax2.bar_label(bars, fmt="%.0f")
    ax2.set_title("Throughput (req/s, higher is better)")
    ax2.set_ylabel("requests / s")

    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", required=True)
    ap.add_argument("--idle", required=True)
    ap.add_argument("--info", required=True)
    ap.add_argument("--md", required=True)
    ap.add_argument("--png", required=True)
    ap.add_argument("--order", required=True, help="proxies, space-separated")
    a = ap.parse_args()

    rows = load_runs(a.runs)
    summ = {p: summarize(r) for p, r in rows.items()}
    # Proxies in the order they were asked for, the direct reference last.
    order = [p for p in a.order.split() if p in rows]
    order += ["direct"] if "direct" in rows else []
    idle = load_idle(a.idle)
    info = load_info(a.info)

    write_md(a.md, order, summ, idle, info, a.png.rsplit("/", 1)[-1])
    d = dict(info)
    write_png(a.png, order, summ,
              f"{d.get('date', '')} — one worker each, 20-byte body, wrk -c64, "
              f"{d.get('cpu', '')}")


if __name__ == "__main__":
    main()
