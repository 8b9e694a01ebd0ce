#!/usr/bin/env bash
# mosn-rs HTTP/2 benchmark: mosn-rs against Envoy, nghttpx and nginx, each with
# ONE worker on loopback, HTTP/2 (h2c, prior knowledge) on both sides, driven
# by h2load. Three scenarios, each through every proxy in the same run:
#   h2c      GET /, upstream nginx (listen ... http2) returning a 20-byte body
#   grpc     gRPC unary POST /mosn.test.Echo/Unary, upstream nghttpd answering
#            a canned gRPC response (message + trailer grpc-status: 0)
#   grpc-py  the same call, upstream a real grpcio server (Python, one core:
#            it caps req/s, see bench/README.md)
# nginx is in the gRPC scenarios only (grpc_pass); it cannot proxy to an h2
# upstream otherwise.
#
#   bench/run-h2.sh [--build]
#
# Environment (defaults in brackets):
#   PROXIES     any of "mosn envoy nghttpx nginx" [all four]
#   SCENARIOS   any of "h2c grpc grpc-py" [all three]
#   DURATION    h2load -D per run [10s]
#   ROUNDS      rounds per scenario; each runs every proxy once, order rotated [3]
#   CONNS       h2load connections (-c) [16]
#   STREAMS     h2load max concurrent streams per connection (-m) [32]
#   LATLOG      1 = h2load --log-file for p50/p99, 0 = mean/sd only [1]
#   KEEP_TMP    1 = keep the temp dir (configs, logs, raw h2load output) [0]
#
# Writes bench/results/<YYYY-MM-DD>-h2.md and .png. See bench/README.md.
# Only 127.0.0.1 is used; every process started here is stopped on exit.
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"   # REPO BENCH VENV MOSN_BIN, helpers

PROXIES="${PROXIES:-mosn envoy nghttpx nginx}"
SCENARIOS="${SCENARIOS:-h2c grpc grpc-py}"
DURATION="${DURATION:-10s}"
ROUNDS="${ROUNDS:-3}"
CONNS="${CONNS:-16}"
STREAMS="${STREAMS:-32}"
LATLOG="${LATLOG:-1}"
KEEP_TMP="${KEEP_TMP:-0}"
BODY="01234567890123456789"   # the fixed 20-byte h2c response body
TEST_VENV="$REPO/.venv"       # grpcio, from scripts/setup.sh

BUILD=0
for arg in "$@"; do
    case "$arg" in
        --build) BUILD=1 ;;
        -h|--help) sed -n '2,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
    esac
done

