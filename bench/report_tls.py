#!/usr/bin/env python3
"""Turns run-tls.sh's raw measurements into bench/results/<date>-tls.md and .png.

Inputs (written by run-tls.sh into its temp dir):
  --runs  TSV, one line per run:
          load round proxy requests duration_us p50_us p99_us errors cpu_us
          rss_kib other_us gen_us upstream_us busy_us
          (load: handshake, h1 or h2; gen_us: the load generator's user+system
          CPU; busy_us: the machine's busy CPU time summed over all cores)
  --info  TSV: key <TAB> value, machine and settings, shown as is
  --cores the machine's cores (machine busy % is of all of them)

Per load and proxy, each figure is the median over rounds; errors are summed
over rounds. The chart reuses report_h2.py's (CPU µs/req and req/s per load).
"""
import argparse
import math

from report_h2 import arrange, load_info, medians, num, ratio, save_md, tsv_lines, write_png

NAMES = {"mosn": "mosn-rs", "nginx": "nginx", "envoy": "Envoy"}
LOADS = {
    "handshake": ("handshake", "handshakes/s", "CPU µs/handshake",
                  "a new TLS 1.3 connection per request, full handshake (no session "
                  "resumption), one HTTP/1.1 GET each (`Connection: close`); hey. CPU per "
                  "handshake covers the handshake, the request, the proxying and the close."),
    "h1": ("keepalive h1", "req/s", "CPU µs/req",
           "HTTP/1.1 over TLS on keep-alive connections (wrk -t1, no ALPN)."),
    "h2": ("keepalive h2", "req/s", "CPU µs/req",
           "h2 over TLS (ALPN h2), multiplexed (h2load); HTTP/1.1 to the upstream."),
}
# Threads the generator can use: hey runs on every core, wrk -t1 and h2load on one.
GEN_THREADS = {"handshake": None, "h1": 1, "h2": 1}
MEDIANS = ("rps", "p50_us", "p99_us", "cpu_us_req", "proxy_pct", "gen_pct", "busy_pct",
           "upstream_pct", "rss_mib", "other_pct")
BUSY_PCT = 90  # machine busy (all cores) or generator (its threads) above this: flagged
OTHER_CPU_WARN_PCT = 20


def load_runs(path, cores):
    rows = {}
    for (load, rnd, proxy, req, dur, p50, p99, err, cpu, rss, other, gen, up,
         busy) in tsv_lines(path):
        req, dur = int(req), float(dur)
        pct = lambda us: 100 * int(us) / dur  # noqa: E731  (% of one core)
        rows.setdefault(load, {}).setdefault(proxy, []).append({
            "round": int(rnd), "rps": req / (dur / 1e6), "p50_us": num(p50),
            "p99_us": num(p99), "errors": int(err), "cpu_us_req": int(cpu) / req,
            "proxy_pct": pct(cpu), "gen_pct": pct(gen), "busy_pct": pct(busy) / cores,
            "upstream_pct": pct(up), "rss_mib": int(rss) / 1024,
            "other_pct": max(0.0, pct(other)),
        })
    return rows


def summarize(rows):
    return medians(rows, MEDIANS, sums=("errors",), maxes={
        "busy_max": "busy_pct", "gen_max": "gen_pct", "other_max": "other_pct"})


def ms(us):
    return "–" if math.isnan(us) else f"{us / 1000:.2f}"


def summary_table(loads, summ):
    out = ["| load | figure | mosn-rs | nginx | Envoy | mosn-rs ÷ nginx | mosn-rs ÷ Envoy |",
           "|---|---|---:|---:|---:|---:|---:|"]
    for load in loads:
        title, rate, cpu, _ = LOADS[load]
        ss = summ[load]
        for key, label, fmt in (("cpu_us_req", cpu + " (lower is better)", "{:.1f}"),
                                ("rps", rate, "{:,.0f}")):
            vals = {p: ss[p][key] if p in ss else math.nan for p in NAMES}
            cells = ["–" if math.isnan(v) else fmt.format(v) for v in vals.values()]
            out.append(f"| {title} | {label} | " + " | ".join(cells) + " | "
                       f"{ratio(vals['mosn'], vals['nginx'])} | {ratio(vals['mosn'], vals['envoy'])} |")
    return out


