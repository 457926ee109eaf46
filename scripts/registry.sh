#!/usr/bin/env bash
# Install Debian's docker-registry (distribution 2.8), the real OCI registry the registry tests start on
# loopback (tests/store/registry). Safe to re-run: does nothing when it is already installed.
# The package enables a service on :5000 with its own config; tests never use it, and on a systemd host
# it is switched off (in containers policy-rc.d already keeps it from starting).
set -euo pipefail
. "$(dirname "$0")/apt.sh"

if command -v docker-registry >/dev/null 2>&1; then
    exit 0
fi
apt_install docker-registry
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi
command -v docker-registry >/dev/null