read -ra SEL <<<"$PROXIES"
((${#SEL[@]})) || die "PROXIES is empty"
for p in "${SEL[@]}"; do
    case "$p" in mosn|envoy|nghttpx|nginx) ;; *) die "unknown proxy '$p' in PROXIES (known: mosn envoy nghttpx nginx)" ;; esac
done
read -ra SCEN <<<"$SCENARIOS"
((${#SCEN[@]})) || die "SCENARIOS is empty"
for s in "${SCEN[@]}"; do
    case "$s" in h2c|grpc|grpc-py) ;; *) die "unknown scenario '$s' in SCENARIOS (known: h2c grpc grpc-py)" ;; esac
done
selected() { [[ " ${SEL[*]} " == *" $1 "* ]]; }
scenario() { [[ " ${SCEN[*]} " == *" $1 "* ]]; }
# The proxies measured in scenario $1: nginx has no HTTP/2 proxy_pass, only
# grpc_pass, so it sits out h2c.
proxies_for() {
    local p list=()
    for p in "${SEL[@]}"; do
        [[ $1 == h2c && $p == nginx ]] && continue
        list+=("$p")
    done
    echo "${list[*]}"
}

# h2load runs are bounded by DURATION; H2LOAD_TIMEOUT only guards against a hang.
[[ "$(dur_secs "$DURATION")" =~ ^[0-9]+$ ]] || die "DURATION '$DURATION' not understood (use e.g. 10s, 2m)"
H2LOAD_TIMEOUT=$(( $(dur_secs "$DURATION") + 30 ))

# --- tools ---------------------------------------------------------------------
setup_tools --h2   # PY, ENVOY_BIN; h2load and nghttpx too
selected mosn && ensure_mosn "$BUILD" 'Leave mosn out, e.g. PROXIES="envoy nghttpx nginx".'
# grpcio (for the grpc-py upstream and for grpc_check.py) lives in the test venv.
GRPC_PY="$TEST_VENV/bin/python"
if scenario grpc || scenario grpc-py; then
    if ! "$GRPC_PY" -c 'import grpc' >/dev/null 2>&1; then
        log "no grpcio in $TEST_VENV: running scripts/setup.sh"
        bash "$REPO/scripts/setup.sh"
        "$GRPC_PY" -c 'import grpc' >/dev/null 2>&1 || die "scripts/setup.sh left no grpcio in $TEST_VENV"
    fi
fi
raise_nofile   # NOFILE

# --- temp dir and cleanup (lib.sh) -----------------------------------------------
make_tmp mosn-bench-h2   # TMP
read -r 'PORT[upstream]' 'PORT[grpcup]' 'PORT[grpcpy]' <<<"$(free_ports 3)"

# The gRPC request, also the expected answer (the service echoes): a 5-byte
# prefix (uncompressed, length) and Msg{text: "01234567890123456789", count: 1}
# of tests/peers/echo.proto, 29 bytes in all.
GRPC_REQ="$TMP/grpc-request.bin"
"$PY" - "$GRPC_REQ" <<'EOF'
import struct, sys
text = b"01234567890123456789"
msg = bytes([0x0A, len(text)]) + text + bytes([0x18, 1])   # field 1 text, field 3 count
open(sys.argv[1], "wb").write(b"\0" + struct.pack(">I", len(msg)) + msg)
EOF
GRPC_LEN=$(stat -c %s "$GRPC_REQ")
GRPC_PATH=/mosn.test.Echo/Unary

# Readiness probes: `PROBE PORT` succeeds when the expected answer comes back.
probe_h2c() {
    [[ "$(curl -s --max-time 1 --http2-prior-knowledge "http://127.0.0.1:$1/" 2>/dev/null || true)" == "$BODY" ]]
}
probe_grpc() {
    rm -f "$TMP/probe.out"
    curl -s --max-time 1 --http2-prior-knowledge -H 'content-type: application/grpc' \
        -H 'te: trailers' --data-binary @"$GRPC_REQ" -o "$TMP/probe.out" \
        "http://127.0.0.1:$1$GRPC_PATH" 2>/dev/null && cmp -s "$TMP/probe.out" "$GRPC_REQ"
}

# --- configs ---------------------------------------------------------------------
# The h2c upstream: nginx serving h2c (prior knowledge), GET / -> the 20-byte
# body. keepalive_requests (the requests one HTTP/2 connection may carry) is
# lifted far above what a run sends: a proxy multiplexes all its requests on
# one upstream connection, and when nginx reaches the limit it sends GOAWAY
# and ignores the streams already on their way, which every proxy turns into
# failed requests.
write_upstream() {
    local d="$TMP/upstream"
    { nginx_common "$d"; cat <<EOF
http {
$(nginx_http_common "$d" 1000000000)
    server {
        listen 127.0.0.1:${PORT[upstream]} http2 backlog=4096;
        # Envoy, mosn-rs and nghttpx multiplex on one upstream connection: let
        # all of h2load's CONNS x STREAMS streams through it at once.
        http2_max_concurrent_streams 4096;
        location / { default_type text/plain; return 200 "$BODY"; }
    }
}
EOF
    } >"$TMP/upstream.conf"
}

# The canned gRPC upstream: nghttpd (nghttp2's reference server, one worker
# thread) serving, for any method, the file $GRPC_PATH under its document
# root -- the 29 bytes of the request, so the call looks echoed -- followed by
# the trailer grpc-status: 0 (--trailer), without content-length. nghttpd
# answers only once the request's END_STREAM has arrived. Unlike a real gRPC
# server it sends no content-type (it takes that from a file extension);
# h2load and the proxies do not look at it, and grpcio accepts the answer
# (grpc_check.py runs against it first). nginx cannot stand in: `return`
# sends no binary bytes, and when it answers (a static file, with add_trailer)
# before the request's DATA frame has arrived it resets the finished stream,
# which nginx's own grpc_pass takes for an error (a 502 for the next call).
start_grpc_upstream() {
    local root="$TMP/grpc-www"
    mkdir -p "$root${GRPC_PATH%/*}"
    cp "$GRPC_REQ" "$root$GRPC_PATH"
    start grpcup nghttpd --no-tls -a 127.0.0.1 -d "$root" -n 1 -m 4096 \
        --trailer 'grpc-status: 0' --no-content-length "${PORT[grpcup]}"
}

# The proxies, all to 127.0.0.1:$UP (the scenario's upstream), h2c both ways.
write_mosn() {
    cat >"$TMP/mosn.json" <<EOF
{"servers":[{"default_log_path":"stderr","default_log_level":"ERROR","processor":1,
  "routers":[{"router_config_name":"r","virtual_hosts":[{"name":"h","domains":["*"],"routers":[{"match":{"prefix":"/"},"route":{"cluster_name":"up"}}]}]}],
  "listeners":[{"name":"l","address":"127.0.0.1:${PORT[mosn]}","bind_port":true,"filter_chains":[{"filters":[{"type":"proxy","config":{"downstream_protocol":"Http2","upstream_protocol":"Http2","router_config_name":"r"}}]}]}]}],
 "cluster_manager":{"clusters":[{"name":"up","type":"SIMPLE","lb_type":"LB_ROUNDROBIN","hosts":[{"address":"127.0.0.1:$UP"}]}]}}
EOF
}

write_envoy() {
    # codec_type HTTP2 takes h2c with prior knowledge; the cluster speaks h2
    # (explicit_http_config). Defaults otherwise, as in run.sh: Envoy adds
    # x-request-id, x-forwarded-proto and x-envoy-expected-rq-timeout-ms.
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
          codec_type: HTTP2
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
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
    load_assignment:
      cluster_name: up
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $UP}}}
EOF
}

write_nghttpx() {
    # Our own config file, so Debian's /etc/nghttpx/nghttpx.conf (syslog, port
    # 3000) plays no part. A no-tls frontend takes h2c with prior knowledge;
    # proto=h2 makes the backend h2c. One worker thread (nghttpx also runs a
    # master process: both are measured). Defaults otherwise (adds Via and
    # X-Forwarded-Proto).
    cat >"$TMP/nghttpx.conf" <<EOF
frontend=127.0.0.1,${PORT[nghttpx]};no-tls
backend=127.0.0.1,$UP;;proto=h2
workers=1
errorlog-file=/dev/stderr
log-level=WARN
EOF
}

write_nginx() {
    # grpc_pass: h2 downstream, h2 upstream, but one stream per upstream
    # connection (nginx does not multiplex upstream), hence the large pool.
    local d="$TMP/nginx"
    { nginx_common "$d"; cat <<EOF
http {
$(nginx_http_common "$d")
    upstream up {
        server 127.0.0.1:$UP;
        keepalive 1024;
        keepalive_requests 1000000;
        keepalive_timeout 300s;
    }
    server {
        listen 127.0.0.1:${PORT[nginx]} http2 backlog=4096;
        location / { grpc_pass grpc://up; }
    }
}
EOF
    } >"$TMP/nginx.conf"
}

start_proxy() {
    case "$1" in
        mosn)    write_mosn;    start mosn "$MOSN_BIN" start -c "$TMP/mosn.json" ;;
        envoy)   write_envoy;   start envoy "$ENVOY_BIN" -c "$TMP/envoy.yaml" --concurrency 1 \
                                    --disable-hot-restart --log-level error ;;
        nghttpx) write_nghttpx; start nghttpx nghttpx --conf="$TMP/nghttpx.conf" ;;
        nginx)   write_nginx;   start nginx nginx -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$TMP/nginx.conf" ;;
    esac
}

