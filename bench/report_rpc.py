#!/usr/bin/env python3
"""Turns run-rpc.sh's raw measurements into bench/results/<date>-rpc.md and .png.

Inputs (written by run-rpc.sh into its temp dir):
  --runs  TSV, one line per run:
          scenario round path calls duration_us p50_us p99_us errors cpu_us
          rss_kib other_us server_us client_us conns_max conns_new busy_us
          (path: mosn, envoy or direct; cpu_us: the proxy's utime+stime, 0 for
          direct; rss_kib: the proxy's VmRSS after the run, the server's for
          direct; server_us, client_us: the Node server's and the load client's
          CPU; conns_max: the most connections to the server established at
          once, sampled every 0.5 s; conns_new: connections the server accepted
          during the run; busy_us: the machine's busy time, all cores)
  --info  TSV: key <TAB> value, machine and settings, shown as is
  --cores the machine's cores

Per scenario and path, each figure is the median over rounds; errors are
summed. The chart is report_h2.py's (CPU µs per call and calls/s).
"""
import argparse
import math

from report_h2 import arrange, load_info, medians, num, ratio, save_md, tsv_lines, write_png
from report_tls import other_cpu_warning

NAMES = {"mosn": "mosn-rs", "envoy": "Envoy (dubbo_proxy)", "direct": "direct (no proxy)"}
SCENARIOS = {
    "bolt": ("SOFA Bolt v1, hessian2",
             "sofa-rpc-node RpcClient (sofa-bolt-node) → proxy → sofa-rpc-node RpcServer; "
             "`echo(String)` of `com.mosn.test.EchoService:1.0`. Envoy has no Bolt filter."),
    "dubbo": ("Dubbo, hessian2",
              "sofa-rpc-node RpcClient with dubbo-remoting → proxy → RpcServer with "
              "dubbo-remoting; `echo(String)` of `com.mosn.test.DubboEcho` 1.0.0."),
}
# The target, and what it measured for MOSN (Go) and Envoy the same way.
TARGET_US = 25
REFERENCE = {"bolt": {"MOSN": "78–82"}, "dubbo": {"MOSN": "64", "Envoy": "41"}}
MEDIANS = ("rps", "p50_us", "p99_us", "cpu_us_req", "proxy_pct", "server_pct",
           "server_us_call", "client_pct", "busy_pct", "conns_max", "conns_new", "rss_mib",
           "other_pct")
LIMIT_PCT = 90


def load_runs(path, cores):
    rows = {}
    for (scen, rnd, name, calls, dur, p50, p99, err, cpu, rss, other, server, client,
         conns_max, conns_new, busy) in tsv_lines(path):
        calls, dur = int(calls), float(dur)
        pct = lambda us: 100 * int(us) / dur  # noqa: E731  (% of one core)
        proxy = name != "direct"
        rows.setdefault(scen, {}).setdefault(name, []).append({
            "round": int(rnd), "rps": calls / (dur / 1e6), "p50_us": num(p50),
            "p99_us": num(p99), "errors": int(err),
            "cpu_us_req": int(cpu) / calls if proxy else math.nan,
            "proxy_pct": pct(cpu) if proxy else math.nan,
            "server_pct": pct(server), "server_us_call": int(server) / calls,
            "client_pct": pct(client), "busy_pct": pct(busy) / cores,
            "conns_max": int(conns_max), "conns_new": int(conns_new),
            "rss_mib": int(rss) / 1024, "other_pct": max(0.0, pct(other)),
        })
    return rows


def summarize(rows):
    return medians(rows, MEDIANS, sums=("errors",),
                   maxes={"conns_peak": "conns_max", "other_max": "other_pct"})


def fmt(v, f="{:.1f}"):
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f.format(v)


