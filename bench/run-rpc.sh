#!/usr/bin/env bash
# mosn-rs RPC benchmark: SOFA Bolt and Dubbo through mosn-rs (ONE worker) and,
# for Dubbo, Envoy 1.40's dubbo_proxy (ONE worker), in front of the real Node
# peers of tests/peers/node (sofa-rpc-node's RpcServer with sofa-bolt-node or
# dubbo-remoting); the direct path (client straight to the server) is the
# ceiling. The load is one sofa-rpc-node RpcClient (bench/rpc_load.js) with
# INFLIGHT calls in flight on its one connection.
#   bolt   Bolt v1 + hessian2: mosn-rs, direct
#   dubbo  Dubbo + hessian2: mosn-rs, Envoy, direct
#
#   bench/run-rpc.sh [--build]
#
# Environment (defaults in brackets):
#   PROXIES     any of "mosn envoy" [both; Envoy takes part in dubbo only]
#   SCENARIOS   any of "bolt dubbo" [both]
#   DURATION    length of each run, in seconds (a unit s or m allowed) [10s]
#   ROUNDS      rounds per scenario; each runs every path once, order rotated [3]
#   INFLIGHT    calls in flight on the client's one connection [64]
#   RETRIES     times a run is repeated when other processes used > 20 % of a
#               core during it (another build, say), after the machine calms [2]
#   KEEP_TMP    1 = keep the temp dir (configs, logs, raw output) [0]
#   MOSN_BIN    the mosn-rs binary [$CARGO_TARGET_DIR or target, /release/mosn-rs]
#
# Writes bench/results/<YYYY-MM-DD>-rpc.md and .png. See bench/README.md.
# Only 127.0.0.1 is used; every process started here is stopped on exit.
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"   # REPO BENCH VENV MOSN_BIN, helpers

# Settings: the environment's, else these defaults.
: "${PROXIES:=mosn envoy}" "${SCENARIOS:=bolt dubbo}"
: "${DURATION:=10s}" "${ROUNDS:=3}" "${INFLIGHT:=64}" "${RETRIES:=2}" "${KEEP_TMP:=0}"

parse_args 2,25 "$@"   # BUILD
declare -a SEL SCEN   # set by pick_list
pick_list SEL PROXIES "$PROXIES" "mosn envoy"
pick_list SCEN SCENARIOS "$SCENARIOS" "bolt dubbo"
LOAD_TIMEOUT=$(load_timeout "$DURATION")
SECS=$(dur_secs "$DURATION")
NODE_DIR="$REPO/tests/peers/node"
# The route of tests/common/rpc.rs, MOSN's RPC rule: any request with a service.
RPC_MATCH='{"headers":[{"name":"service","value":".*"}]}'

# --- tools ---------------------------------------------------------------------
# shellcheck disable=SC2119  # setup_tools takes setup.sh's options, not ours
setup_tools   # PY, ENVOY_BIN
selected() { in_list "$1" "${SEL[@]}"; }
selected mosn && ensure_mosn "$BUILD" 'Leave mosn out, e.g. PROXIES=envoy.'
# The Node peers' packages (sofa-rpc-node, sofa-bolt-node, dubbo-remoting).
if [[ ! -f $NODE_DIR/node_modules/.mosn-setup-ok ]]; then
    log "the Node peers are not installed: running scripts/setup.sh"
    bash "$REPO/scripts/setup.sh"
fi
raise_nofile   # NOFILE

# --- temp dir, servers -------------------------------------------------------------
make_tmp mosn-bench-rpc   # TMP
# The peers exit when their stdin closes: theirs is this FIFO, opened read-write
# so that it never reaches end-of-file.
mkfifo "$TMP/stdin"
node_peer() { exec node "$NODE_DIR/$1" "${@:2}" <>"$TMP/stdin"; }
probe_tcp() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The paths of a scenario: Envoy has a Dubbo filter, none for Bolt.
paths_for() {
    if [[ $1 == bolt ]]; then sel_without envoy; else echo "${SEL[*]}"; fi
}

# Envoy's dubbo_proxy: every interface and method to the cluster `up`
# (multiple_route_config; route_config is deprecated), the router filter.
ENVOY_DUBBO='name: envoy.filters.network.dubbo_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.dubbo_proxy.v3.DubboProxy
          stat_prefix: bench
          protocol_type: Dubbo
          serialization_type: Hessian2
          multiple_route_config:
            name: routes
            route_config:
            - name: r
              interface: "*"
              routes:
              - match: {method: {name: {safe_regex: {regex: ".*"}}}}
                route: {cluster: up}
          dubbo_filters:
          - name: envoy.filters.dubbo.router'