# --- runs ----------------------------------------------------------------------------
RUNS="$TMP/runs.tsv"
: >"$RUNS"

# h2load_args SCENARIO: the request part of h2load's command line.
h2load_args() {
    case "$1" in
        h2c) H2ARGS=() ; H2PATH=/ ;;
        grpc|grpc-py) H2ARGS=(-d "$GRPC_REQ" -H 'content-type: application/grpc' -H 'te: trailers')
                      H2PATH=$GRPC_PATH ;;
    esac
}

# bench_one SCENARIO NAME ROUND: one bounded h2load run through NAME (or
# straight to the upstream for NAME=direct), with the CPU time of NAME's
# process tree read just before and just after it; also the upstream's CPU
# time (to tell when the upstream, not the proxy, is the bottleneck). "Other
# CPU" (lib.sh) is the machine's user CPU minus that of the proxy, the upstream
# and h2load.
bench_one() {
    local scen=$1 name=$2 round=$3 pid=${PID[$2]}
    local out="$TMP/h2load-$1-$2-$3.txt" lat="$TMP/lat-$1-$2-$3.tsv"
    local cpu0 cpu1 usr0 usr1 upt0=0 upt1=0 upu0=0 upu1=0 m0 m1 ch0 ch1 rss line other logargs=() resargs=()
    h2load_args "$scen"
    ((LATLOG)) && logargs=(--log-file="$lat") && resargs=(--log "$lat")
    [[ $scen == h2c ]] || resargs+=(--grpc-message-bytes "$GRPC_LEN")
    read -r cpu0 usr0 < <("$PY" "$BENCH/procstat.py" cpu "$pid")
    [[ $name == direct ]] || read -r upt0 upu0 < <("$PY" "$BENCH/procstat.py" cpu "$UP_PID")
    children_user_us ch0; m0=$(machine_user_us)
    timeout "$H2LOAD_TIMEOUT" h2load -c"$CONNS" -m"$STREAMS" -D "$DURATION" "${logargs[@]}" \
        "${H2ARGS[@]}" "http://127.0.0.1:${PORT[$name]}$H2PATH" >"$out" 2>&1 \
        || { tail -n 30 "$out" >&2; die "h2load against $name ($scen) failed"; }
    m1=$(machine_user_us); children_user_us ch1
    read -r cpu1 usr1 < <("$PY" "$BENCH/procstat.py" cpu "$pid")
    [[ $name == direct ]] || read -r upt1 upu1 < <("$PY" "$BENCH/procstat.py" cpu "$UP_PID")
    rss=$("$PY" "$BENCH/procstat.py" rss "$pid")
    other=$(((m1 - m0) - (usr1 - usr0) - (upu1 - upu0) - (ch1 - ch0)))
    line=$("$PY" "$BENCH/h2load_result.py" "$out" "${resargs[@]}") \
        || { tail -n 30 "$out" >&2; die "could not read h2load's output for $name ($scen)"; }
    rm -f "$lat"   # a few MB per run; the percentiles are taken
    # H2RESULT key=value ... -> local variables of the same names
    # shellcheck disable=SC2034  # not all of them are used
    local requests succeeded failed errored timeout duration_us mean_us sd_us p50_us p99_us \
        data_bytes status_2xx status_other grpc_errors kv
    for kv in ${line#H2RESULT }; do local "$kv"; done
    ((requests > 0)) || { tail -n 30 "$out" >&2; die "no request completed through $name ($scen)"; }
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$scen" "$round" "$name" \
        "$requests" "$duration_us" "$mean_us" "$sd_us" "$p50_us" "$p99_us" "$failed" "$errored" \
        "$grpc_errors" "$((cpu1 - cpu0))" "$rss" "$other" "$((upt1 - upt0))" >>"$RUNS"
    awk -v s="$scen" -v r="$round" -v n="$name" -v q="$requests" -v d="$duration_us" -v a="$p50_us" \
        -v mn="$mean_us" -v f="$failed" -v g="$grpc_errors" -v c="$((cpu1 - cpu0))" -v m="$rss" -v o="$other" \
        'BEGIN { printf "[bench] %-7s round %s %-7s %7.0f req/s  mean %.2f ms  p50 %.2f ms  failed %d  grpc-errors %d  CPU %.1f us/req  RSS %.1f MiB  other CPU %.0f%%\n",
                 s, r, n, q / (d / 1e6), mn / 1000, a / 1000, f, g, c / q, m / 1024, 100 * o / d }' >&2
}

