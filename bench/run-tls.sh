#!/usr/bin/env bash
# mosn-rs TLS benchmark: mosn-rs against nginx and Envoy, each with ONE worker
# on loopback, terminating TLS 1.3 (an ECDSA P-256 certificate made here with
# openssl) in front of the same plain HTTP/1.1 nginx upstream (20-byte body).
# Two scenarios, each through every proxy in the same run, order rotated:
#   handshake  a new TLS connection per request, no session resumption,
#              HTTP/1.1 (hey -disable-keepalive): handshakes/s and proxy CPU
#              µs per handshake+request
#   keepalive  TLS keep-alive: HTTP/1.1 (wrk -t1) and h2 over TLS (h2load,
#              ALPN h2): req/s and proxy CPU µs per request
#
#   bench/run-tls.sh [--build]
#
# Environment (defaults in brackets):
#   PROXIES     any of "mosn nginx envoy" [all three]
#   SCENARIOS   any of "handshake keepalive" [both]
#   DURATION    length of each run [10s]
#   ROUNDS      rounds per load; each runs every proxy once, order rotated [3]
#   HS_CONNS    hey workers (connections at a time) in handshake [32]
#   CONNS       wrk connections in keepalive [64]
#   H2_CONNS    h2load connections (-c) in keepalive [16]
#   STREAMS     h2load concurrent streams per connection (-m) [32]
#   RETRIES     times a run is repeated when other processes used > 20 % of a
#               core during it (another build, say), after the machine calms [2]
#   KEEP_TMP    1 = keep the temp dir (configs, certificate, logs, raw output) [0]
#   MOSN_BIN    the mosn-rs binary [$CARGO_TARGET_DIR or target, /release/mosn-rs]
#
# Writes bench/results/<YYYY-MM-DD>-tls.md and .png. See bench/README.md.
# Only 127.0.0.1 is used; every process started here is stopped on exit.
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"   # REPO BENCH VENV MOSN_BIN BODY, helpers

# Settings: the environment's, else these defaults.
: "${PROXIES:=mosn nginx envoy}" "${SCENARIOS:=handshake keepalive}"
: "${DURATION:=10s}" "${ROUNDS:=3}" "${KEEP_TMP:=0}" "${RETRIES:=2}"
: "${HS_CONNS:=32}" "${CONNS:=64}" "${H2_CONNS:=16}" "${STREAMS:=32}"

parse_args 2,29 "$@"   # BUILD
declare -a SEL SCEN   # set by pick_list
pick_list SEL PROXIES "$PROXIES" "mosn nginx envoy"
pick_list SCEN SCENARIOS "$SCENARIOS" "handshake keepalive"
selected() { in_list "$1" "${SEL[@]}"; }
LOAD_TIMEOUT=$(load_timeout "$DURATION")

# --- tools ---------------------------------------------------------------------
setup_tools --tls   # PY, ENVOY_BIN; hey, h2load, openssl too
selected mosn && ensure_mosn "$BUILD" 'Leave mosn out, e.g. PROXIES="nginx envoy".'
raise_nofile   # NOFILE

# --- temp dir, certificate, upstream -----------------------------------------------
make_tmp mosn-bench-tls   # TMP
read -r 'PORT[upstream]' <<<"$(free_ports 1)"

# A self-signed ECDSA P-256 certificate for localhost (every client below
# sends SNI "localhost" and none verifies the chain).
CERT="$TMP/tls/cert.pem" KEY="$TMP/tls/key.pem"
mkdir -p "$TMP/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7 \
    -subj /CN=localhost -addext 'subjectAltName=DNS:localhost,IP:127.0.0.1' \
    -keyout "$KEY" -out "$CERT" 2>"$TMP/openssl-req.log" \
    || { cat "$TMP/openssl-req.log" >&2; die "openssl could not make the test certificate"; }

