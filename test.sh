#!/usr/bin/env bash
# Runs every test of Cinnabar, installing first whatever the tests need that is missing.
# Usage: ./test.sh            (CI runs exactly this through .ci/run)
set -euo pipefail
cd "$(dirname "$0")"

log() { printf '\n==> %s\n' "$*"; }

log "cargo test"
cargo test --locked
