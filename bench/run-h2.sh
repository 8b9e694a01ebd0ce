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
TEST_VENV="$REPO/.venv"       # grpcio, from scripts/setup.sh

parse_args 2,26 "$@"   # BUILD
declare -a SEL SCEN   # set by pick_list
pick_list SEL PROXIES "$PROXIES" "mosn envoy nghttpx nginx"
pick_list SCEN SCENARIOS "$SCENARIOS" "h2c grpc grpc-py"
selected() { in_list "$1" "${SEL[@]}"; }
scenario() { in_list "$1" "${SCEN[@]}"; }
# The proxies measured in scenario $1: nginx has no HTTP/2 proxy_pass, only
# grpc_pass, so it sits out h2c.
proxies_for() {
    if [[ $1 == h2c ]]; then sel_without nginx; else echo "${SEL[*]}"; fi
}

# h2load runs are bounded by DURATION; H2LOAD_TIMEOUT only guards against a hang.
H2LOAD_TIMEOUT=$(load_timeout "$DURATION")

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
# The h2c upstream (lib.sh's write_upstream with these arguments): nginx
# serving h2c (prior knowledge), GET / -> the 20-byte body.
# keepalive_requests (the requests one HTTP/2 connection may carry) is lifted
# far above what a run sends: a proxy multiplexes all its requests on one
# upstream connection, and when nginx reaches the limit it sends GOAWAY and
# ignores the streams already on their way, which every proxy turns into
# failed requests. Envoy, mosn-rs and nghttpx multiplex on one upstream
# connection: http2_max_concurrent_streams lets all of h2load's CONNS x
# STREAMS streams through it at once.
UPSTREAM_H2=(http2 1000000000 '        http2_max_concurrent_streams 4096;')

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

# The proxies, all to 127.0.0.1:$UP (the scenario's upstream), h2c both ways
# (lib.sh: write_mosn, write_envoy, write_nginx_proxy). Envoy: codec_type
# HTTP2 takes h2c with prior knowledge; the cluster speaks h2
# (explicit_http_config).
ENVOY_H2_CLUSTER='    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}'

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

start_proxy() {
    case "$1" in
        mosn)    write_mosn Http2 Http2 "$UP"; start_mosn ;;
        envoy)   write_envoy HTTP2 "$UP" "" "$ENVOY_H2_CLUSTER"; start_envoy ;;
        nghttpx) write_nghttpx; start nghttpx nghttpx --conf="$TMP/nghttpx.conf" ;;
        # grpc_pass: h2 downstream, h2 upstream, but one stream per upstream
        # connection (nginx does not multiplex upstream), hence the large pool.
        nginx)   write_nginx_proxy "$UP" 1024 http2 'grpc_pass grpc://up;'; start_nginx nginx ;;
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
    local up=$UP_PID line logargs=() resargs=()
    h2load_args "$scen"
    ((LATLOG)) && logargs=(--log-file="$lat") && resargs=(--log "$lat")
    [[ $scen == h2c ]] || resargs+=(--grpc-message-bytes "$GRPC_LEN")
    [[ $name == direct ]] && up=""
    meter_begin "$pid" "$up"
    timeout "$H2LOAD_TIMEOUT" h2load -c"$CONNS" -m"$STREAMS" -D "$DURATION" "${logargs[@]}" \
        "${H2ARGS[@]}" "http://127.0.0.1:${PORT[$name]}$H2PATH" >"$out" 2>&1 \
        || { tail -n 30 "$out" >&2; die "h2load against $name ($scen) failed"; }
    meter_end
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
        "$grpc_errors" "$METER_CPU" "$METER_RSS" "$METER_OTHER" "$METER_UPSTREAM" >>"$RUNS"
    awk -v s="$scen" -v r="$round" -v n="$name" -v q="$requests" -v d="$duration_us" -v a="$p50_us" \
        -v mn="$mean_us" -v f="$failed" -v g="$grpc_errors" -v c="$METER_CPU" -v m="$METER_RSS" -v o="$METER_OTHER" \
        'BEGIN { printf "[bench] %-7s round %s %-7s %7.0f req/s  mean %.2f ms  p50 %.2f ms  failed %d  grpc-errors %d  CPU %.1f us/req  RSS %.1f MiB  other CPU %.0f%%\n",
                 s, r, n, q / (d / 1e6), mn / 1000, a / 1000, f, g, c / q, m / 1024, 100 * o / d }' >&2
}

# Upstreams: nginx for h2c, nghttpd for grpc, grpcio for grpc-py.
if scenario h2c; then
    write_upstream "${UPSTREAM_H2[@]}"
    start_nginx upstream
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
    run_rounds "bench_one $scen" "${PX[@]}"   # order rotated each round
    for p in "${PX[@]}"; do stop "$p"; done
done

# --- report ------------------------------------------------------------------------------
DATE="$(date +%F)"
tools=(nginx envoy nghttpx h2load)
selected mosn && tools+=(mosn)
{
    info_head "$DATE" "${tools[@]}"
    scenario grpc && printf 'grpc upstream\t%s (canned answer)\n' "$(nghttpd --version | head -n1)"
    if scenario grpc-py; then
        printf 'grpc-py upstream\t%s\n' "$("$GRPC_PY" -c 'import grpc, sys; print("grpcio %s, Python %s" % (grpc.__version__, sys.version.split()[0]))') (bench/grpc_upstream.py, asyncio server)"
    fi
    printf 'load\th2load -c%s -m%s -D %s (one thread), %s round(s) per scenario, order rotated each round\n' \
        "$CONNS" "$STREAMS" "$DURATION" "$ROUNDS"
    printf 'latency\t%s\n' "$( ((LATLOG)) && echo 'p50/p99 from h2load --log-file (every request)' || echo 'mean/sd from h2load only (LATLOG=0)')"
    printf 'gRPC request\t%s bytes (5-byte prefix + Msg text "%s" count 1), echoed back\n' "$GRPC_LEN" "$BODY"
} >"$TMP/info.tsv"
write_report -h2 report_h2.py --runs "$RUNS" --order "${SEL[*]}" --scenarios "${SCEN[*]}"
