#!/usr/bin/env bash
# mosn-rs observability cost: CPU per request of mosn-rs (ONE worker) with its
# observability turned on, against the same proxy with it off, every variant
# in the same run (order rotated each round), in front of the nginx upstream
# of run.sh (20-byte body), load wrk -t1 -c64 with keep-alive (as fast as it
# goes), or with RATE set a fixed rate (h2load --h1 --rps), the same for every
# variant:
#   off    no access log, no tracing (metrics are always on in mosn-rs:
#          relaxed atomics, nothing to turn off)
#   log    + an access log to a file (MOSN's default format)
#   trace  + tracing, every request sampled (sample_rate 1.0), OpenTelemetry
#          driver exporting over OTLP/gRPC to the trace sink (below)
#   all    access log + tracing + a Prometheus scrape of the admin API's
#          /stats/prometheus every SCRAPE_EVERY seconds: the issue's "on"
#   sw     tracing with the SkyWalking driver, to
#          the trace sink
#
# The collector is crates/trace/examples/trace_sink.rs (built here, release):
# it takes OTLP and SkyWalking gRPC calls and counts what they carry, at a few
# us per span of CPU. No real collector (OpenTelemetry Collector, SkyWalking
# OAP) installs on this machine, and the Python test collectors of tests/peers
# fall behind the proxy: the spans it then drops would make tracing look
# cheaper than it is.
#
#   bench/run-observe.sh [--build]
#
# Environment (defaults in brackets):
#   VARIANTS      any of "off log trace all sw" [all five]
#   DURATION      wrk duration per run [10s]
#   ROUNDS        rounds; each runs every variant once, order rotated [3]
#   CONNS         connections of the load [64]
#   RATE          requests per second, spread over the CONNS connections by
#                 h2load --h1 --rps (a multiple of CONNS); 0 = no fixed rate,
#                 wrk as fast as the proxy answers [0]. At a fixed rate every
#                 variant serves the same traffic, as a sidecar serves its
#                 app's, below saturation: how Istio reports its proxy's CPU
#   SCRAPE_EVERY  seconds between Prometheus scrapes in `all` [1]
#   RETRIES       times a run is repeated when other processes used > 20 % of
#                 a core during it (another build, say), after the machine
#                 calms [2]; the collector's CPU is not "other" (it is reported
#                 on its own)
#   KEEP_TMP      1 = keep the temp dir (configs, logs, raw output) [0]
#   MOSN_BIN      the mosn-rs binary [$CARGO_TARGET_DIR or target, /release/mosn-rs]
#
# Writes bench/results/<YYYY-MM-DD>-observe.md and .png. See bench/README.md.
# Only 127.0.0.1 is used; every process started here is stopped on exit.
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"   # REPO BENCH VENV MOSN_BIN BODY, helpers

# Settings: the environment's, else these defaults.
: "${VARIANTS:=off log trace all sw}" "${DURATION:=10s}" "${ROUNDS:=3}" "${CONNS:=64}"
: "${SCRAPE_EVERY:=1}" "${RETRIES:=2}" "${KEEP_TMP:=0}" "${RATE:=0}"

parse_args 2,46 "$@"   # BUILD
declare -a SEL   # set by pick_list
pick_list SEL VARIANTS "$VARIANTS" "off log trace all sw"
selected() { in_list "$1" "${SEL[@]}"; }
LOAD_TIMEOUT=$(load_timeout "$DURATION")
[[ $RATE =~ ^[0-9]+$ ]] || die "RATE must be a whole number of requests per second, not '$RATE'"
((RATE == 0 || (RATE >= CONNS && RATE % CONNS == 0))) \
    || die "RATE ($RATE) must be a multiple of CONNS ($CONNS): h2load's --rps is per connection"

# --- tools ---------------------------------------------------------------------
# PY (the bench venv: procstat, report); h2load for a fixed RATE
if ((RATE)); then setup_tools --h2load; else
    # shellcheck disable=SC2119  # setup_tools takes setup.sh's options, not ours
    setup_tools
fi
ensure_mosn "$BUILD" 'There is nothing to measure without it.'
# The trace sink: built beside MOSN_BIN (cargo honours CARGO_TARGET_DIR).
SINK="$(dirname "$MOSN_BIN")/examples/trace_sink"
if ((BUILD)) || [[ ! -x $SINK ]]; then
    [[ -f $REPO/Cargo.toml ]] || die "the trace sink $SINK is missing and there is no $REPO/Cargo.toml to build it from"
    log "building the trace sink (cargo build --release -p mosn-trace --example trace_sink)"
    (cd "$REPO" && cargo build --release -p mosn-trace --example trace_sink) || die "building the trace sink failed"
