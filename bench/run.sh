#!/usr/bin/env bash
# mosn-rs benchmark: mosn-rs against nginx, HAProxy and Envoy, each with ONE
# worker on loopback in front of the same nginx upstream (20-byte body).
#
#   bench/run.sh [--build]
#
# Environment (defaults in brackets):
#   PROXIES     proxies to measure, any of "nginx haproxy envoy mosn" [all four]
#   DURATION    wrk duration per run [10s]
#   ROUNDS      rounds; each round runs every proxy once, order rotated [3]
#   CONNS       wrk connections [64]
#   IDLE        1 = run the idle-connection memory test, 0 = skip it [1]
#   IDLE_CONNS  idle connections held open per proxy [10000]
#   KEEP_TMP    1 = keep the temp dir (configs, logs, raw wrk output) [0]
#
# Writes bench/results/<YYYY-MM-DD>.md and .png. See bench/README.md.
# Only 127.0.0.1 is used; every process started here is stopped on exit.
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"   # REPO BENCH VENV MOSN_BIN, helpers

PROXIES="${PROXIES:-nginx haproxy envoy mosn}"
DURATION="${DURATION:-10s}"
ROUNDS="${ROUNDS:-3}"
CONNS="${CONNS:-64}"
IDLE="${IDLE:-1}"
IDLE_CONNS="${IDLE_CONNS:-10000}"
KEEP_TMP="${KEEP_TMP:-0}"

parse_args 2,17 "$@"   # BUILD
pick_list SEL PROXIES "$PROXIES" "nginx haproxy envoy mosn"
selected() { in_list "$1" "${SEL[@]}"; }

# wrk runs are bounded by DURATION; WRK_TIMEOUT only guards against a hung wrk.
WRK_TIMEOUT=$(load_timeout "$DURATION")

# --- tools ---------------------------------------------------------------------
# shellcheck disable=SC2119  # setup_tools takes setup.sh's options, not ours
setup_tools   # PY, ENVOY_BIN
selected mosn && ensure_mosn "$BUILD" 'Leave mosn out, e.g. PROXIES="nginx haproxy envoy".'

# 10k idle connections need 10k+ fds in the client and in each proxy (and a
# few in the upstream); children inherit this limit. The hard limit may be
# below 65535 in a container: then take what is allowed.
raise_nofile   # NOFILE
if ((IDLE)) && ((NOFILE < IDLE_CONNS + 500)); then
    die "open-files limit is $NOFILE, too low for IDLE_CONNS=$IDLE_CONNS (lower IDLE_CONNS or raise the hard limit)"
fi

# HAProxy counts 2 fds per session against the limit (see write_haproxy), so
# where the hard limit is low (20000 in some sandboxes) it holds a little fewer
# idle connections than the others; KiB per connection is unaffected.
HAPROXY_MAXCONN=$(( (NOFILE - 100) / 2 ))
((HAPROXY_MAXCONN > IDLE_CONNS + 200)) && HAPROXY_MAXCONN=$((IDLE_CONNS + 200))
HAPROXY_IDLE_CONNS=$((HAPROXY_MAXCONN - 50))
((HAPROXY_IDLE_CONNS > IDLE_CONNS)) && HAPROXY_IDLE_CONNS=$IDLE_CONNS

# --- temp dir and cleanup (lib.sh) -----------------------------------------------
make_tmp mosn-bench   # TMP
read -r 'PORT[upstream]' 'PORT[nginx]' 'PORT[haproxy]' 'PORT[envoy]' 'PORT[mosn]' <<<"$(free_ports 5)"
PORT[direct]=${PORT[upstream]}

# Wait until NAME answers the expected body on its port (max ~15 s).
probe_http1() { [[ "$(curl -s --max-time 1 "http://127.0.0.1:$1/" 2>/dev/null || true)" == "$BODY" ]]; }
wait_ready() { wait_ready_by "$1" "$2" probe_http1; }

# --- configs ---------------------------------------------------------------------
# write_upstream, write_nginx_proxy, write_envoy, write_mosn: lib.sh
write_haproxy() {
    # maxconn caps concurrent client sessions (idle keep-alive clients count).
    # HAProxy reserves 2 fds per session (client + server side) and will not
    # start if maxconn does not fit the fd limit that way, although with
    # http-reuse the server side is only a small shared pool. So maxconn is the
    # smaller of what the idle test needs and what the limit allows; see
    # HAPROXY_MAXCONN.
    cat >"$TMP/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn $HAPROXY_MAXCONN

defaults
    mode http
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-keep-alive 300s
    # Share idle upstream connections between client sessions, like nginx's
    # keepalive pool (the default 'safe' gives each session's first request a
    # fresh or private connection).
    http-reuse always

frontend fe
    bind 127.0.0.1:${PORT[haproxy]}
    default_backend be

backend be
    server up 127.0.0.1:${PORT[upstream]}
EOF
}

# --- start everything -------------------------------------------------------------
# shellcheck disable=SC2119  # no arguments: plain HTTP/1.1
write_upstream
start_nginx upstream
wait_ready upstream "${PORT[upstream]}"
PID[direct]=${PID[upstream]}

for p in "${SEL[@]}"; do
    case "$p" in
        nginx)   write_nginx_proxy "${PORT[upstream]}" 256 "" "$NGINX_PROXY_H1"; start_nginx nginx ;;
        haproxy) write_haproxy; start haproxy haproxy -db -f "$TMP/haproxy.cfg" ;;
        envoy)   write_envoy HTTP1 "${PORT[upstream]}"; start_envoy ;;
        mosn)    write_mosn Http1 Http1 "${PORT[upstream]}" "" '"max_request_per_conn":0,'; start_mosn ;;
    esac