def summary(scens, summ):
    out = ["| scenario | mosn-rs CPU µs/call | Envoy CPU µs/call | mosn-rs ÷ Envoy | "
           "calls/s mosn-rs | calls/s Envoy | calls/s direct | upstream conns mosn-rs | "
           f"upstream conns Envoy | target ≤ {TARGET_US} µs/call on one upstream conn |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for s in scens:
        ss = summ[s]
        g = lambda p, k: ss[p][k] if p in ss else math.nan  # noqa: E731
        m = g("mosn", "cpu_us_req")
        target = "–"
        if "mosn" in ss:
            met = m <= TARGET_US and ss["mosn"]["conns_peak"] <= 1
            target = f"{'met' if met else 'NOT met'} ({m:.1f} µs, {ss['mosn']['conns_peak']} conn)"
        out.append(f"| {s} | {fmt(m)} | {fmt(g('envoy', 'cpu_us_req'))} | "
                   f"{ratio(m, g('envoy', 'cpu_us_req'))} | {fmt(g('mosn', 'rps'), '{:,.0f}')} | "
                   f"{fmt(g('envoy', 'rps'), '{:,.0f}')} | {fmt(g('direct', 'rps'), '{:,.0f}')} | "
                   f"{fmt(g('mosn', 'conns_max'), '{:.0f}')} | {fmt(g('envoy', 'conns_max'), '{:.0f}')} | "
                   f"{target} |")
    out += ["", "Against the issue's figures (measured the same way, but in another run: "
            "indicative only):", "",
            "| scenario | mosn-rs µs/call | MOSN (Go) µs/call | Envoy µs/call (issue) |",
            "|---|---:|---:|---:|"]
    for s in scens:
        ref = REFERENCE[s]
        m = summ[s].get("mosn", {}).get("cpu_us_req", math.nan)
        out.append(f"| {s} | {fmt(m)} | {ref.get('MOSN', '–')} | {ref.get('Envoy', '–')} |")
    return out


def scenario_section(s, order, summ):
    title, desc = SCENARIOS[s]
    ss = summ[s]
    out = [f"\n## {s} — {title}\n", desc + "\n",
           "| path | calls/s | p50 ms | p99 ms | errors | proxy CPU µs/call | proxy CPU | "
           "server CPU | server CPU µs/call | client CPU | machine busy | upstream conns "
           "(max at once) | new upstream conns per run | RSS MiB |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for p in [p for p in order if p in ss] + (["direct"] if "direct" in ss else []):
        r = ss[p]
        out.append(f"| {NAMES[p]} | {r['rps']:,.0f} | {fmt(r['p50_us'] / 1000, '{:.2f}')} | "
                   f"{fmt(r['p99_us'] / 1000, '{:.2f}')} | {r['errors']} | {fmt(r['cpu_us_req'])} | "
                   f"{fmt(r['proxy_pct'], '{:.0f} %')} | {r['server_pct']:.0f} % | "
                   f"{r['server_us_call']:.1f} | {r['client_pct']:.0f} % | {r['busy_pct']:.0f} % | "
                   f"{r['conns_max']:.0f} | {r['conns_new']:.0f} | {r['rss_mib']:.1f} |")
    limits = (("server_pct", f"the Node server used ≥ {LIMIT_PCT} % of its one core (the limit)"),
              ("client_pct", f"the Node client used ≥ {LIMIT_PCT} % of its one core"),
              ("busy_pct", f"the machine was ≥ {LIMIT_PCT} % busy"))
    notes = [f"{text} for " + ", ".join(NAMES[p] for p in hit) for key, text in limits
             if (hit := [p for p in ss if ss[p][key] >= LIMIT_PCT])]
    if notes:
        out.append("\nLimits: " + "; ".join(notes) + ". calls/s is what the Node peers and "
                   "the shared cores allow; CPU µs per call is the proxy's figure.")
    out += other_cpu_warning(ss, NAMES, "call")
    return out


def write_md(path, scens, order, summ, info, png_name):
    d = dict(info)
    out = [f"# mosn-rs RPC benchmark (SOFA Bolt, Dubbo), {d.get('date', '')}\n",
           "Each proxy runs ONE worker on loopback between the real Node peers of "
           "`tests/peers/node` (sofa-rpc-node 2.10 with sofa-bolt-node or dubbo-remoting): "
           f"one RpcClient and one RpcServer; load: {d.get('load', '')}. *direct* is the "
           "client straight to the server. "
           "All paths of a scenario in the same run, order rotated each round; figures are "
           "medians over rounds, errors totals. **proxy CPU µs/call** is the proxy's own "
           "utime+stime (all its threads) over the run divided by the calls answered. "
           "*proxy*, *server* and *client CPU* are % of one core (the client's from "
           "`process.cpuUsage()` over its calls), *machine busy* % of all cores. "
           "*upstream conns* are the connections to the server established at once "
           "(`ss -tn`, sampled every 0.5 s, the median over rounds of each run's most); "
           "*new upstream conns* those the server accepted during a run. For *direct*, "
           "RSS is the server's and the connections are the client's.\n",
           "## Summary\n"]
    out += summary(scens, summ)
    for s in scens:
        out += scenario_section(s, order, summ)
    save_md(path, out, info, png_name)


def main():
    ap = argparse.ArgumentParser()
    for opt in ("--runs", "--info", "--md", "--png", "--order", "--scenarios"):
        ap.add_argument(opt, required=True)   # --order, --scenarios: space-separated
    ap.add_argument("--cores", type=int, required=True)
    a = ap.parse_args()

    summ, scens, order = arrange(load_runs(a.runs, a.cores), summarize, a.scenarios, a.order)
    info = load_info(a.info)
    write_md(a.md, scens, order, summ, info, a.png.rsplit("/", 1)[-1])
    d = dict(info)
    write_png(a.png, scens, order, summ,
              f"{d.get('date', '')} — RPC, one worker each, Node peers, {d.get('cpu', '')}",
              names={**NAMES, "envoy": "Envoy"}, target=None)


if __name__ == "__main__":
    main()
