#!/usr/bin/env bash
# The whole test suite: installs its peers, then checks formatting and lints, then
# runs every unit and black-box test (the black-box tests build and start the real
# mosn-rs binary on free loopback ports).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