start_proxy() {
    local scen=$1 up=${PORT[$1]}
    case "$2" in
        # mosn-rs as tests/common/rpc.rs configures it (MOSN's shape).
        mosn) write_mosn "$scen" "$scen" "$up" "" "" "$RPC_MATCH"; start_mosn ;;
        envoy)
            write_envoy_filter "$ENVOY_DUBBO" "$up"
            "$ENVOY_BIN" --mode validate -c "$TMP/envoy.yaml" >"$TMP/envoy-validate.log" 2>&1 \
                || { tail -n 20 "$TMP/envoy-validate.log" >&2; die "Envoy refuses its dubbo_proxy config"; }
            start_envoy ;;
    esac
}

# count_conns PORT WHO: established TCP connections to 127.0.0.1:PORT whose
# client side belongs to WHO (an `ss -p` pattern: `pid=N,` for a proxy, `"node"`
# for the load client; the other proxies' idle pools are not counted).
count_conns() { ss -tnpH state established "( dport = :$1 )" | grep -c -- "$2" || true; }
# sample_conns PORT WHO: count_conns every 0.5 s until killed, a line each.
sample_conns() { while :; do count_conns "$1" "$2"; sleep 0.5; done; }

# --- runs ----------------------------------------------------------------------------
RUNS="$TMP/runs.tsv"
: >"$RUNS"
INFO_EXTRA="$TMP/info-extra.tsv"
: >"$INFO_EXTRA"

# run_load SCENARIO NAME OUT: one bounded rpc_load.js run through NAME.
run_load() {
    timeout "$LOAD_TIMEOUT" node "$BENCH/rpc_load.js" "$1" "127.0.0.1:${PORT[$2]}" "$SECS" "$INFLIGHT" \
        >"$3" 2>&1 || { tail -n 20 "$3" >&2; die "$1 load through $2 failed"; }
}

# bench_one SCENARIO NAME ROUND: one run through NAME (direct: straight to the
# server), metered (lib.sh), with the server's CPU, the client's own CPU
# (rpc_load.js), the most upstream connections established at once (sampled
# with ss every 0.5 s) and the connections the server accepted meanwhile.
bench_one() {
    local scen=$1 name=$2 round=$3 out="$TMP/load-$1-$2-$3.txt" srvlog="$TMP/$1.log"
    local up=${PID[$1]} who="pid=${PID[$2]}," sampler accepted line proxy_cpu server_cpu conns_max
    [[ $name == direct ]] && up="" who='"node"'
    accepted=$(grep -c '^CONN ' "$srvlog" || true)
    sample_conns "${PORT[$scen]}" "$who" >"$TMP/conns-$scen-$name-$round.txt" &
    sampler=$!
    metered "$scen through $name" "${PID[$name]}" "$up" run_load "$scen" "$name" "$out"
    kill "$sampler"; wait "$sampler" 2>/dev/null || true
    kill -0 "${PID[$name]}" 2>/dev/null || { tail -n 20 "$TMP/$name.log" >&2; die "$name exited during the $scen run"; }
    accepted=$(($(grep -c '^CONN ' "$srvlog" || true) - accepted))
    conns_max=$(sort -n "$TMP/conns-$scen-$name-$round.txt" | tail -n 1)
    line=$(grep '^RPCRESULT ' "$out") || { cat "$out" >&2; die "no result line from $scen through $name"; }
    # RPCRESULT key=value ... -> local variables of the same names
    # shellcheck disable=SC2034  # not all of them are used
    local calls errors duration_us p50_us p99_us cpu_us connections kv
    for kv in ${line#RPCRESULT }; do local "$kv"; done
    # direct: the process metered is the server itself.
    proxy_cpu=$METER_CPU server_cpu=$METER_UPSTREAM
    [[ $name == direct ]] && proxy_cpu=0 server_cpu=$METER_CPU
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$scen" "$round" "$name" \
        "$calls" "$duration_us" "$p50_us" "$p99_us" "$errors" "$proxy_cpu" "$METER_RSS" "$METER_OTHER" \
        "$server_cpu" "$cpu_us" "${conns_max:-0}" "$accepted" "$METER_BUSY" >>"$RUNS"
    awk -v s="$scen" -v r="$round" -v n="$name" -v q="$calls" -v d="$duration_us" -v a="$p50_us" \
        -v e="$errors" -v c="$proxy_cpu" -v sv="$server_cpu" -v cl="$cpu_us" -v u="${conns_max:-0}" \
        -v k="$accepted" -v b="$METER_BUSY" -v m="$(nproc)" \
        'BEGIN { printf "[bench] %-5s round %s %-6s %6.0f calls/s  p50 %.2f ms  errors %d  CPU %.1f us/call  server %.0f%%  client %.0f%%  upstream conns %d (%d new)  machine busy %.0f%%\n",
                 s, r, n, q / (d / 1e6), a / 1000, e, c / q, 100 * sv / d, 100 * cl / d, u, k, 100 * b / d / m }' >&2
}

