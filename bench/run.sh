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
BODY="01234567890123456789"   # the fixed 20-byte upstream response body

BUILD=0
for arg in "$@"; do
    case "$arg" in
        --build) BUILD=1 ;;
        -h|--help) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
    esac
done

read -ra SEL <<<"$PROXIES"
((${#SEL[@]})) || die "PROXIES is empty"
for p in "${SEL[@]}"; do
    case "$p" in nginx|haproxy|envoy|mosn) ;; *) die "unknown proxy '$p' in PROXIES (known: nginx haproxy envoy mosn)" ;; esac
done
selected() { [[ " ${SEL[*]} " == *" $1 "* ]]; }

# wrk runs are bounded by DURATION; WRK_TIMEOUT only guards against a hung wrk.
[[ "$(dur_secs "$DURATION")" =~ ^[0-9]+$ ]] || die "DURATION '$DURATION' not understood (use e.g. 10s, 2m)"
WRK_TIMEOUT=$(( $(dur_secs "$DURATION") + 30 ))

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
# nginx_common, nginx_http_common: lib.sh
write_upstream() {
    local d="$TMP/upstream"
    { nginx_common "$d"; cat <<EOF
http {
$(nginx_http_common "$d")
    server {
        listen 127.0.0.1:${PORT[upstream]} backlog=4096;
        location / { default_type text/plain; return 200 "$BODY"; }
    }
}
EOF
    } >"$TMP/upstream.conf"
}

write_nginx() {
    local d="$TMP/nginx"
    { nginx_common "$d"; cat <<EOF
http {
$(nginx_http_common "$d")
    upstream up {
        server 127.0.0.1:${PORT[upstream]};
        keepalive 256;              # pool of idle upstream connections
        keepalive_requests 1000000;
        keepalive_timeout 300s;
    }
    server {
        listen 127.0.0.1:${PORT[nginx]} backlog=4096;
        location / {
            proxy_pass http://up;
            proxy_http_version 1.1;         # needed for upstream keep-alive
            proxy_set_header Connection "";
        }
    }
}
EOF
    } >"$TMP/nginx.conf"
}

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

write_envoy() {
    cat >"$TMP/envoy.yaml" <<EOF
static_resources:
  listeners:
  - name: l
    address: {socket_address: {address: 127.0.0.1, port_value: ${PORT[envoy]}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench
          codec_type: HTTP1
          route_config:
            virtual_hosts:
            - name: h
              domains: ["*"]
              routes: [{match: {prefix: "/"}, route: {cluster: up}}]
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
  - name: up
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: up
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: ${PORT[upstream]}}}}
EOF
}

write_mosn() {
    cat >"$TMP/mosn.json" <<EOF
{"servers":[{"default_log_path":"stderr","default_log_level":"ERROR","processor":1,
  "routers":[{"router_config_name":"r","virtual_hosts":[{"name":"h","domains":["*"],"routers":[{"match":{"prefix":"/"},"route":{"cluster_name":"up"}}]}]}],
  "listeners":[{"name":"l","address":"127.0.0.1:${PORT[mosn]}","bind_port":true,"filter_chains":[{"filters":[{"type":"proxy","config":{"downstream_protocol":"Http1","upstream_protocol":"Http1","router_config_name":"r"}}]}]}]}],
 "cluster_manager":{"clusters":[{"name":"up","type":"SIMPLE","lb_type":"LB_ROUNDROBIN","max_request_per_conn":0,"hosts":[{"address":"127.0.0.1:${PORT[upstream]}"}]}]}}
EOF
}

# --- start everything -------------------------------------------------------------
write_upstream
start upstream nginx -p "$TMP/upstream" -e "$TMP/upstream/error.log" -c "$TMP/upstream.conf"
wait_ready upstream "${PORT[upstream]}"
PID[direct]=${PID[upstream]}

for p in "${SEL[@]}"; do
    case "$p" in
        nginx)   write_nginx;   start nginx nginx -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$TMP/nginx.conf" ;;
        haproxy) write_haproxy; start haproxy haproxy -db -f "$TMP/haproxy.cfg" ;;
        envoy)   write_envoy;   start envoy "$ENVOY_BIN" -c "$TMP/envoy.yaml" --concurrency 1 \
                                    --disable-hot-restart --log-level error ;;
        mosn)    write_mosn;    start mosn "$MOSN_BIN" start -c "$TMP/mosn.json" ;;
    esac
