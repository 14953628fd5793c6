#!/usr/bin/env bash
# Runs every test of Cinnabar, installing first whatever the tests need that is missing:
# Debian's chromium for the browser tests, GStreamer's webrtcbin and its Python bindings for
# the GStreamer peers (tests/peers/gst_peer.py), and the npm packages under tests/ (the
# Janus clients and wrtc among them).
# Usage: ./test.sh            (CI runs exactly this through .ci/run)
set -euo pipefail
cd "$(dirname "$0")"

log() { printf '\n==> %s\n' "$*"; }

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# Installs the Debian packages that are missing; retries once (mirrors are flaky).
apt_install() {
    local missing=() package
    for package in "$@"; do
        dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
    done
    ((${#missing[@]})) || return 0
    log "installing ${missing[*]}"
    local apt=(apt-get -o DPkg::Lock::Timeout=600 -y -q)
    export DEBIAN_FRONTEND=noninteractive
    $SUDO "${apt[@]}" update || true
    if ! $SUDO "${apt[@]}" install "${missing[@]}"; then
        sleep 10
        $SUDO "${apt[@]}" update
        $SUDO "${apt[@]}" install "${missing[@]}"
    fi
}

# Installs an npm project's pinned packages unless they are already in place.
npm_install() {
    local dir=$1
    if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
        log "npm ci in $dir"
        (cd "$dir" && npm ci --no-audit --no-fund)
    fi
}

apt_install chromium \
    python3 python3-gi python3-websockets python3-gst-1.0 \
    gir1.2-gst-plugins-base-1.0 gir1.2-gst-plugins-bad-1.0 \
    gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
    gstreamer1.0-nice
npm_install tests/browser
npm_install tests/peers

# A CI checkout builds once: incremental caches would only take disk (GBs) and time.
if [ -n "${CI:-}" ]; then export CARGO_INCREMENTAL=0; fi
log "cargo test (disk free: $(df -h --output=avail . | tail -1 | tr -d ' '))"
cargo test --locked

# The Node tests end with --test-force-exit: wrtc's native threads would keep them alive.
log "browser tests (headless Chromium; the Janus ones with minijanus and wrtc)"
cargo build --locked --bin cinnabar
(cd tests/browser && node --test --test-force-exit --test-concurrency=1 --test-reporter=spec)

log "calling-signaling with the real rtc-lib client"
node tests/peers/calling-rtc-lib.mjs

log "janus.plugin.sfu with the real clients naf-janus-adapter and minijanus"
(cd tests/peers && node --test --test-force-exit --test-concurrency=1 --test-reporter=spec janus.test.mjs)