for scen in "${SCEN[@]}"; do
    read -ra PX <<<"$(paths_for "$scen")"
    read -ra ports <<<"$(free_ports $((${#PX[@]} + 1)))"
    PORT[$scen]=${ports[0]}
    for i in "${!PX[@]}"; do PORT[${PX[$i]}]=${ports[$((i + 1))]}; done
    start "$scen" node_peer "${scen}_server.js" "${PORT[$scen]}"
    wait_ready_by "$scen" "${PORT[$scen]}" probe_tcp
    PORT[direct]=${PORT[$scen]} PID[direct]=${PID[$scen]}
    for p in "${PX[@]}"; do start_proxy "$scen" "$p"; done
    for p in "${PX[@]}"; do wait_ready_by "$p" "${PORT[$p]}" probe_tcp; done
    # The peers' own client (tests/peers/node) through each path: every answer
    # checked against its request, INFLIGHT at once.
    for p in direct "${PX[@]}"; do
        node "$NODE_DIR/${scen}_client.js" "127.0.0.1:${PORT[$p]}" echo 500 "$INFLIGHT" >"$TMP/check.json" 2>&1 \
            || { cat "$TMP/check.json" >&2; die "$scen: the peers' client failed through $p"; }
    done
    log "$scen: server :${PORT[$scen]} pid ${PID[$scen]}; $(for p in "${PX[@]}"; do printf '%s :%s pid %s; ' "$p" "${PORT[$p]}" "${PID[$p]}"; done)"

    # Warm-up (not recorded).
    for p in direct "${PX[@]}"; do
        timeout 30 node "$BENCH/rpc_load.js" "$scen" "127.0.0.1:${PORT[$p]}" 2 "$INFLIGHT" >"$TMP/warmup.txt" 2>&1 \
            || { cat "$TMP/warmup.txt" >&2; die "warm-up $scen through $p failed"; }
    done
    run_rounds "bench_one $scen" direct "${PX[@]}"   # order rotated each round
    # What each proxy logged (mosn-rs: level ERROR; Envoy: error): a finding if anything.
    for p in "${PX[@]}"; do
        printf 'log %s (%s)\t%s line(s)%s\n' "$p" "$scen" "$(wc -l <"$TMP/$p.log")" \
            "$(head -c 300 "$TMP/$p.log" | head -n 1 | sed 's/^/, first: /; s/\t/ /g')" >>"$INFO_EXTRA"
        stop "$p"
    done
    printf 'server (%s)\t%s warning/error line(s) on stderr\n' "$scen" "$(grep -c '^WARN\|^ERROR' "$TMP/$scen.log" || true)" >>"$INFO_EXTRA"
    stop "$scen"
done

# --- report ------------------------------------------------------------------------------
DATE="$(date +%F)"
tools=(envoy)
selected mosn && tools+=(mosn)
{
    info_head "$DATE" "${tools[@]}"
    printf 'node\t%s\n' "$(node --version)"
    printf 'peers\t%s\n' "$(cd "$NODE_DIR" && node -p "['sofa-rpc-node','sofa-bolt-node','dubbo-remoting'].map(n => n + ' ' + require(n + '/package.json').version).join(', ')")"
    printf 'load\tbench/rpc_load.js: one RpcClient, %s calls of echo(String) in flight on its one connection, %s s per run\n' "$INFLIGHT" "$SECS"
    printf 'rounds\t%s per scenario, order rotated each round; %s run(s) repeated (RETRIES=%s) because other processes used > 20 %% of a core during them\n' \
        "$ROUNDS" "$REPEATED" "$RETRIES"
    cat "$INFO_EXTRA"
} >"$TMP/info.tsv"
write_report -rpc report_rpc.py --runs "$RUNS" --order "${SEL[*]}" --scenarios "${SCEN[*]}" --cores "$(nproc)"