probe_http() { [[ "$(curl -s --max-time 1 "http://127.0.0.1:$1/" 2>/dev/null || true)" == "$BODY" ]]; }
probe_https() { [[ "$(curl -sk --max-time 1 "https://localhost:$1/" 2>/dev/null || true)" == "$BODY" ]]; }
probe_h2() {   # answered over h2 (ALPN) with the body
    [[ "$(curl -sk --http2 --max-time 1 -w ' %{http_version}' "https://localhost:$1/" 2>/dev/null || true)" == "$BODY 2" ]]
}

# shellcheck disable=SC2119  # no arguments: plain HTTP/1.1, as in run.sh
write_upstream
start_nginx upstream
wait_ready_by upstream "${PORT[upstream]}" probe_http

# --- proxy configs (lib.sh's write_* with TLS added) --------------------------------
# Per scenario: TLS 1.3 only, the same certificate, no session resumption
# where the proxy lets us turn it off, and ALPN: handshake offers http/1.1,
# keepalive h2 and http/1.1. X25519 and the cipher are left to the peers
# (the report lists what each proxy negotiates with an OpenSSL client).
start_proxy() {
    local scen=$1 name=$2 alpn h2=""
    alpn="[http/1.1]"
    [[ $scen == keepalive ]] && alpn="[h2, http/1.1]" h2=" http2"
    case "$name" in
        nginx)
            # nginx 1.22 (Debian 12) has no `http2 on;` (1.25.1+): h2 is a listen option.
            write_nginx_proxy "${PORT[upstream]}" 256 "ssl$h2" "$NGINX_PROXY_H1" "\
        ssl_certificate $CERT;
        ssl_certificate_key $KEY;
        ssl_protocols TLSv1.3;
        ssl_session_cache off;
        ssl_session_tickets off;"
            start_nginx nginx ;;
        envoy)
            write_envoy AUTO "${PORT[upstream]}" "\
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          disable_stateless_session_resumption: true
          disable_stateful_session_resumption: true
          common_tls_context:
            alpn_protocols: $alpn
            tls_params: {tls_minimum_protocol_version: TLSv1_3, tls_maximum_protocol_version: TLSv1_3}
            tls_certificates:
            - certificate_chain: {filename: $CERT}
              private_key: {filename: $KEY}"
            start_envoy ;;
        mosn)
            # alpn from downstream_protocol (docs/tls.md): Http1 offers
            # http/1.1, Auto h2 and http/1.1. Stateful session resumption
            # cannot be turned off (docs/tls.md); the clients never offer a
            # session, so it plays no part beyond the tickets mosn-rs sends.
            local proto=Http1
            [[ $scen == keepalive ]] && proto=Auto
            write_mosn "$proto" Http1 "${PORT[upstream]}" \
                "\"tls_context\":{\"status\":true,\"cert_chain\":\"$CERT\",\"private_key\":\"$KEY\",\"min_version\":\"tlsv1_3\",\"max_version\":\"tlsv1_3\"}," \
                '"max_request_per_conn":0,'
            start_mosn ;;
    esac
}

# tls_facts PORT: how the proxy's TLS looks to an OpenSSL client (wrk and
# h2load use OpenSSL): version, cipher, key exchange, NewSessionTickets sent
# after a handshake, and whether it resumes a session offered to it (tried
# three times: once is enough for "yes").
tls_facts() {
    local port=$1 out="$TMP/s_client.txt" sess="$TMP/session.pem" req reused=no i
    local -a s_client=(timeout 10 openssl s_client -connect "127.0.0.1:$port" -servername localhost -ign_eof)
    req=$'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'
    for i in 1 2 3; do
        rm -f "$sess"
        "${s_client[@]}" -msg -sess_out "$sess" <<<"$req" >"$out" 2>&1 || true
        [[ -s $sess ]] || continue
        "${s_client[@]}" -sess_in "$sess" <<<"$req" >"$out.again" 2>&1 || true
        # (grep on a file: `s_client | grep -q` can fail under pipefail when
        # grep stops reading early and s_client dies of SIGPIPE.)
        grep -q '^Reused,' "$out.again" && { reused=yes; break; }
    done
    printf '%s, %s; NewSessionTicket ×%s; resumes an offered session: %s\n' \
        "$(grep -m1 -o '^New, [^,]*, Cipher is .*' "$out" | sed 's/^New, //; s/Cipher is //' || echo '?')" \
        "$(grep -m1 -o 'Server Temp Key: [^,]*' "$out" | sed 's/Server Temp Key: //' || echo '?')" \
        "$(grep -c '^<<< .*NewSessionTicket' "$out" || true)" "$reused"
}

pretty() { case "$1" in mosn) echo mosn-rs ;; envoy) echo Envoy ;; *) echo "$1" ;; esac; }

# --- runs ----------------------------------------------------------------------------
RUNS="$TMP/runs.tsv"
: >"$RUNS"
INFO_EXTRA="$TMP/info-extra.tsv"
: >"$INFO_EXTRA"

# The handshake load is hey (Debian's package; Go's net/http and crypto/tls)
# with -disable-keepalive: one HTTP/1.1 request per connection (Go sends
# `Connection: close`), HS_CONNS workers in a closed loop for DURATION. It is
# the one load generator at hand that never resumes a TLS session: Go's
# tls.Config has no ClientSessionCache unless given one, so every connection
# is a full handshake. The others, tried on this machine:
#   - h2load --h1 (reconnecting on `Connection: close`) and wrk (a Lua script
#     setting it) keep their SSL object across reconnects and offer the last
#     session: against an nginx with a session cache, every handshake but the
#     first per connection slot was a resumption. nginx and Envoy can refuse
#     resumption, mosn-rs cannot (stateful resumption is always on), so they
#     would measure resumption for mosn-rs alone. (h2load -D also never ended
#     when reconnecting.)
#   - curl --parallel --no-sessionid: full handshakes, but ~0.8 ms of client
#     CPU each (a new SSL_CTX and CA store per connection).
#   - openssl s_time -new: one connection at a time, HTTP/1.0 without Host.
# hey needs `-host localhost`: it otherwise sends the Host header's
# "127.0.0.1:PORT", port included, as SNI, which rustls refuses (illegal
# parameter: every handshake with mosn-rs failed). The client side of a TLS
# 1.3 handshake costs more than the server side (ECDSA P-256 verify ~3x sign,
# X25519 on both sides): hey spends ~0.4 ms of CPU per handshake (kernel
# connect/close included), the proxies 0.15-0.35 ms, so on 2 cores hey takes
# the larger share. It runs on both cores (GOMAXPROCS = cores), so it is not
# pinned at one; each run records its CPU (gen CPU) and the machine's busy
# time: when the machine is near 100 % busy, handshakes/s is what 2 shared
# cores allow, and CPU µs per handshake is the figure to compare.
#
# run_load LOAD NAME URL OUT LAT: one bounded run of LOAD (handshake, h1, h2)
# through NAME at URL, its output in OUT (h2load's per-request log in LAT).
run_load() {
    case "$1" in
        handshake) timeout "$LOAD_TIMEOUT" hey -z "$DURATION" -c "$HS_CONNS" -disable-keepalive \
                       -host localhost "$3" ;;
        h1) timeout "$LOAD_TIMEOUT" wrk -t1 -c"$CONNS" -d"$DURATION" --latency \
                -s "$BENCH/wrk-report.lua" "$3" ;;
        h2) timeout "$LOAD_TIMEOUT" h2load -c"$H2_CONNS" -m"$STREAMS" -D "$DURATION" \
                --log-file="$5" "$3" ;;
    esac >"$4" 2>&1 || { tail -n 30 "$4" >&2; die "$1 run through $2 failed"; }
}