def load_section(load, order, summ, cores):
    title, rate, cpu, desc = LOADS[load]
    ss = summ[load]
    threads = GEN_THREADS[load] or cores
    out = [f"\n## {title}\n", desc + "\n",
           f"| proxy | {rate} | p50 ms | p99 ms | errors | {cpu} | proxy CPU | generator CPU "
           "| machine busy | upstream CPU | RSS MiB |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for p in [p for p in order if p in ss]:
        r = ss[p]
        out.append(f"| {NAMES[p]} | {r['rps']:,.0f} | {ms(r['p50_us'])} | {ms(r['p99_us'])} | "
                   f"{r['errors']} | {r['cpu_us_req']:.1f} | {r['proxy_pct']:.0f} % | "
                   f"{r['gen_pct']:.0f} % | {r['busy_pct']:.0f} % | {r['upstream_pct']:.0f} % | "
                   f"{r['rss_mib']:.1f} |")
    gen_bound = [p for p in ss if ss[p]["gen_max"] >= BUSY_PCT * threads]
    busy = [p for p in ss if ss[p]["busy_max"] >= BUSY_PCT]
    proxy_bound = [p for p in ss if ss[p]["proxy_pct"] >= BUSY_PCT]
    notes = []
    if proxy_bound:
        notes.append("the proxy's worker was the limit (≥ 90 % of a core) for "
                     + ", ".join(NAMES[p] for p in proxy_bound))
    if gen_bound:
        notes.append(f"the load generator used ≥ {BUSY_PCT} % of the {threads} core(s) it can "
                     "use, so it may have capped req/s, for "
                     + ", ".join(NAMES[p] for p in gen_bound))
    if busy:
        notes.append(f"the machine was ≥ {BUSY_PCT} % busy (all {cores} cores: generator, proxy, "
                     "upstream and the kernel's loopback work) for "
                     + ", ".join(NAMES[p] for p in busy)
                     + ": the rate is what the shared cores allow, compare CPU per request")
    if notes:
        out.append("\nLimits: " + "; ".join(notes) + ".")
    return out + other_cpu_warning(ss, NAMES, "request")


def other_cpu_warning(ss, names, unit):
    """The report's warning (a list of 0 or 1 lines) about the runs during which other
    processes used more than OTHER_CPU_WARN_PCT of a core (summaries' other_max).
    Also used by report_rpc.py."""
    noisy = [p for p in ss if ss[p]["other_max"] > OTHER_CPU_WARN_PCT]
    if not noisy:
        return []
    return [f"\n**Warning:** something else on the machine used more than "
            f"{OTHER_CPU_WARN_PCT} % of a core during some runs ("
            + ", ".join(f"{names[p]}: up to {ss[p]['other_max']:.0f} %" for p in noisy)
            + f"): their rates are understated, CPU per {unit} less affected."]


def write_md(path, loads, order, summ, info, cores, png_name):
    d = dict(info)
    out = [f"# mosn-rs TLS benchmark, {d.get('date', '')}\n",
           "Each proxy runs ONE worker on loopback and terminates TLS 1.3 (ECDSA P-256 "
           "certificate) in front of the same plain HTTP/1.1 nginx upstream returning a "
           "20-byte body; all proxies of a load in the same run, order rotated each round. "
           "Figures are medians over rounds, errors totals. **CPU µs/req** is the proxy's "
           "own utime+stime (all its processes and threads) over the run divided by the "
           "requests completed. *proxy CPU*, *generator CPU* and *upstream CPU* are % of "
           "one core; *machine busy* is % of all cores (user, system and softirq time). "
           "RSS is VmRSS of the proxy after a run.\n",
           "## mosn-rs against nginx and Envoy (same run)\n"]
    out += summary_table(loads, summ)
    for load in loads:
        out += load_section(load, order, summ, cores)
    save_md(path, out, info, png_name)


def main():
    ap = argparse.ArgumentParser()
    for opt in ("--runs", "--info", "--md", "--png", "--order"):   # --order: proxies, spaced
        ap.add_argument(opt, required=True)
    ap.add_argument("--cores", type=int, required=True)
    a = ap.parse_args()

    summ, loads, order = arrange(load_runs(a.runs, a.cores), summarize, " ".join(LOADS), a.order)
    info = load_info(a.info)
    write_md(a.md, loads, order, summ, info, a.cores, a.png.rsplit("/", 1)[-1])
    d = dict(info)
    # The chart's rows are titled by their keys: use the loads' titles.
    titled = {LOADS[load][0]: summ[load] for load in loads}
    write_png(a.png, list(titled), order, titled,
              f"{d.get('date', '')} — TLS 1.3, one worker each, {d.get('cpu', '')}",
              names=NAMES, target=None)


if __name__ == "__main__":
    main()