# Upstreams: nginx for h2c, nghttpd for grpc, grpcio for grpc-py.
if scenario h2c; then
    write_upstream
    start upstream nginx -p "$TMP/upstream" -e "$TMP/upstream/error.log" -c "$TMP/upstream.conf"
    wait_ready_by upstream "${PORT[upstream]}" probe_h2c
fi
if scenario grpc; then
    start_grpc_upstream
    wait_ready_by grpcup "${PORT[grpcup]}" probe_grpc
fi
if scenario grpc-py; then
    start grpcpy "$GRPC_PY" "$BENCH/grpc_upstream.py" "${PORT[grpcpy]}"
    wait_ready_by grpcpy "${PORT[grpcpy]}" probe_grpc
fi

for scen in "${SCEN[@]}"; do
    case "$scen" in
        h2c)     UP=${PORT[upstream]}; UP_PID=${PID[upstream]} ;;
        grpc)    UP=${PORT[grpcup]};   UP_PID=${PID[grpcup]} ;;
        grpc-py) UP=${PORT[grpcpy]};   UP_PID=${PID[grpcpy]} ;;
    esac
    PORT[direct]=$UP; PID[direct]=$UP_PID
    probe=probe_grpc; [[ $scen == h2c ]] && probe=probe_h2c
    read -ra PX <<<"$(proxies_for "$scen")"
    ((${#PX[@]})) || { log "$scen: no proxy selected for it, skipped"; continue; }

    # Fresh proxies (and ports) per scenario, so each scenario's RSS is its own.
    read -ra ports <<<"$(free_ports ${#PX[@]})"
    for i in "${!PX[@]}"; do PORT[${PX[$i]}]=${ports[$i]}; done
    for p in "${PX[@]}"; do start_proxy "$p"; done
    for p in "${PX[@]}"; do wait_ready_by "$p" "${PORT[$p]}" "$probe"; done
    if [[ $scen != h2c ]]; then
        # A real grpcio client through each proxy (and direct): status OK from
        # the trailers, the message echoed.
        for p in direct "${PX[@]}"; do
            "$GRPC_PY" "$BENCH/grpc_check.py" "127.0.0.1:${PORT[$p]}" "$GRPC_REQ" >&2 \
                || die "$scen: a grpcio client's call through $p failed"
        done
    fi
    log "$scen: upstream :$UP; $(for p in "${PX[@]}"; do printf '%s :%s pid %s; ' "$p" "${PORT[$p]}" "${PID[$p]}"; done)"

    # Warm-up (not recorded): fill connection pools, fault in code and buffers.
    h2load_args "$scen"
    for p in direct "${PX[@]}"; do
        timeout 30 h2load -c"$CONNS" -m"$STREAMS" -D 2 "${H2ARGS[@]}" \
            "http://127.0.0.1:${PORT[$p]}$H2PATH" >"$TMP/warmup.txt" 2>&1 \
            || { tail -n 20 "$TMP/warmup.txt" >&2; die "warm-up h2load against $p ($scen) failed"; }
    done

    log "$scen: reference run straight to the upstream"
    bench_one "$scen" direct 0
    n=${#PX[@]}
    for ((r = 0; r < ROUNDS; r++)); do
        for ((i = 0; i < n; i++)); do
            bench_one "$scen" "${PX[$(((r + i) % n))]}" $((r + 1))
        done
    done
    for p in "${PX[@]}"; do stop "$p"; done
done

# --- report ------------------------------------------------------------------------------
DATE="$(date +%F)"
mkdir -p "$BENCH/results"
mosn_rev="$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
{
    printf 'date\t%s\n' "$DATE"
    machine_info
    printf 'nginx\t%s\n' "$(nginx -v 2>&1 | sed 's/.*version: //')"
    printf 'envoy\t%s\n' "$("$ENVOY_BIN" --version | grep -o 'version: .*' | sed 's/version: //')"
    printf 'nghttpx\t%s\n' "$(nghttpx --version | head -n1)"
    printf 'h2load\t%s\n' "$(h2load --version | head -n1)"
    scenario grpc && printf 'grpc upstream\t%s (canned answer)\n' "$(nghttpd --version | head -n1)"
    if scenario grpc-py; then
        printf 'grpc-py upstream\t%s\n' "$("$GRPC_PY" -c 'import grpc, sys; print("grpcio %s, Python %s" % (grpc.__version__, sys.version.split()[0]))') (bench/grpc_upstream.py, asyncio server)"
    fi
    # HEAD may have moved since the binary was built: give both.
    selected mosn && printf 'mosn-rs\t%s (built %s; git HEAD now %s)\n' "$MOSN_BIN" \
        "$(date -r "$MOSN_BIN" '+%F %T %Z')" "$mosn_rev"
    printf 'load\th2load -c%s -m%s -D %s (one thread), %s round(s) per scenario, order rotated each round\n' \
        "$CONNS" "$STREAMS" "$DURATION" "$ROUNDS"
    printf 'latency\t%s\n' "$( ((LATLOG)) && echo 'p50/p99 from h2load --log-file (every request)' || echo 'mean/sd from h2load only (LATLOG=0)')"
    printf 'gRPC request\t%s bytes (5-byte prefix + Msg text "%s" count 1), echoed back\n' "$GRPC_LEN" "$BODY"
    printf 'open files limit\t%s\n' "$NOFILE"
} >"$TMP/info.tsv"

"$PY" "$BENCH/report_h2.py" --runs "$RUNS" --info "$TMP/info.tsv" --order "${SEL[*]}" \
    --scenarios "${SCEN[*]}" --md "$BENCH/results/$DATE-h2.md" --png "$BENCH/results/$DATE-h2.png"
cat "$BENCH/results/$DATE-h2.md"
log "wrote bench/results/$DATE-h2.md and bench/results/$DATE-h2.png"