# bench_one LOAD NAME ROUND: one bounded run of LOAD through NAME, metered and
# repeated when something else shared the machine (lib.sh: metered).
bench_one() {
    local load=$1 name=$2 round=$3 out="$TMP/$1-$2-$3.txt" url="https://localhost:${PORT[$2]}/"
    local line lat="$TMP/lat-$1-$2-$3.tsv"
    metered "$load through $name" "${PID[$name]}" "${PID[upstream]}" run_load "$load" "$name" "$url" "$out" "$lat"
    kill -0 "${PID[$name]}" 2>/dev/null || { tail -n 20 "$TMP/$name.log" >&2; die "$name exited during the $load run"; }
    # One line of key=value pairs, whichever the generator.
    case "$load" in
        handshake) line=$("$PY" "$BENCH/hey_result.py" "$out") ;;
        h1) line=$(grep '^WRKRESULT ' "$out") ;;
        h2) grep -q '^Application protocol: h2$' "$out" || { cat "$out" >&2; die "h2load did not get ALPN h2 from $name"; }
            line=$("$PY" "$BENCH/h2load_result.py" "$out" --log "$lat") && rm -f "$lat" ;;
    esac || { tail -n 30 "$out" >&2; die "could not read the $load output for $name"; }
    # shellcheck disable=SC2034  # not all of them are used
    local requests duration_us p50_us p99_us errors=0 status_errors=0 socket_errors=0 failed=0 kv
    for kv in ${line#* }; do [[ $kv == *=* ]] && local "$kv"; done
    ((requests > 0)) || { tail -n 30 "$out" >&2; die "no request completed through $name ($load)"; }
    errors=$((errors + status_errors + socket_errors + failed))
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$load" "$round" "$name" \
        "$requests" "$duration_us" "$p50_us" "$p99_us" "$errors" "$METER_CPU" "$METER_RSS" \
        "$METER_OTHER" "$METER_GEN" "$METER_UPSTREAM" "$METER_BUSY" >>"$RUNS"
    awk -v l="$load" -v r="$round" -v n="$name" -v q="$requests" -v d="$duration_us" -v a="$p50_us" \
        -v e="$errors" -v c="$METER_CPU" -v g="$METER_GEN" -v b="$METER_BUSY" -v k="$(nproc)" \
        'BEGIN { printf "[bench] %-9s round %s %-5s %7.0f req/s  p50 %.2f ms  errors %d  CPU %.1f us/req (%.0f%% of a core)  generator %.0f%%  machine busy %.0f%%\n",
                 l, r, n, q / (d / 1e6), a / 1000, e, c / q, 100 * c / d, 100 * g / d, 100 * b / d / k }' >&2
}