fi
[[ -x $SINK ]] || die "trace sink not found at $SINK (set MOSN_BIN to a binary in a cargo target dir)"
raise_nofile   # NOFILE

# --- temp dir, upstream, collectors -----------------------------------------------
make_tmp mosn-bench-observe   # TMP
ports=()
read -ra ports <<<"$(free_ports $((3 + 2 * ${#SEL[@]})))"
PORT[upstream]=${ports[0]} PORT[otlp-collector]=${ports[1]} PORT[sw-collector]=${ports[2]}
for i in "${!SEL[@]}"; do
    PORT[${SEL[$i]}]=${ports[$((3 + 2 * i))]} PORT[admin-${SEL[$i]}]=${ports[$((4 + 2 * i))]}
done

probe_http1() { [[ "$(curl -s --max-time 1 "http://127.0.0.1:$1/" 2>/dev/null || true)" == "$BODY" ]]; }
probe_tcp() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# shellcheck disable=SC2119  # no arguments: plain HTTP/1.1, as in run.sh
write_upstream
start_nginx upstream
wait_ready_by upstream "${PORT[upstream]}" probe_http1

# The sink exits when its stdin closes: its stdin is this FIFO, opened
# read-write so that it never reaches end-of-file (the bench stops it). Its
# stdout (its counts, at exit) goes to /dev/null: the proxy's counters say what
# it accepted.
mkfifo "$TMP/stdin"
collector() { exec "$SINK" "$1" <>"$TMP/stdin" >/dev/null; }
# The collector a variant exports to (empty: none).
collector_of() { case "$1" in trace|all) echo otlp-collector ;; sw) echo sw-collector ;; esac; }
if selected trace || selected all; then
    start otlp-collector collector "${PORT[otlp-collector]}"
    wait_ready_by otlp-collector "${PORT[otlp-collector]}" probe_tcp
fi
if selected sw; then
    start sw-collector collector "${PORT[sw-collector]}"
    wait_ready_by sw-collector "${PORT[sw-collector]}" probe_tcp
fi

# --- mosn-rs, one per variant ---------------------------------------------------------
# The tracing object of a variant (a top-level member, comma-terminated).
tracing_json() {
    case "$1" in
        trace|all) printf '"tracing":{"enable":true,"driver":"OpenTelemetry","config":{"endpoint":"http://127.0.0.1:%s","service_name":"bench","sample_rate":1.0}},' "${PORT[otlp-collector]}" ;;
        sw) printf '"tracing":{"enable":true,"driver":"SkyWalking","config":{"reporter":"gRPC","backend_service":"127.0.0.1:%s","service_name":"bench","sample_rate":1.0}},' "${PORT[sw-collector]}" ;;
    esac
}
# start_variant NAME: mosn-rs as run.sh configures it (write_mosn), plus an
# admin listener on PORT[admin-NAME] (for the counters, and the scrape in
# `all`), the access log of `log` and `all`, the tracing of the tracing ones.
start_variant() {
    local v=$1 listener="" top
    top="\"admin\":{\"address\":{\"socket_address\":{\"address\":\"127.0.0.1\",\"port_value\":${PORT[admin-$v]}}}},$(tracing_json "$v")"
    [[ $v == log || $v == all ]] && listener="\"access_logs\":[{\"log_path\":\"$TMP/access-$v.log\"}],"
    PORT[mosn]=${PORT[$v]}   # write_mosn's listener port
    write_mosn Http1 Http1 "${PORT[upstream]}" "" '"max_request_per_conn":0,' "" "$listener" "$top"
    mv "$TMP/mosn.json" "$TMP/$v.json"
    start "$v" "$MOSN_BIN" start -c "$TMP/$v.json"
}
for v in "${SEL[@]}"; do start_variant "$v"; done
for v in "${SEL[@]}"; do wait_ready_by "$v" "${PORT[$v]}" probe_http1; done
log "up: upstream :${PORT[upstream]}; $(for v in "${SEL[@]}"; do printf '%s :%s (admin :%s) pid %s; ' "$v" "${PORT[$v]}" "${PORT[admin-$v]}" "${PID[$v]}"; done)"

