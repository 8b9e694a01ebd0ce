# shellcheck shell=bash disable=SC2034  # sets variables for the scripts sourcing it
# Shared by bench/run.sh (HTTP/1.1), bench/run-h2.sh (HTTP/2, gRPC),
# bench/run-tls.sh (TLS), bench/run-rpc.sh (Bolt, Dubbo) and
# bench/run-observe.sh (access log and tracing cost). Sourced, never run: the caller has `set -euo
# pipefail` and sets KEEP_TMP and ROUNDS before using them. Only 127.0.0.1 is
# used; every process started with `start` is stopped when the caller exits
# (also on Ctrl-C or an error).

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$BENCH/.." && pwd)"
VENV="$REPO/.venv-bench"
# The binary measured: MOSN_BIN if set, else cargo's release build, in
# CARGO_TARGET_DIR when that is set (where --build then builds it too).
MOSN_BIN="${MOSN_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/release/mosn-rs}"
BODY="01234567890123456789"   # the upstream's fixed 20-byte response body

log() { echo "[bench $(date +%T)] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Load-generator runs are bounded by DURATION; a timeout only guards against a
# hung client. Accepts wrk's and h2load's forms: 10, 10s, 2m, 1h.
dur_secs() {
    local d=$1
    case "$d" in
        *s) echo "${d%s}" ;; *m) echo $(( ${d%m} * 60 )) ;; *h) echo $(( ${d%h} * 3600 )) ;; *) echo "$d" ;;
    esac
}

# bench/setup.sh with the given arguments, then PY (the bench venv's python)
# and ENVOY_BIN.
setup_tools() {
    bash "$BENCH/setup.sh" "$@"
    PY="$VENV/bin/python"
    ENVOY_BIN="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/envoy/_bin/envoy"
}

# ensure_mosn BUILD HINT: build MOSN_BIN (cargo build --release, which honours
# CARGO_TARGET_DIR) when BUILD is 1 or the binary is missing. HINT tells how to
# leave mosn out of the run.
ensure_mosn() {
    local build=$1 hint=$2
    if ((build)) || [[ ! -x $MOSN_BIN ]]; then
        [[ -f $REPO/Cargo.toml ]] || die "mosn-rs binary $MOSN_BIN is missing and there is no $REPO/Cargo.toml to build it from. $hint"
        log "building mosn-rs (cargo build --release)"
        (cd "$REPO" && cargo build --release) || die "cargo build --release failed"
    fi
    [[ -x $MOSN_BIN ]] || die "mosn-rs binary not found at $MOSN_BIN (even after building: is the binary target named 'mosn-rs'?). $hint"
}

# Raise the open-files limit as far as allowed (children inherit it); NOFILE.
raise_nofile() {
    ulimit -n 65535 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    NOFILE=$(ulimit -n)
}

# parse_args HELP_LINES ARG...: the scripts' command line, `--build` (sets
# BUILD=1) or `--help` (prints lines HELP_LINES, e.g. 2,17, of the calling
# script's header comment).
parse_args() {
    local help=$1 arg; shift
    BUILD=0
    for arg in "$@"; do
        case "$arg" in
            --build) BUILD=1 ;;
            -h|--help) sed -n "${help}p" "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
            *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
        esac
    done
}