# warm_up LOAD NAME: 2 s of LOAD through NAME, not recorded.
warm_up() {
    local url="https://localhost:${PORT[$2]}/"
    case "$1" in
        handshake) timeout 30 hey -z 2s -c "$HS_CONNS" -disable-keepalive -host localhost "$url" ;;
        h1) timeout 30 wrk -t1 -c"$CONNS" -d2s "$url" ;;
        h2) timeout 30 h2load -c"$H2_CONNS" -m"$STREAMS" -D 2 "$url" ;;
    esac >"$TMP/warmup.txt" 2>&1 || { tail -n 20 "$TMP/warmup.txt" >&2; die "warm-up $1 through $2 failed"; }
}

for scen in "${SCEN[@]}"; do
    loads=(handshake)
    [[ $scen == keepalive ]] && loads=(h1 h2)
    # Fresh proxies (and ports) per scenario, so each scenario's RSS is its own.
    read -ra ports <<<"$(free_ports ${#SEL[@]})"
    for i in "${!SEL[@]}"; do PORT[${SEL[$i]}]=${ports[$i]}; done
    for p in "${SEL[@]}"; do start_proxy "$scen" "$p"; done
    for p in "${SEL[@]}"; do
        wait_ready_by "$p" "${PORT[$p]}" probe_https
        [[ $scen == keepalive ]] && { probe_h2 "${PORT[$p]}" || die "$p does not answer h2 over TLS (ALPN)"; }
        printf 'TLS %s (%s)\t%s\n' "$(pretty "$p")" "$scen" "$(tls_facts "${PORT[$p]}")" >>"$INFO_EXTRA"
    done
    log "$scen: upstream :${PORT[upstream]}; $(for p in "${SEL[@]}"; do printf '%s :%s pid %s; ' "$p" "${PORT[$p]}" "${PID[$p]}"; done)"
    for load in "${loads[@]}"; do
        for p in "${SEL[@]}"; do warm_up "$load" "$p"; done
        run_rounds "bench_one $load" "${SEL[@]}"   # order rotated each round
    done
    # What each proxy logged (level error; mosn-rs ERROR): a finding if anything.
    for p in "${SEL[@]}"; do
        logf="$TMP/$p.log"
        [[ $p == nginx ]] && logf="$TMP/nginx/error.log"
        printf 'log %s (%s)\t%s line(s)%s\n' "$(pretty "$p")" "$scen" "$(wc -l <"$logf")" \
            "$(head -c 300 "$logf" | head -n 1 | sed 's/^/, first: /; s/\t/ /g')" >>"$INFO_EXTRA"
    done
    for p in "${SEL[@]}"; do stop "$p"; done
    rm -f "$TMP/nginx/error.log"   # nginx appends to it: start afresh next scenario
done

# --- report ------------------------------------------------------------------------------
DATE="$(date +%F)"
tools=(nginx envoy hey wrk h2load openssl)
selected mosn && tools+=(mosn)
{
    info_head "$DATE" "${tools[@]}"
    printf 'certificate\tECDSA P-256, self-signed (openssl req), SNI localhost; TLS 1.3 only on every proxy\n'
    printf 'handshake load\they -z %s -c %s -disable-keepalive -host localhost (a new connection and full handshake per request, HTTP/1.1)\n' \
        "$DURATION" "$HS_CONNS"
    printf 'keepalive h1 load\twrk -t1 -c%s -d%s --latency\n' "$CONNS" "$DURATION"
    printf 'keepalive h2 load\th2load -c%s -m%s -D %s (ALPN h2)\n' "$H2_CONNS" "$STREAMS" "$DURATION"
    printf 'rounds\t%s per load, order rotated each round; %s run(s) repeated (RETRIES=%s) because other processes used > 20 %% of a core during them\n' \
        "$ROUNDS" "$REPEATED" "$RETRIES"
    printf 'upstream\tnginx, plain HTTP/1.1, 20-byte body; every proxy keeps a keep-alive pool to it\n'
    cat "$INFO_EXTRA"
} >"$TMP/info.tsv"
write_report -tls report_tls.py --runs "$RUNS" --order "${SEL[*]}" --cores "$(nproc)"