# counters NAME: the array CNT, (STARTED EXPORTED DROPPED FAILED LOG_DROPPED)
# from NAME's /api/v1/stats (the tracer's spans: 0 without tracing; access log
# lines dropped because the writer fell behind).
counters() {
    local out
    out=$(curl -sf --max-time 5 "http://127.0.0.1:${PORT[admin-$1]}/api/v1/stats" | "$PY" -c 'import json, sys
d = json.load(sys.stdin); t = d.get("tracing", {})
print(*(t.get(k, 0) for k in ("spans_started", "spans_exported", "spans_dropped", "spans_failed")),
      d.get("server", {}).get("access_log_dropped_lines", 0))') || die "no stats from $1's admin API"
    read -ra CNT <<<"$out"
}
# tsv_row FIELD...: one line of RUNS.
tsv_row() { local IFS=$'\t'; printf '%s\n' "$*"; }

# settle NAME: wait (at most 60 s) until NAME's tracer has exported, dropped
# or failed every span it started, its collector is idle again (a streaming
# exporter, SkyWalking's, counts spans as sent before the collector has read
# them) and its access log stopped growing, so that each run pays for its own
# spans and lines and the next run starts on a quiet machine. Sets SETTLE_MS,
# how long that took.
settle() {
    local v=$1 col start0 size=-1 now busy=-1 cpu _u i
    col=$(collector_of "$v")
    start0=$(date +%s%N)
    for ((i = 0; i < 600; i++)); do
        counters "$v"
        now=$(stat -c %s "$TMP/access-$v.log" 2>/dev/null || echo 0)
        cpu=0
        [[ -z $col ]] || read -r cpu _u < <("$PY" "$BENCH/procstat.py" cpu "${PID[$col]}")
        # idle: at most one clock tick (10 ms) of collector CPU in 0.1 s
        ((CNT[1] + CNT[2] + CNT[3] >= CNT[0] && now == size && busy >= 0 && cpu - busy <= 10000)) && break
        size=$now busy=$cpu
        sleep 0.1
    done
    ((i < 600)) || log "$v: not settled after 60 s (spans started ${CNT[0]}, exported ${CNT[1]}, dropped ${CNT[2]}, failed ${CNT[3]})"
    SETTLE_MS=$((($(date +%s%N) - start0) / 1000000))
}

# scrape_loop NAME: GET NAME's /stats/prometheus every SCRAPE_EVERY seconds,
# a line (the status) per scrape, until killed.
scrape_loop() {
    while :; do
        curl -s -o /dev/null --max-time 5 -w '%{http_code}\n' "http://127.0.0.1:${PORT[admin-$1]}/stats/prometheus" || echo fail
        sleep "$SCRAPE_EVERY"
    done
}

# run_load NAME ROUND: one bounded wrk run through NAME (with the scrapes in
# `all`); the counters and the CPU of NAME's threads are read first, inside
# the metered window (so that a repeated run reads them afresh; an admin
# request costs the proxy ~0.1 ms).
run_load() {
    local v=$1 r=$2 scraper=""
    counters "$v"
    echo "${CNT[*]}" >"$TMP/counters-$v-$r.before"
    # This run's lines only (the writer appends: O_APPEND); ~100 MB a run.
    if [[ -f $TMP/access-$v.log ]]; then : >"$TMP/access-$v.log"; fi
    "$PY" "$BENCH/procstat.py" threads "${PID[$v]}" >"$TMP/threads-$v-$r.before"
    if [[ $v == all ]]; then
        scrape_loop "$v" >"$TMP/scrapes-$r.txt" &
        scraper=$!
    fi
    if ((RATE)); then
        load_at_rate "$v" "$r"
    else
        timeout "$LOAD_TIMEOUT" wrk -t1 -c"$CONNS" -d"$DURATION" --latency \
            -s "$BENCH/wrk-report.lua" "http://127.0.0.1:${PORT[$v]}/" >"$TMP/wrk-$v-$r.txt" 2>&1 \
            || { cat "$TMP/wrk-$v-$r.txt" >&2; die "wrk through $v failed"; }
    fi
    [[ -z $scraper ]] || { kill "$scraper"; wait "$scraper" 2>/dev/null || true; }
}

# load_at_rate NAME ROUND: RATE requests per second through NAME for DURATION
# (h2load, HTTP/1.1, CONNS connections), its result written to wrk-NAME-ROUND.txt
# as wrk-report.lua's WRKRESULT line, so that bench_one reads either load alike.
load_at_rate() {
    local v=$1 r=$2 out="$TMP/h2load-$1-$2.txt" lat="$TMP/lat-$1-$2.tsv" line
    timeout "$LOAD_TIMEOUT" h2load --h1 -c"$CONNS" --rps $((RATE / CONNS)) -D "$DURATION" \
        --log-file="$lat" "http://127.0.0.1:${PORT[$v]}/" >"$out" 2>&1 \
        || { tail -n 30 "$out" >&2; die "h2load through $v failed"; }
    line=$("$PY" "$BENCH/h2load_result.py" "$out" --log "$lat") \
        || { tail -n 30 "$out" >&2; die "could not read h2load's output for $v"; }
    rm -f "$lat"
    # shellcheck disable=SC2034  # not all of them are used
    local requests succeeded failed errored timeout duration_us mean_us sd_us p50_us p99_us \
        data_bytes status_2xx status_other grpc_errors kv
    for kv in ${line#H2RESULT }; do local "$kv"; done
    # h2load's "failed" includes "errored" (stream and connection errors).
    printf 'WRKRESULT requests=%s duration_us=%.0f p50_us=%s p99_us=%s status_errors=%s socket_errors=%s\n' \
        "$requests" "$duration_us" "$p50_us" "$p99_us" "$((failed - errored))" "$errored" >"$TMP/wrk-$v-$r.txt"
}

RUNS="$TMP/runs.tsv"
: >"$RUNS"

# bench_one NAME ROUND: one metered run through NAME (lib.sh: metered; the
# collector's CPU is METER_SIDE, not "other"), then settle: the proxy's and
# the collector's CPU from the end of wrk to the end of settling (the export
# of the last spans) is recorded apart, as tail CPU; the proxy's CPU by thread
# covers both.
bench_one() {
    local v=$1 r=$2 col line p1 p2 c1=0 c2=0 _u before threads
    col=$(collector_of "$v")
    METER_SIDE_PID=${col:+${PID[$col]}}
    metered "$v" "${PID[$v]}" "${PID[upstream]}" run_load "$v" "$r"
    read -r p1 _u < <("$PY" "$BENCH/procstat.py" cpu "${PID[$v]}")
    [[ -z $col ]] || read -r c1 _u < <("$PY" "$BENCH/procstat.py" cpu "${PID[$col]}")
    settle "$v"
    read -r p2 _u < <("$PY" "$BENCH/procstat.py" cpu "${PID[$v]}")
    "$PY" "$BENCH/procstat.py" threads "${PID[$v]}" >"$TMP/threads-$v-$r.after"
    [[ -z $col ]] || read -r c2 _u < <("$PY" "$BENCH/procstat.py" cpu "${PID[$col]}")
    kill -0 "${PID[$v]}" 2>/dev/null || { tail -n 20 "$TMP/$v.log" >&2; die "$v exited during its run"; }
    line=$(grep '^WRKRESULT ' "$TMP/wrk-$v-$r.txt") || { cat "$TMP/wrk-$v-$r.txt" >&2; die "no result line in wrk output for $v"; }
    # WRKRESULT key=value ... -> local variables of the same names
    local requests duration_us p50_us p99_us status_errors socket_errors kv
    for kv in ${line#WRKRESULT }; do local "$kv"; done
    ((requests > 0)) || { cat "$TMP/wrk-$v-$r.txt" >&2; die "no request completed through $v"; }
    read -ra before <"$TMP/counters-$v-$r.before"
    counters "$v"
    local started=$((CNT[0] - before[0])) exported=$((CNT[1] - before[1])) dropped=$((CNT[2] - before[2]))
    local failed=$((CNT[3] - before[3])) log_dropped=$((CNT[4] - before[4])) log_lines=0 scrapes=0
    if [[ -f $TMP/access-$v.log ]]; then log_lines=$(wc -l <"$TMP/access-$v.log"); fi
    [[ $v == all ]] && scrapes=$(grep -c '^200$' "$TMP/scrapes-$r.txt" || true)
    # The proxy's CPU over run and tail by thread: workers, the access log
    # writer, the trace exporter, the rest (main thread: admin API, signals).
    read -ra threads < <(awk 'NR == FNR { b[$1] = $2; next }
        { d = $2 - b[$1]; if ($1 ~ /^mosn-worker/) w += d; else if ($1 == "access-log") l += d
          else if ($1 == "trace-export") e += d; else o += d }
        END { print w + 0, l + 0, e + 0, o + 0 }' "$TMP/threads-$v-$r.before" "$TMP/threads-$v-$r.after")
    tsv_row "$v" "$r" "$requests" "$duration_us" "$p50_us" "$p99_us" "$((status_errors + socket_errors))" \
        "$METER_CPU" "$((p2 - p1))" "$METER_RSS" "$METER_OTHER" "$METER_SIDE" "$((c2 - c1))" \
        "$started" "$exported" "$dropped" "$failed" "$log_lines" "$log_dropped" "$scrapes" "$METER_BUSY" \
        "${threads[@]}" >>"$RUNS"
    awk -v r="$r" -v n="$v" -v q="$requests" -v d="$duration_us" -v a="$p50_us" -v b="$p99_us" \
        -v e="$((status_errors + socket_errors))" -v c="$METER_CPU" -v t="$((p2 - p1))" -v s="$started" \
        -v x="$dropped" -v k="$((METER_SIDE + c2 - c1))" -v o="$METER_OTHER" -v w="$SETTLE_MS" \
        'BEGIN { printf "[bench] round %s %-5s %7.0f req/s  p50 %.2f ms  p99 %.2f ms  errors %d  CPU %.1f us/req (+%.2f after wrk)  spans %d (dropped %d)  collector %.0f%%  other %.0f%%  settled in %d ms\n",
                 r, n, q / (d / 1e6), a / 1000, b / 1000, e, c / q, t / q, s, x, 100 * k / d, 100 * o / d, w }' >&2
}

# Warm-up (not recorded): fill connection pools, fault in code and buffers,
# open the exporters' channels; then every tracer must have exported spans.
for v in "${SEL[@]}"; do
    timeout 30 wrk -t1 -c"$CONNS" -d2s "http://127.0.0.1:${PORT[$v]}/" >/dev/null 2>&1 \
        || die "warm-up wrk through $v failed"
    settle "$v"   # (CNT: its counters)
    [[ -z $(collector_of "$v") ]] || ((CNT[1] > 0)) \
        || die "$v: no span exported during the warm-up (started ${CNT[0]}, dropped ${CNT[2]}, failed ${CNT[3]}); see $TMP/$v.log"
done

run_rounds bench_one "${SEL[@]}"   # order rotated each round

# --- report ------------------------------------------------------------------------------
INFO_EXTRA="$TMP/info-extra.tsv"
: >"$INFO_EXTRA"
for v in "${SEL[@]}"; do   # what each mosn-rs logged (level ERROR): a finding if anything
    printf 'log mosn-%s\t%s line(s)%s\n' "$v" "$(wc -l <"$TMP/$v.log")" \
        "$(head -c 300 "$TMP/$v.log" | head -n 1 | sed 's/^/, first: /; s/\t/ /g')" >>"$INFO_EXTRA"
done
DATE="$(date +%F)"
{
    if ((RATE)); then info_head "$DATE" nginx h2load mosn; else info_head "$DATE" nginx wrk mosn; fi
    printf 'collector\tcrates/trace/examples/trace_sink.rs (counts spans; h2, one thread)\n'
    if ((RATE)); then
        printf 'load\th2load --h1 -c%s --rps %s -D %s (%s requests/s in all, for every variant)\n' \
            "$CONNS" $((RATE / CONNS)) "$DURATION" "$RATE"
    else
        printf 'load\twrk -t1 -c%s -d%s --latency\n' "$CONNS" "$DURATION"
    fi
    printf 'rounds\t%s, order rotated each round; %s run(s) repeated (RETRIES=%s) because other processes used > 20 %% of a core during them\n' \
        "$ROUNDS" "$REPEATED" "$RETRIES"
    printf 'upstream\tnginx, HTTP/1.1 keep-alive, 20-byte body\n'
    printf 'tracer settings\tdefaults: max_queue_spans 4096, batch_size 512, flush_interval 1s\n'
    printf 'prometheus scrape (all)\tcurl of the admin API'"'"'s /stats/prometheus every %s s during the run\n' "$SCRAPE_EVERY"
    cat "$INFO_EXTRA"
} >"$TMP/info.tsv"
write_report -observe report_observe.py --runs "$RUNS" --order "${SEL[*]}" --cores "$(nproc)" \
    --scrape-every "$SCRAPE_EVERY"
