#!/usr/bin/env bash
# Build pyollama with the CUDA backend (a loadable module: libggml-cuda.so, GGML_BACKEND_DL) into
# build/cuda and a wheel into dist/. Works on a machine with the CUDA compiler and no GPU: cuBLAS
# comes from PyPI's nvidia-cublas wheel when the toolkit lacks it, the driver from a link stub.
#
#   bash scripts/build_cuda.sh                 # architectures of the GPUs here (nvidia-smi), else upstream's list
#   bash scripts/build_cuda.sh --arch 90       # one architecture (H100/H200): the only bearable choice on 2 cores
#   bash scripts/build_cuda.sh --arch "86;90" --tools   # also llama-bench/llama-server with CUDA
#   bash scripts/build_cuda.sh --install       # also install the wheel into .venv
#
# CUDACXX or PATH picks nvcc (default: /usr/local/cuda/bin/nvcc); PYOLLAMA_VENV the virtualenv (.venv).
# Reuses build/cuda and ccache.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '==> %s\n' "$*"; }

ARCH="${CUDAARCHS:-}"; TOOLS=OFF; INSTALL=0
while [ $# -gt 0 ]; do
    case "$1" in
        --arch) ARCH="$2"; shift 2 ;;
        --tools) TOOLS=ON; shift ;;
        --install) INSTALL=1; shift ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "build_cuda.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done

NVCC="${CUDACXX:-$(command -v nvcc || true)}"
[ -n "$NVCC" ] || { [ -x /usr/local/cuda/bin/nvcc ] && NVCC=/usr/local/cuda/bin/nvcc; }
[ -n "$NVCC" ] || { echo "build_cuda.sh: no CUDA compiler (nvcc) on PATH or in /usr/local/cuda; set CUDACXX" >&2; exit 1; }
CUDA_VER=$("$NVCC" --version | sed -n 's/.*release \([0-9]*\)\.\([0-9]*\).*/\1.\2/p')
log "nvcc $NVCC (CUDA $CUDA_VER)"

PY=${PYTHON:-python3}
VENV=${PYOLLAMA_VENV:-.venv}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
VPY=$VENV/bin/python
$VPY -m pip install -q --disable-pip-version-check "scikit-build-core>=0.10" "cython>=3.0" ninja cmake numpy
$VPY vendor/sync.py
command -v ccache >/dev/null 2>&1 || log "no ccache: rebuilds will recompile everything"

# cuBLAS for the build (and, through the RPATH, at run time) unless the toolkit has its own.
CUDA_ROOT=$(dirname "$(dirname "$(readlink -f "$(dirname "$NVCC")/../bin/nvcc" 2>/dev/null || echo "$NVCC")")")
if ! ls "$CUDA_ROOT"/lib64/libcublas.so* "$CUDA_ROOT"/targets/*/lib/libcublas.so* >/dev/null 2>&1; then
    if ! $VPY cmake/cuda_support.py wheels >/dev/null; then
        log "installing nvidia-cublas==${CUDA_VER}.* (the toolkit has no cuBLAS)"
        $VPY -m pip install -q --disable-pip-version-check "nvidia-cublas==${CUDA_VER}.*"
    fi
fi

DEFINES=(-C cmake.define.GGML_CUDA=ON -C "cmake.define.PYOLLAMA_BUILD_TOOLS=$TOOLS" -C build-dir=build/cuda)
[ -n "$ARCH" ] && DEFINES+=(-C "cmake.define.CMAKE_CUDA_ARCHITECTURES=$ARCH")
export CUDACXX="$NVCC" CCACHE_BASEDIR="$PWD"
log "building (architectures: ${ARCH:-auto}, tools: $TOOLS) into build/cuda"
start=$(date +%s)
$VPY -m pip wheel -q --disable-pip-version-check --no-build-isolation --no-deps -w dist . "${DEFINES[@]}"
log "build took $(( $(date +%s) - start )) s"
ls -la build/cuda/bin/libggml-cuda.so
if [ "$INSTALL" = 1 ]; then
    $VPY -m pip install -q --disable-pip-version-check --force-reinstall --no-deps dist/pyollama-*.whl
    rm -f build/.pyollama-stamp          # bootstrap.sh must not take this install for its own build
fi
log "done: dist/$(cd dist && ls -t pyollama-*.whl | head -1)"