done
for p in "${SEL[@]}"; do wait_ready "$p" "${PORT[$p]}"; done
log "up: upstream :${PORT[upstream]}; $(for p in "${SEL[@]}"; do printf '%s :%s pid %s; ' "$p" "${PORT[$p]}" "${PID[$p]}"; done)"

# --- throughput / CPU runs ----------------------------------------------------------
RUNS="$TMP/runs.tsv"
: >"$RUNS"

# "Other CPU" (lib.sh: machine_user_us, children_user_us): user-mode CPU time
# of the whole machine minus that of the proxy, the upstream and wrk.

# bench_one NAME ROUND: one bounded wrk run through NAME, with the CPU time of
# NAME's process tree read just before and just after it.
bench_one() {
    local name=$1 round=$2 out="$TMP/wrk-$1-$2.txt" pid=${PID[$1]}
    local cpu0 cpu1 usr0 usr1 upu0=0 upu1=0 m0 m1 ch0 ch1 rss line other
    read -r cpu0 usr0 < <("$PY" "$BENCH/procstat.py" cpu "$pid")
    [[ $name == direct ]] || read -r _ upu0 < <("$PY" "$BENCH/procstat.py" cpu "${PID[upstream]}")
    children_user_us ch0; m0=$(machine_user_us)
    timeout "$WRK_TIMEOUT" wrk -t1 -c"$CONNS" -d"$DURATION" --latency \
        -s "$BENCH/wrk-report.lua" "http://127.0.0.1:${PORT[$name]}/" >"$out" 2>&1 \
        || { cat "$out" >&2; die "wrk against $name failed"; }
    m1=$(machine_user_us); children_user_us ch1
    read -r cpu1 usr1 < <("$PY" "$BENCH/procstat.py" cpu "$pid")
    [[ $name == direct ]] || read -r _ upu1 < <("$PY" "$BENCH/procstat.py" cpu "${PID[upstream]}")
    rss=$("$PY" "$BENCH/procstat.py" rss "$pid")
    other=$(((m1 - m0) - (usr1 - usr0) - (upu1 - upu0) - (ch1 - ch0)))
    line=$(grep '^WRKRESULT ' "$out") || { cat "$out" >&2; die "no result line in wrk output for $name"; }
    # WRKRESULT key=value ... -> local variables of the same names
    local requests duration_us p50_us p99_us status_errors socket_errors kv
    for kv in ${line#WRKRESULT }; do local "$kv"; done
    ((requests > 0)) || { cat "$out" >&2; die "no request completed through $name"; }
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$name" "$requests" "$duration_us" \
        "$p50_us" "$p99_us" "$((status_errors + socket_errors))" "$((cpu1 - cpu0))" "$rss" "$other" >>"$RUNS"
    awk -v r="$round" -v n="$name" -v q="$requests" -v d="$duration_us" -v a="$p50_us" \
        -v b="$p99_us" -v e="$((status_errors + socket_errors))" -v c="$((cpu1 - cpu0))" -v m="$rss" -v o="$other" \
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

# Round-robin order, rotated each round, so no proxy always runs first or last
# (thermal state, page cache, whatever the previous run left behind).
n=${#SEL[@]}
for ((r = 0; r < ROUNDS; r++)); do
    for ((i = 0; i < n; i++)); do
        bench_one "${SEL[$(((r + i) % n))]}" $((r + 1))
    done
done

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
mkdir -p "$BENCH/results"
mosn_rev="$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
{
    printf 'date\t%s\n' "$DATE"
    machine_info
    printf 'nginx\t%s\n' "$(nginx -v 2>&1 | sed 's/.*version: //')"
    printf 'haproxy\t%s\n' "$(haproxy -v | head -n1 | awk '{print $3}')"
    printf 'envoy\t%s\n' "$("$ENVOY_BIN" --version | grep -o 'version: .*' | sed 's/version: //')"
    printf 'wrk\t%s\n' "$(wrk -v 2>&1 | head -n1 | awk '{print $2}')"
    selected mosn && printf 'mosn-rs\t%s (git %s)\n' "$MOSN_BIN" "$mosn_rev"
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
    printf 'open files limit\t%s\n' "$NOFILE"
} >"$TMP/info.tsv"

"$PY" "$BENCH/report.py" --runs "$RUNS" --idle "$IDLE_OUT" --info "$TMP/info.tsv" \
    --order "${SEL[*]}" --md "$BENCH/results/$DATE.md" --png "$BENCH/results/$DATE.png"
cat "$BENCH/results/$DATE.md"
log "wrote bench/results/$DATE.md and bench/results/$DATE.png"
[[ -z $FAILED ]] || die "proxy died during the idle test:$FAILED"
