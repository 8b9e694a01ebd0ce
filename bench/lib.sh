# shellcheck shell=bash disable=SC2034  # sets variables for the scripts sourcing it
# Shared by bench/run.sh (HTTP/1.1) and bench/run-h2.sh (HTTP/2, gRPC).
# Sourced, never run: the caller has `set -euo pipefail` and sets KEEP_TMP
# before calling make_tmp. Only 127.0.0.1 is used; every process started with
# `start` is stopped when the caller exits (also on Ctrl-C or an error).

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$BENCH/.." && pwd)"
VENV="$REPO/.venv-bench"
MOSN_BIN="$REPO/target/release/mosn-rs"

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

# ensure_mosn BUILD HINT: build target/release/mosn-rs when BUILD is 1 or the
# binary is missing. HINT tells how to leave mosn out of the run.
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

# --- CPU accounting ----------------------------------------------------------------
# The machine has 2 cores, and whatever else runs on it (another session's
# build, say) skews req/s and latency. So each run also records "other CPU":
# user-mode CPU time of the whole machine (/proc/stat) minus that of the
# proxy, the upstream and the load generator, as % of one core. User time
# only, because the kernel's loopback packet processing runs partly outside
# our processes (softirq on an idle core, ksoftirqd) and would blur the
# figure; builds and other benchmarks show up in user time.
CLK_TCK=$(getconf CLK_TCK)
machine_user_us() {
    local _cpu user nice _rest
    read -r _cpu user nice _rest </proc/stat
    echo $(((user + nice) * 1000000 / CLK_TCK))
}
# children_user_us VAR: sets VAR to the user CPU time of the calling shell's
# finished children (the load generator and its timeout), in µs. 'times' must
# run in that shell, so call this directly, never as $(children_user_us): a
# subshell's children count starts at zero.
children_user_us() {
    times >"$TMP/times"
    printf -v "$1" '%s' "$(awk 'NR == 2 { split($1, a, /[ms]/); printf "%d\n", (a[1] * 60 + a[2]) * 1000000 }' "$TMP/times")"
}

# Machine lines of the report's info table (TSV: key, value).
machine_info() {
    printf 'cpu\t%s\n' "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    printf 'cores\t%s\n' "$(nproc)"
    printf 'memory\t%s\n' "$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    printf 'kernel\t%s\n' "$(uname -sr)"
}