done
for p in "${SEL[@]}"; do wait_ready "$p" "${PORT[$p]}"; done
log "up: upstream :${PORT[upstream]}; $(for p in "${SEL[@]}"; do printf '%s :%s pid %s; ' "$p" "${PORT[$p]}" "${PID[$p]}"; done)"

# --- throughput / CPU runs ----------------------------------------------------------
RUNS="$TMP/runs.tsv"
: >"$RUNS"

# bench_one NAME ROUND: one bounded wrk run through NAME, with the CPU time of
# NAME's process tree (and the upstream's, for "other CPU") read just before
# and just after it (lib.sh: meter_begin, meter_end).
bench_one() {
    local name=$1 round=$2 out="$TMP/wrk-$1-$2.txt" up=${PID[upstream]} line
    [[ $name == direct ]] && up=""
    meter_begin "${PID[$name]}" "$up"
    timeout "$WRK_TIMEOUT" wrk -t1 -c"$CONNS" -d"$DURATION" --latency \
        -s "$BENCH/wrk-report.lua" "http://127.0.0.1:${PORT[$name]}/" >"$out" 2>&1 \
        || { cat "$out" >&2; die "wrk against $name failed"; }
    meter_end
    line=$(grep '^WRKRESULT ' "$out") || { cat "$out" >&2; die "no result line in wrk output for $name"; }
    # WRKRESULT key=value ... -> local variables of the same names
    local requests duration_us p50_us p99_us status_errors socket_errors kv
    for kv in ${line#WRKRESULT }; do local "$kv"; done
    ((requests > 0)) || { cat "$out" >&2; die "no request completed through $name"; }
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$name" "$requests" "$duration_us" \
        "$p50_us" "$p99_us" "$((status_errors + socket_errors))" "$METER_CPU" "$METER_RSS" "$METER_OTHER" >>"$RUNS"
    awk -v r="$round" -v n="$name" -v q="$requests" -v d="$duration_us" -v a="$p50_us" \
        -v b="$p99_us" -v e="$((status_errors + socket_errors))" -v c="$METER_CPU" -v m="$METER_RSS" -v o="$METER_OTHER" \
        'BEGIN { printf "[bench] round %s %-8s %8.0f req/s  p50 %.2f ms  p99 %.2f ms  errors %d  CPU %.1f us/req  RSS %.1f MiB  other CPU %.0f%%\n",
                 r, n, q / (d / 1e6), a / 1000, b / 1000, e, c / q, m / 1024, 100 * o / d }' >&2
}

# Warm-up (not recorded): fill connection pools, fault in code and buffers.
for p in direct "${SEL[@]}"; do
    timeout 30 wrk -t1 -c"$CONNS" -d2s "http://127.0.0.1:${PORT[$p]}/" >/dev/null 2>&1 \
        || die "warm-up wrk against $p failed"
done

log "reference: wrk straight to the upstream"
bench_one direct 0

run_rounds bench_one "${SEL[@]}"   # order rotated each round

# --- idle-connection memory test -----------------------------------------------------
IDLE_OUT="$TMP/idle.tsv"
: >"$IDLE_OUT"
FAILED=""   # proxies that died in the idle test: reported, then exit 1
if ((IDLE)); then
    for p in "${SEL[@]}"; do
        count=$IDLE_CONNS
        [[ $p == haproxy ]] && count=$HAPROXY_IDLE_CONNS
        log "idle test: $count keep-alive connections through $p"
        res="$(cd "$BENCH" && timeout 300 "$PY" idle_conns.py --port "${PORT[$p]}" \
            --pid "${PID[$p]}" --conns "$count")" || log "idle test through $p incomplete (see report)"
        if ! kill -0 "${PID[$p]}" 2>/dev/null; then
            # A crash under many connections is a finding: put it in the report.
            log "ERROR: $p exited during the idle test; last lines of its output:"
            tail -n 20 "$TMP/$p.log" >&2
            FAILED+=" $p"
            res="{\"requested\": $count, \"established\": 0, \"failed\": $count, \"still_open\": 0,
                  \"open_seconds\": 0, \"rss_before_kib\": 0, \"rss_after_kib\": 0,
                  \"kib_per_conn\": null, \"first_errors\": [\"proxy exited during the test\"]}"
        fi
        if [[ -n $res ]]; then
            printf '%s\t%s\n' "$p" "$(tr -d '\n' <<<"$res")" >>"$IDLE_OUT"
            log "idle $p: $res"
        fi
    done
fi

# --- report ------------------------------------------------------------------------------
DATE="$(date +%F)"
tools=(nginx haproxy envoy wrk)
selected mosn && tools+=(mosn)
{
    info_head "$DATE" "${tools[@]}"
    printf 'load\twrk -t1 -c%s -d%s --latency, %s round(s), order rotated each round\n' "$CONNS" "$DURATION" "$ROUNDS"
    if ((IDLE)); then
        note=""
        if selected haproxy && ((HAPROXY_IDLE_CONNS < IDLE_CONNS)); then
            note=" (HAProxy $HAPROXY_IDLE_CONNS: it reserves 2 fds per connection)"
        fi
        printf 'idle test\t%s connections per proxy%s\n' "$IDLE_CONNS" "$note"
    else
        printf 'idle test\tskipped\n'
    fi
} >"$TMP/info.tsv"
write_report "" report.py --runs "$RUNS" --idle "$IDLE_OUT" --order "${SEL[*]}"
[[ -z $FAILED ]] || die "proxy died during the idle test:$FAILED"
