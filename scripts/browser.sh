#!/usr/bin/env bash
# Install Debian's Chromium and its WebDriver, which the chat page's tests drive headless (tests/api/test_ui.py).
# A browser that downloads its own build cannot work here (no internet but the package registries).
# Safe to re-run: does nothing when both are installed.
set -euo pipefail
. "$(dirname "$0")/apt.sh"

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    exit 0
fi
apt_install chromium chromium-driver
command -v chromium >/dev/null && command -v chromedriver >/dev/null
