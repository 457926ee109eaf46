#!/usr/bin/env bash
# Install Debian's docker-registry (distribution 2.8), the real OCI registry the registry tests start on
# loopback (tests/store/registry). Safe to re-run: does nothing when it is already installed.
# The package enables a service on :5000 with its own config; tests never use it, and on a systemd host
# it is switched off (in containers policy-rc.d already keeps it from starting).
set -euo pipefail

if command -v docker-registry >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "scripts/registry.sh: no apt-get here; install docker-registry (distribution 2.8) by hand" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
    SUDO="sudo"
fi
echo "==> installing docker-registry"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -q --no-install-recommends docker-registry >/dev/null 2>&1 || {
    $SUDO apt-get update -q >/dev/null
    $SUDO apt-get install -y -q --no-install-recommends docker-registry >/dev/null
}
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi
command -v docker-registry >/dev/null