# pick_list ARRAY VAR_NAME "VALUE" "KNOWN": split VALUE (the setting VAR_NAME)
# into the array ARRAY, dying on an empty list or a word not in KNOWN.
pick_list() {
    local -n _list=$1
    local w
    read -ra _list <<<"$3"
    ((${#_list[@]})) || die "$2 is empty"
    for w in "${_list[@]}"; do
        [[ " $4 " == *" $w "* ]] || die "unknown value '$w' in $2 (known: $4)"
    done
}
# in_list WORD ITEM...: whether WORD is one of the ITEMs.
in_list() {
    local w=$1; shift
    [[ " $* " == *" $w "* ]]
}

# sel_without WORD: the words of the array SEL (the proxies picked) but WORD,
# space-separated: the proxies of a scenario that one of them sits out.
sel_without() {
    local w list=()
    for w in "${SEL[@]}"; do [[ $w == "$1" ]] || list+=("$w"); done
    echo "${list[*]}"
}

# load_timeout DURATION: a generous bound for one load-generator run of
# DURATION (runs are bounded by DURATION; this only guards against a hang).
load_timeout() {
    [[ "$(dur_secs "$1")" =~ ^[0-9]+$ ]] || die "DURATION '$1' not understood (use e.g. 10s, 2m)"
    echo $(( $(dur_secs "$1") + 30 ))
}

# --- temp dir, processes, cleanup ----------------------------------------------
declare -A PID=() PORT=()
STARTED=()

# make_tmp PREFIX: the temp dir TMP, removed on exit unless the run failed or
# KEEP_TMP=1; installs the exit/signal traps that stop everything started.
make_tmp() {
    TMP="$(mktemp -d -t "$1.XXXXXX")"
    # nginx workers drop to 'nobody' when started as root: let them read configs.
    chmod 755 "$TMP"
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# kill_trees PID...: TERM each process, then KILL whatever of their process
# trees is left after 5 s. Whole trees are collected first: a master's workers
# must go too even if the master dies before them.
kill_trees() {
    local pid all=() tree=() i alive
    for pid in "$@"; do
        read -ra tree < <("$PY" "$BENCH/procstat.py" pids "$pid" 2>/dev/null || echo "$pid")
        all+=("${tree[@]}")
    done
    for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
    for ((i = 0; i < 50; i++)); do
        alive=0
        for pid in "${all[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for pid in "${all[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    ((${#STARTED[@]})) && kill_trees "${STARTED[@]}"
    wait 2>/dev/null || true
    if ((rc != 0)) || [[ $KEEP_TMP == 1 ]]; then
        log "temp dir kept for inspection: $TMP"
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}

# Free ports: bind port 0 on all sockets at once (so they are distinct), then
# release them. A tiny race with other programs is acceptable on a bench box.
free_ports() {
    "$PY" -c 'import socket,sys
ss=[socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"
}

# start NAME CMD...: runs CMD in the background with output to $TMP/NAME.log.
start() {
    local name=$1; shift
    "$@" >"$TMP/$name.log" 2>&1 &
    PID[$name]=$!
    STARTED+=($!)
}

# stop NAME: stops what `start NAME` started (and its descendants).
stop() {
    local name=$1 pid=${PID[$1]} keep=() p
    kill_trees "$pid"
    wait "$pid" 2>/dev/null || true
    for p in "${STARTED[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
    STARTED=("${keep[@]}")
}

# wait_ready_by NAME PORT PROBE: wait until `PROBE PORT` succeeds (max ~15 s),
# failing early, with NAME's last output lines, if NAME exits.
wait_ready_by() {
    local name=$1 port=$2 probe=$3 i
    for ((i = 0; i < 150; i++)); do
        if ! kill -0 "${PID[$name]}" 2>/dev/null; then
            local rc=0
            wait "${PID[$name]}" || rc=$?
            echo "--- last lines of $name's output:" >&2
            tail -n 20 "$TMP/$name.log" >&2
            die "$name exited at startup with status $rc"
        fi
        "$probe" "$port" && return 0
        sleep 0.1
    done
    tail -n 20 "$TMP/$name.log" >&2
    die "$name did not serve the expected body on 127.0.0.1:$port within 15 s"
}

# --- nginx config fragments ------------------------------------------------------
# nginx keeps its pid/temp files under a prefix dir of ours instead of /var.
nginx_common() {
    local dir=$1
    mkdir -p "$dir"
    cat <<EOF
worker_processes 1;
worker_rlimit_nofile $NOFILE;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log error;
events { worker_connections $((NOFILE - 100)); }
EOF
}
# nginx_http_common DIR [KEEPALIVE_REQUESTS]
nginx_http_common() {
    local dir=$1 requests=${2:-1000000}
    # keepalive_requests defaults to 1000 (for HTTP/2 too: requests per
    # connection): lift it so that no proxy reconnects mid-run (HAProxy, Envoy
    # and mosn-rs have no such limit here).
    cat <<EOF
    access_log off;
    keepalive_requests $requests;
    keepalive_timeout 300s;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
EOF
}

# --- configs shared by the scripts ---------------------------------------------------
# write_upstream [LISTEN_OPTIONS [KEEPALIVE_REQUESTS [SERVER_LINES]]]:
# $TMP/upstream.conf, an nginx on PORT[upstream] answering every request with
# 200 and the 20-byte $BODY; LISTEN_OPTIONS go on its listen line (e.g.
# http2), SERVER_LINES into its server block.
write_upstream() {
    local d="$TMP/upstream"
    { nginx_common "$d"; cat <<EOF
http {
$(nginx_http_common "$d" "${2:-}")
    server {
        listen 127.0.0.1:${PORT[upstream]}${1:+ $1} backlog=4096;${3:+
$3}
        location / { default_type text/plain; return 200 "$BODY"; }
    }
}
EOF
    } >"$TMP/upstream.conf"
}

# The location of an nginx HTTP/1.1 proxy to the pool `up` with upstream
# keep-alive (nginx speaks HTTP/1.0 upstream, closing, unless told otherwise).
NGINX_PROXY_H1='proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection "";'

# write_nginx_proxy UPSTREAM_PORT POOL LISTEN_OPTIONS LOCATION [SERVER_LINES]:
# $TMP/nginx.conf, the nginx proxy on PORT[nginx]: `location / { LOCATION }`
# in front of the upstream pool `up` (127.0.0.1:UPSTREAM_PORT, keeping POOL
# idle connections, no per-connection request limit).
write_nginx_proxy() {
    local d="$TMP/nginx"
    { nginx_common "$d"; cat <<EOF
http {
$(nginx_http_common "$d")
    upstream up {
        server 127.0.0.1:$1;
        keepalive $2;
        keepalive_requests 1000000;
        keepalive_timeout 300s;
    }
    server {
        listen 127.0.0.1:${PORT[nginx]}${3:+ $3} backlog=4096;${5:+
$5}
        location / { $4 }
    }
}
EOF
    } >"$TMP/nginx.conf"
}

# write_envoy_filter FILTER_YAML UPSTREAM_PORT [CHAIN_YAML [CLUSTER_YAML]]:
# $TMP/envoy.yaml, Envoy with a static listener on PORT[envoy] whose one
# network filter is FILTER_YAML (its `name:` line, then its other keys indented
# 8 spaces), in front of the STATIC cluster `up` (127.0.0.1:UPSTREAM_PORT).
# CHAIN_YAML: more keys of the filter chain (e.g. transport_socket), indented 6
# spaces; CLUSTER_YAML: more keys of the cluster, indented 4.
write_envoy_filter() {
    cat >"$TMP/envoy.yaml" <<EOF
static_resources:
  listeners:
  - name: l
    address: {socket_address: {address: 127.0.0.1, port_value: ${PORT[envoy]}}}
    filter_chains:
    - filters:
      - $1${3:+
$3}
  clusters:
  - name: up
    type: STATIC
    connect_timeout: 1s${4:+
$4}
    load_assignment:
      cluster_name: up
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $2}}}
EOF
}

# write_envoy CODEC UPSTREAM_PORT [CHAIN_YAML [CLUSTER_YAML]]: write_envoy_filter
# with an HTTP connection manager (codec_type CODEC) routing everything to the
# cluster `up`. Envoy's defaults otherwise: it adds x-request-id,
# x-forwarded-proto and x-envoy-expected-rq-timeout-ms.
write_envoy() {
    write_envoy_filter "name: envoy.filters.network.http_connection_manager
        typed_config:
          \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench
          codec_type: $1
          route_config:
            virtual_hosts:
            - name: h
              domains: [\"*\"]
              routes: [{match: {prefix: \"/\"}, route: {cluster: up}}]
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}" "${@:2}"
}

# write_mosn DOWNSTREAM UPSTREAM UPSTREAM_PORT [CHAIN_JSON [CLUSTER_JSON [MATCH_JSON
# [LISTENER_JSON [TOP_JSON]]]]]:
# $TMP/mosn.json, mosn-rs (MOSN v2 config, one worker) listening on
# PORT[mosn], a proxy filter (downstream_protocol DOWNSTREAM,
# upstream_protocol UPSTREAM) routing everything to the cluster `up`
# (127.0.0.1:UPSTREAM_PORT). CHAIN_JSON / CLUSTER_JSON / LISTENER_JSON /
# TOP_JSON: more members of the filter chain / cluster / listener / top-level
# object (e.g. access_logs, admin, tracing), each followed by a comma.
# MATCH_JSON: the route's match (default {"prefix":"/"}; RPC protocols match on
# headers instead).
write_mosn() {
    local match=${6:-'{"prefix":"/"}'}
    cat >"$TMP/mosn.json" <<EOF
{${8:-}"servers":[{"default_log_path":"stderr","default_log_level":"ERROR","processor":1,
  "routers":[{"router_config_name":"r","virtual_hosts":[{"name":"h","domains":["*"],"routers":[{"match":$match,"route":{"cluster_name":"up"}}]}]}],
  "listeners":[{"name":"l","address":"127.0.0.1:${PORT[mosn]}","bind_port":true,${7:-}"filter_chains":[{${4:-}"filters":[{"type":"proxy","config":{"downstream_protocol":"$1","upstream_protocol":"$2","router_config_name":"r"}}]}]}]}],
 "cluster_manager":{"clusters":[{"name":"up",${5:-}"type":"SIMPLE","lb_type":"LB_ROUNDROBIN","hosts":[{"address":"127.0.0.1:$3"}]}]}}
EOF
}

# Start what the write_* functions configured (Envoy with one worker thread,
# as the configs give nginx and mosn-rs one worker).
start_nginx() { start "$1" nginx -p "$TMP/$1" -e "$TMP/$1/error.log" -c "$TMP/$1.conf"; }
start_envoy() {
    start envoy "$ENVOY_BIN" -c "$TMP/envoy.yaml" --concurrency 1 --disable-hot-restart --log-level error
}
start_mosn() { start mosn "$MOSN_BIN" start -c "$TMP/mosn.json"; }

# run_rounds "CMD ARGS" NAME...: ROUNDS rounds, each running `CMD ARGS NAME
# ROUND` for every NAME, the order rotated each round so that no proxy always
# runs first or last (thermal state, page cache, whatever the previous run
# left behind).
run_rounds() {
    local -a cmd names=("${@:2}")
    local n=$(($# - 1)) r i
    read -ra cmd <<<"$1"
    for ((r = 0; r < ROUNDS; r++)); do
        for ((i = 0; i < n; i++)); do
            "${cmd[@]}" "${names[$(((r + i) % n))]}" $((r + 1))
        done
    done
}

# --- CPU accounting ----------------------------------------------------------------
# The machine has 2 cores, and whatever else runs on it (another session's
# build, say) skews req/s and latency. So each run also records "other CPU":
# user-mode CPU time of the whole machine (/proc/stat) minus that of the
# proxy, the upstream and the load generator, as % of one core. User time
# only, because the kernel's loopback packet processing runs partly outside
# our processes (softirq on an idle core, ksoftirqd) and would blur the
# figure; builds and other benchmarks show up in user time.
CLK_TCK=$(getconf CLK_TCK)
# machine_cpu_us: "USER BUSY", the machine's user time (user+nice) and busy
# time (all but idle and iowait, so the kernel's softirq work too), summed
# over all cores, in µs.
machine_cpu_us() {
    local _cpu user nice system _idle _iowait irq softirq steal _rest
    read -r _cpu user nice system _idle _iowait irq softirq steal _rest </proc/stat
    echo $(((user + nice) * 1000000 / CLK_TCK)) \
        $(((user + nice + system + irq + softirq + steal) * 1000000 / CLK_TCK))
}
# children_cpu_us USER_VAR TOTAL_VAR: the user and the user+system CPU time of
# the calling shell's finished children (the load generator and its timeout),
# in µs. 'times' must run in that shell, so call this directly, never in
# $(...): a subshell's children count starts at zero.
children_cpu_us() {
    local user total
    times >"$TMP/times"
    read -r user total < <(awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/)
        printf "%d %d\n", (u[1] * 60 + u[2]) * 1e6, (u[1] * 60 + u[2] + s[1] * 60 + s[2]) * 1e6 }' "$TMP/times")
    printf -v "$1" '%s' "$user"
    printf -v "$2" '%s' "$total"
}

# meter_begin PID [UPSTREAM_PID] ... meter_end: the CPU accounting around one
# load-generator run, which must run in between as a child of the calling
# shell (not in a subshell). meter_end sets, in µs: METER_CPU (utime+stime of
# PID's process tree: the proxy), METER_UPSTREAM (the same for UPSTREAM_PID,
# 0 without it), METER_SIDE (the same for the global METER_SIDE_PID when set,
# a helper of the proxy such as a trace collector; 0 without it), METER_GEN
# (user+system time of the load generator), METER_OTHER ("other CPU", above,
# which leaves out METER_SIDE_PID's too) and METER_BUSY (the machine's busy
# time, all cores); and METER_RSS, VmRSS of PID's tree after the run, in KiB.
meter_begin() {
    _M_PID=$1 _M_UP=${2:-} _M_UPT=0 _M_UPU=0 _M_SIDE=${METER_SIDE_PID:-} _M_SDT=0 _M_SDU=0
    read -r _M_CPU _M_USR < <("$PY" "$BENCH/procstat.py" cpu "$_M_PID")
    [[ -z $_M_UP ]] || read -r _M_UPT _M_UPU < <("$PY" "$BENCH/procstat.py" cpu "$_M_UP")
    [[ -z $_M_SIDE ]] || read -r _M_SDT _M_SDU < <("$PY" "$BENCH/procstat.py" cpu "$_M_SIDE")
    children_cpu_us _M_CHU _M_CHT
    read -r _M_MU _M_MB < <(machine_cpu_us)
}
# shellcheck disable=SC2153  # _M_CHU and _M_CHT are set by children_cpu_us
meter_end() {
    local mu mb chu cht cpu usr upt=0 upu=0 sdt=0 sdu=0
    read -r mu mb < <(machine_cpu_us)
    children_cpu_us chu cht
    read -r cpu usr < <("$PY" "$BENCH/procstat.py" cpu "$_M_PID")
    [[ -z $_M_UP ]] || read -r upt upu < <("$PY" "$BENCH/procstat.py" cpu "$_M_UP")
    [[ -z $_M_SIDE ]] || read -r sdt sdu < <("$PY" "$BENCH/procstat.py" cpu "$_M_SIDE")
    METER_CPU=$((cpu - _M_CPU))
    METER_UPSTREAM=$((upt - _M_UPT))
    METER_SIDE=$((sdt - _M_SDT))
    METER_GEN=$((cht - _M_CHT))
    METER_OTHER=$(((mu - _M_MU) - (usr - _M_USR) - (upu - _M_UPU) - (sdu - _M_SDU) - (chu - _M_CHU)))
    METER_BUSY=$((mb - _M_MB))
    METER_RSS=$("$PY" "$BENCH/procstat.py" rss "$_M_PID")
}

# wait_quiet MAX_SECS: wait (at most MAX_SECS) until the machine has been
# nearly idle (< 15 % busy, all cores) for 2 s.
wait_quiet() {
    local end=$((SECONDS + $1)) b0 b1 t0 t1
    while ((SECONDS < end)); do
        read -r b0 t0 < <(awk '/^cpu / { print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9 }' /proc/stat)
        sleep 2
        read -r b1 t1 < <(awk '/^cpu / { print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9 }' /proc/stat)
        ((100 * (b1 - b0) < 15 * (t1 - t0))) && return 0
    done
    log "the machine stayed busy for $1 s: measuring anyway"
}

# metered LABEL PID UPSTREAM_PID CMD...: meter_begin PID UPSTREAM_PID, CMD (one
# load-generator run, DURATION long, run in this shell; it dies itself on
# failure), meter_end. A run during which other processes used more than 20 %
# of a core (METER_OTHER: another session's build, say) is not the proxy's
# alone: it is repeated, up to RETRIES times (default 2), each time after the
# machine calmed down (wait_quiet, at most 2 minutes). REPEATED counts the
# repetitions; LABEL names the run in the log.
REPEATED=0
metered() {
    local label=$1 pid=$2 up=$3 try dur_us
    dur_us=$(($(dur_secs "$DURATION") * 1000000))
    for ((try = 1; ; try++)); do
        meter_begin "$pid" "$up"
        "${@:4}"
        meter_end
        ((try <= ${RETRIES:-2} && METER_OTHER > dur_us / 5)) || break
        log "$label: other processes used $((100 * METER_OTHER / dur_us)) % of a core; again ($try/${RETRIES:-2})"
        REPEATED=$((REPEATED + 1))
        wait_quiet 120
    done
}

# --- report ---------------------------------------------------------------------------
# info_head DATE TOOL...: the first lines of a report's info table (TSV: key,
# value): the date, the machine, the open-files limit (NOFILE), then the
# version of each TOOL (nginx, haproxy, envoy, nghttpx, h2load, wrk, hey,
# openssl, mosn).
info_head() {
    local t
    printf 'date\t%s\n' "$1"
    printf 'open files limit\t%s\n' "$NOFILE"
    printf 'cpu\t%s\n' "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    printf 'cores\t%s\n' "$(nproc)"
    printf 'memory\t%s\n' "$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    printf 'kernel\t%s\n' "$(uname -sr)"
    for t in "${@:2}"; do
        case "$t" in
            nginx)   printf 'nginx\t%s\n' "$(nginx -v 2>&1 | sed 's/.*version: //')" ;;
            haproxy) printf 'haproxy\t%s\n' "$(haproxy -v | head -n1 | awk '{print $3}')" ;;
            envoy)   printf 'envoy\t%s\n' "$("$ENVOY_BIN" --version | grep -o 'version: .*' | sed 's/version: //')" ;;
            nghttpx) printf 'nghttpx\t%s\n' "$(nghttpx --version | head -n1)" ;;
            h2load)  printf 'h2load\t%s\n' "$(h2load --version | head -n1)" ;;
            wrk)     printf 'wrk\t%s\n' "$(wrk -v 2>&1 | head -n1 | awk '{print $2}')" ;;
            hey)     printf 'hey\t%s (Debian package)\n' "$(dpkg-query -W -f='${Version}' hey 2>/dev/null || echo '?')" ;;
            openssl) printf 'openssl\t%s\n' "$(openssl version)" ;;
            # HEAD may have moved since the binary was built: give both.
            mosn)    printf 'mosn-rs\t%s (built %s; git HEAD now %s)\n' "$MOSN_BIN" \
                         "$(date -r "$MOSN_BIN" '+%F %T %Z')" \
                         "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)" ;;
            *) die "info_head: unknown tool $t" ;;
        esac
    done
}

# write_report SUFFIX SCRIPT ARG...: the report script bench/SCRIPT, given ARGs
# and $TMP/info.tsv, writes bench/results/<DATE>SUFFIX.md and .png; the
# markdown is printed too.
write_report() {
    local base="$BENCH/results/$DATE$1"
    mkdir -p "$BENCH/results"
    "$PY" "$BENCH/$2" "${@:3}" --info "$TMP/info.tsv" --md "$base.md" --png "$base.png"
    cat "$base.md"
    log "wrote bench/results/$DATE$1.md and bench/results/$DATE$1.png"
}
