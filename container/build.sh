#!/usr/bin/env bash
# Build pyollama's CPU container image from this checkout:
#
#   bash container/build.sh [IMAGE]        # default localhost/pyollama:cpu
#
# On the host it materializes the pinned llama.cpp (vendor/sync.py) and downloads the Python wheels into
# container/wheels, so the image build needs no PyPI, only Debian's package mirror (--network host).
# When debian:bookworm-slim cannot be pulled (no registry reachable), the base image is made from
# Debian's packages with debootstrap and imported as localhost/debian:bookworm-slim.
#
# Environment: CONTAINER_ENGINE (podman, or docker), PYOLLAMA_CPU_VARIANTS (all: every CPU ISA variant,
# picked at run time, the default; native: this machine's only, much faster to build),
# PYOLLAMA_BASE_IMAGE (another Debian bookworm image).
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${1:-localhost/pyollama:cpu}
ENGINE=${CONTAINER_ENGINE:-podman}
CPU=${PYOLLAMA_CPU_VARIANTS:-all}
BASE=${PYOLLAMA_BASE_IMAGE:-docker.io/library/debian:bookworm-slim}
LOCAL_BASE=localhost/debian:bookworm-slim
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
if [ "$ENGINE" = podman ] && [ -z "${CONTAINERS_CONF:-}" ]; then
    export CONTAINERS_CONF="$PWD/container/containers.conf"
fi
log() { echo "==> $*" >&2; }

if ! $ENGINE image inspect "$BASE" >/dev/null 2>&1 && ! $ENGINE pull -q "$BASE" >/dev/null 2>&1; then
    if $ENGINE image inspect "$LOCAL_BASE" >/dev/null 2>&1; then
        log "$BASE cannot be pulled: using $LOCAL_BASE"
    else
        log "$BASE cannot be pulled: making $LOCAL_BASE with debootstrap"
        command -v debootstrap >/dev/null || { . scripts/apt.sh; apt_install debootstrap; }
        ROOTFS=$(mktemp -d)
        trap 'rm -rf "$ROOTFS"' EXIT
        debootstrap --variant=minbase bookworm "$ROOTFS" http://deb.debian.org/debian >/dev/null
        rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
        tar -C "$ROOTFS" -c . | $ENGINE import -q - "$LOCAL_BASE" >/dev/null
    fi
    BASE=$LOCAL_BASE
fi

log "materializing the pinned llama.cpp under vendor/"
$PY vendor/sync.py
log "downloading the Python wheels into container/wheels"
mapfile -t DEPS < <($PY -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))')
# For the image's Python (bookworm's 3.11) and platform, whatever Python runs this script.
$PY -m pip download -q --disable-pip-version-check --only-binary :all: -d container/wheels \
    --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none \
    --platform "manylinux_2_28_$(uname -m)" --platform "manylinux_2_17_$(uname -m)" \
    --platform "manylinux2014_$(uname -m)" --platform any \
    "scikit-build-core>=0.10" "cython>=3.0" cmake ninja "${DEPS[@]}"

log "building $IMAGE (CPU variants: $CPU) from $BASE"
FORMAT=()
[ "$ENGINE" = podman ] && FORMAT=(--format docker)      # OCI images drop HEALTHCHECK
$ENGINE build --network host "${FORMAT[@]}" --build-arg BASE="$BASE" --build-arg CPU_VARIANTS="$CPU" \
    -f container/Containerfile -t "$IMAGE" .
