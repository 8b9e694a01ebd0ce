#!/usr/bin/env bash
# Builds mosn-rs and runs it on the bundled quickstart config: a proxy listener on
# 127.0.0.1:2045 in front of an app listener on 127.0.0.1:2046 that answers itself.
# Try: curl http://127.0.0.1:2045/   (admin: curl http://127.0.0.1:34901/api/v1/stats)
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --release -- start -c examples/quickstart.json "$@"
