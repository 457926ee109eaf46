#!/usr/bin/env bash
# One-shot GPU validation of pyollama against llama.cpp's own tools, on any machine with a CUDA GPU
# (made for one short lease of an H200: 16 cores, no network). See bench/gpu/README.md.
#
#   bash bench/gpu/run.sh                 # on the GPU machine, after `python bench/gpu/prepare.py` here
#   bash bench/gpu/run.sh --dry-run       # here, on CPU: everything but CUDA, at toy sizes
#
# --cpu: the GPU run's own path (build here from .gpu, python3 with the wheels) without CUDA, at toy sizes.
# Options: --budget S (whole run, default 560 s; each step is time-boxed inside it), --steps "a b …"
# (subset of: setup build env models identity engine serve placement), --python PY, --threads N,
# --cuda-from-source (ignore a prebuilt .gpu/cuda/libggml-cuda.so.xz), --no-cuda-fallback,
# --dry-run-build (dry run: build the trimmed tree too, not only configure it).
# Results: $OUT (./bench-gpu-out when unset): report.md, report.json, run.log, logs.tar.xz.
# A failing step is recorded and the rest still run; the report is rewritten after every step.
set -uo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
SELF="$REPO/bench/gpu/run.sh"

if [ "${1:-}" = "__step" ]; then     # internal: one step, run under `timeout` by the driver below
    STEP_NAME=$2
else
    DRY=0; CPU=0; BUDGET=560; STEPS="setup build env models identity engine serve placement"; PYARG=""; THREADS=""
    CUDA_FROM_SOURCE=0; CUDA_FALLBACK=1; DRY_BUILD=0
    while [ $# -gt 0 ]; do
        case "$1" in
            --dry-run) DRY=1; shift ;;
            --cpu) CPU=1; shift ;;
            --budget) BUDGET=$2; shift 2 ;;
            --steps) STEPS=$2; shift 2 ;;
            --python) PYARG=$2; shift 2 ;;
            --threads) THREADS=$2; shift 2 ;;
            --cuda-from-source) CUDA_FROM_SOURCE=1; shift ;;
            --no-cuda-fallback) CUDA_FALLBACK=0; shift ;;
            --dry-run-build) DRY_BUILD=1; shift ;;
            -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
            *) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
        esac
    done
    SMALL=$(( DRY || CPU ))            # toy sizes: models, prompts, rounds
    [ "$SMALL" = 1 ] && [ "$BUDGET" = 560 ] && BUDGET=3600
    OUT=${OUT:-$REPO/bench-gpu-out}
    if [ "$DRY" = 1 ]; then
        WORK=${BENCH_GPU_WORK:-/tmp/pyollama-gpu-dry}
        PY=${PYARG:-$REPO/.venv/bin/python}
        SITE=$WORK/site
        BUILD=$WORK/tree/build/gpu-dry
    else
        WORK=${BENCH_GPU_WORK:-/tmp/pyollama-gpu}
        PY=${PYARG:-python3}
        SITE=${BENCH_GPU_SITE:-/tmp/site}
        BUILD=$REPO/build/gpu
    fi
    THREADS=${THREADS:-$(nproc)}
    export DRY CPU SMALL BUDGET OUT WORK PY SITE BUILD THREADS CUDA_FROM_SOURCE CUDA_FALLBACK DRY_BUILD REPO
    export RESULTS=$WORK/results LOGS=$WORK/logs MODELS=$WORK/models
    export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
    export START=$(date +%s)
    export DEADLINE=$((START + BUDGET))
fi

ts() { printf '%(%H:%M:%S)T' -1; }
say() { printf '%s %s\n' "$(ts)" "$*"; }
elapsed() { echo $(( $(date +%s) - START )); }

# The environment every step sees: wheels and the repo on the path; the build's tools, backends and the
# CUDA libraries (python3's nvidia-* wheels, the toolkit, the driver) on the library path.
setup_env() {
    # the interpreter's own bin/ first: its cmake, ninja, cython (a virtualenv's python3 may be on PATH
    # through a link while its bin/ is not)
    local pybin
    pybin=$(dirname "$("$PY" -c 'import sys; print(sys.executable)' 2>/dev/null || echo "$PY")")
    export PATH="$pybin:$PATH"
    if [ "$DRY" = 1 ]; then
        export PYTHONPATH="$REPO"
        export PYOLLAMA_TOOLS_DIR=${PYOLLAMA_TOOLS_DIR:-$(ls -d "$REPO"/build/cp3*/bin 2>/dev/null | head -1)}
    else
        export PYTHONPATH="$SITE:$REPO"
        export PYOLLAMA_TOOLS_DIR="$BUILD/bin" PYOLLAMA_BACKEND_DIR="$BUILD/bin"
        local libs="$BUILD/bin" d
        for d in $("$PY" - <<'EOF' 2>/dev/null
import importlib.util, pathlib
spec = importlib.util.find_spec("nvidia")
for root in (spec.submodule_search_locations if spec else []):
    for lib in sorted(pathlib.Path(root).glob("*/lib")):
        print(lib)
EOF
        ) /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
            [ -d "$d" ] && libs="$libs:$d"
        done
        export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    fi
    export PYOLLAMA_CACHE="$WORK/cache"
}

# xz archives without relying on the xz tool (a bare image may lack it): $1 archive, $2 destination folder
untar_xz() {
    if command -v xz >/dev/null; then tar -xJf "$1" -C "$2"
    else "$PY" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2], filter="tar")' "$1" "$2"; fi
}
unxz() {   # $1 file.xz → stdout
    if command -v xz >/dev/null; then xz -dc "$1"
    else "$PY" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)' "$1"; fi
}

# --- the steps --------------------------------------------------------------------------------------
step_setup() {
    mkdir -p "$SITE"
    local wheels=("$REPO"/.gpu/wheels/*.whl)
    [ -e "${wheels[0]}" ] || { echo "no wheels in .gpu/wheels: run python bench/gpu/prepare.py first (and carry .gpu)"; return 1; }
    [ -f "$REPO/.gpu/vendor.tar.xz" ] || { echo "no .gpu/vendor.tar.xz: run python bench/gpu/prepare.py first"; return 1; }
    if [ "$DRY" = 1 ]; then
        # the same wheels into a Python 3.12 like the GPU machine's, then import everything the run needs
        local py312=${PY312:-} venv=/tmp/pyollama-gpu-py312 c
        if [ -z "$py312" ]; then
            for c in python3.12 "$HOME"/.pyenv/versions/3.12*/bin/python3.12 /usr/bin/python3.12; do
                if "$c" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then py312=$c; break; fi
            done
        fi
        [ -n "$py312" ] || { echo "no working python3.12 here to check the wheels with (set PY312)"; return 1; }
        if [ ! -x "$venv/bin/python" ]; then
            echo "creating $venv with the GPU image's packages that pyollama uses (from PyPI, once)"
            "$py312" -m venv "$venv" && "$venv/bin/python" -m pip install -q --disable-pip-version-check \
                numpy pyyaml httpx jinja2 rich anyio click h11 tqdm requests uvloop psutil typing-extensions \
                pytest || return 1
        fi
        rm -rf "$SITE"; mkdir -p "$SITE"
        "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-index --no-deps --no-compile \
            --no-cache-dir --target "$SITE" "${wheels[@]}" || return 1
        "$PY" -m bench.gpu.imports --live "$venv/bin/python" --site "$SITE" > "$RESULTS/imports312.json" || {
            cat "$RESULTS/imports312.json"; echo "some modules do not import under Python 3.12 with the wheels"; return 1; }
        echo "python 3.12 + wheels: every module the run needs imports ($(grep -c '"ok"' "$RESULTS/imports312.json") checked)"
        "$PY" -m bench.gpu.imports --wheels "$REPO/.gpu/wheels" || return 1
        # the trimmed tree in a scratch copy of the repo, as the GPU machine gets it
        rm -rf "$WORK/tree"; mkdir -p "$WORK/tree"
        (git ls-files -z --cached --others --exclude-standard | xargs -0 -I{} sh -c '[ -e "{}" ] && printf "%s\0" "{}"' \
            | tar --null -T - -cf - ) | tar -xf - -C "$WORK/tree" || return 1
        untar_xz "$REPO/.gpu/vendor.tar.xz" "$WORK/tree" || return 1
        "$PY" "$WORK/tree/vendor/sync.py" --check || { echo "the trimmed tree fails vendor/sync.py --check"; return 1; }
        echo "trimmed tree: $(du -sh "$WORK/tree/vendor" | cut -f1) in $WORK/tree/vendor; sync.py --check passes"
    else
        "$PY" -m pip install -q --disable-pip-version-check --no-index --no-deps --no-compile --no-cache-dir \
            --upgrade --target "$SITE" "${wheels[@]}" || return 1
        if ! "$PY" vendor/sync.py --check; then
            untar_xz .gpu/vendor.tar.xz "$REPO" || return 1
            "$PY" vendor/sync.py --check || { echo "vendor/ still fails sync.py --check after extracting"; return 1; }
        fi
        echo "wheels in $SITE; vendor/ at the pin"
    fi
}

cmake_configure() {   # $1 source dir, $2 build dir, $3 GGML_CUDA ON/OFF
    export CCACHE_BASEDIR="$1"     # where ccache exists: hits across checkouts at other paths
    local args=(-S "$1" -B "$2" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPython_EXECUTABLE="$(command -v "$PY")"
                -DPYOLLAMA_BUILD_TOOLS=ON -DGGML_CUDA="$3")
    if [ "$3" = ON ]; then
        local nvcc=${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
        args+=(-DCMAKE_CUDA_COMPILER="$nvcc" -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHS:-90-real}")
    fi
    "$PY" -m cmake --version >/dev/null 2>&1 && local CMAKE=("$PY" -m cmake) || local CMAKE=(cmake)
    echo "cmake ${args[*]}"
    "${CMAKE[@]}" "${args[@]}" > "$LOGS/build-configure-$3.log" 2>&1 || { tail -40 "$LOGS/build-configure-$3.log"; return 1; }
}

cmake_build() {   # $1 build dir [targets…]
    local dir=$1; shift
    "$PY" -m cmake --version >/dev/null 2>&1 && local CMAKE=("$PY" -m cmake) || local CMAKE=(cmake)
    local t0=$(date +%s)
    "${CMAKE[@]}" --build "$dir" -j "$THREADS" "$@" > "$LOGS/build-ninja.log" 2>&1 || {
        grep -m5 -B2 -A12 'error' "$LOGS/build-ninja.log" | head -60; tail -20 "$LOGS/build-ninja.log"; return 1; }
    BUILD_SECS=$(( $(date +%s) - t0 ))
    echo "built in $BUILD_SECS s"
}

record_build() {   # key=value … into results/build.json (the report's Build section)
    "$PY" - "$RESULTS/build.json" "$@" <<'EOF'
import json, os, sys
path = sys.argv[1]
d = json.load(open(path)) if os.path.exists(path) else {}
for kv in sys.argv[2:]:
    k, _, v = kv.partition("=")
    d[k] = v
json.dump(d, open(path, "w"), indent=1)
EOF
}

gpu_found() {   # prints the GPUs pyollama sees; fails when there are none
    "$PY" - <<'EOF'
import sys, pyollama
gpus = [d for d in pyollama.backends() if d["type"] in ("gpu", "igpu")]
for d in gpus:
    print(f"  {d['backend']} {d['name']}: {d['description']}, {d['memory_free'] / 2**30:.1f}/{d['memory_total'] / 2**30:.1f} GiB free")
sys.exit(0 if gpus else 1)
EOF
}

step_build() {
    if [ "$DRY" = 1 ]; then
        # the trimmed tree must configure exactly as the GPU machine will (GGML_CUDA=OFF with the prebuilt
        # backend); the rest of the dry run uses this checkout's installed build
        cmake_configure "$WORK/tree" "$BUILD" OFF || return 1
        echo "configure of the trimmed tree: ok"
        # the one build-time script that reads the tree beyond compiled sources (server's web UI stub)
        cmake_build "$BUILD" --target llama-ui-assets || return 1
        grep -q "UI: embedded" "$LOGS/build-ninja.log" && echo "llama-ui-assets of the trimmed tree: ok"
        if [ "$DRY_BUILD" = 1 ]; then cmake_build "$BUILD" || return 1; ls "$BUILD/bin"; fi
        record_build "mode=dry run: trimmed tree configured (GGML_CUDA=OFF)$([ "$DRY_BUILD" = 1 ] && echo ' and built')" \
            "run_with=this checkout's installed build" "tools_dir=$PYOLLAMA_TOOLS_DIR"
        "$PY" -c "import pyollama, pyollama.upstream as u; print(pyollama.backends()); print(u.find_tool('llama-server'), u.find_tool('llama-bench'))"
        return 0
    fi
    "$PY" - <<'EOF' || return 1
import os, shutil, subprocess, sys, sysconfig
inc = sysconfig.get_paths()["include"]
ok = os.path.isfile(os.path.join(inc, "Python.h"))
print(f"python {sys.version.split()[0]} at {sys.executable}; headers {inc}: {'ok' if ok else 'MISSING'}")
for tool in ("cmake", "ninja", "nvcc", "ccache"):
    path = shutil.which(tool)
    ver = subprocess.run([path, "--version"], capture_output=True, text=True).stdout.splitlines()[:1] if path else []
    print(f"  {tool}: {path or 'not found'} {' '.join(ver)}")
try:
    import Cython
    print(f"  Cython {Cython.__version__}")
except ImportError:
    print("  Cython: MISSING")
    ok = False
sys.exit(0 if ok and shutil.which("cmake") and shutil.which("ninja") else 1)
EOF
    local prebuilt="$REPO/.gpu/cuda/libggml-cuda.so.xz" cuda=OFF
    if [ "$CUDA_FROM_SOURCE" = 1 ] || [ ! -f "$prebuilt" ]; then cuda=ON; fi
    [ "$CPU" = 1 ] && { cuda=OFF; prebuilt=/nonexistent; }
    echo "GGML_CUDA=$cuda (prebuilt backend: $([ -f "$prebuilt" ] && echo yes || echo no)), $THREADS jobs"
    if [ "$cuda" = ON ] && ! command -v nvcc >/dev/null && [ ! -x /usr/local/cuda/bin/nvcc ] && [ -z "${CUDACXX:-}" ]; then
        echo "no nvcc and no prebuilt CUDA backend"; return 1
    fi
    record_build "GGML_CUDA=$cuda" "prebuilt_backend=$([ -f "$prebuilt" ] && echo yes || echo no)" \
        "python=$("$PY" -c 'import sys; print(sys.executable, sys.version.split()[0])')" "jobs=$THREADS" "build_dir=$BUILD"
    cmake_configure "$REPO" "$BUILD" "$cuda" || return 1
    cmake_build "$BUILD" || return 1
    record_build "build_seconds=$BUILD_SECS"
    if [ "$cuda" = OFF ] && [ "$CPU" = 0 ]; then
        unxz "$prebuilt" > "$BUILD/bin/libggml-cuda.so" || return 1
        echo "prebuilt libggml-cuda.so: $(du -h "$BUILD/bin/libggml-cuda.so" | cut -f1)"
    fi
    # importable pyollama for this Python: the extension linked into the source package
    local ext=$(ls "$BUILD"/bin/_native.*.so 2>/dev/null | head -1)
    [ -n "$ext" ] || { echo "no _native extension in $BUILD/bin"; return 1; }
    rm -f "$REPO"/pyollama/_native.*.so
    ln -s "$ext" "$REPO/pyollama/$(basename "$ext")"
    ls "$BUILD/bin" | tr '\n' ' '; echo
    if gpu_found; then echo "GPU_CHECK: ok"; record_build "gpu=found"; return 0; fi
    [ "$CPU" = 1 ] && { record_build "gpu=none (--cpu)"; "$PY" -c "import pyollama; print(pyollama.backends())"; echo "GPU_CHECK: cpu"; return 0; }
    echo "pyollama sees no GPU. Loading libggml-cuda.so by hand says:"
    "$PY" -c "import ctypes, sys; ctypes.CDLL(sys.argv[1])" "$BUILD/bin/libggml-cuda.so" 2>&1 | tail -5
    ldd "$BUILD/bin/libggml-cuda.so" | grep -E "not found|cuda|cublas|ggml" | head -20
    if [ "$cuda" = OFF ] && [ "$CUDA_FALLBACK" = 1 ]; then
        echo "falling back to building ggml-cuda here (GGML_CUDA=ON, ${CUDA_ARCHS:-90-real})"
        rm -f "$BUILD/bin/libggml-cuda.so"
        record_build "prebuilt_backend=yes, did not load: fell back to GGML_CUDA=ON"
        cmake_configure "$REPO" "$BUILD" ON || return 1
        cmake_build "$BUILD" || return 1
        record_build "fallback_build_seconds=$BUILD_SECS"
        if gpu_found; then echo "GPU_CHECK: ok"; record_build "gpu=found"; return 0; fi
    fi
    record_build "gpu=NONE"
    echo "GPU_CHECK: none"     # built, but no CUDA device: the driver skips the GPU steps
    return 0
}

step_env() {
    "$PY" -m bench.gpu.steps env --json "$RESULTS/env.json" || return 1
    "$PY" - "$RESULTS/env.json" <<'EOF'
import json, sys
e = json.load(open(sys.argv[1]))
print(e.get("nvidia_smi", "no nvidia-smi"))
for d in e.get("backends", []):
    print(f"  backend {d['backend']}: {d['name']} ({d['description']}) {d['memory_free'] / 2**30:.1f}/{d['memory_total'] / 2**30:.1f} GiB")
print(e.get("system_info", ""))
EOF
    if [ "$SMALL" != 1 ] && ! grep -q '"type": "gpu"' "$RESULTS/env.json"; then
        echo "no GPU among pyollama.backends()"; return 1
    fi
}

step_models() {
    "$PY" -m bench.gpu.models --out "$MODELS" --size "$([ "$SMALL" = 1 ] && echo dry || echo full)" \
        --threads "$THREADS" --json "$RESULTS/models.json"
}

step_identity() {
    local n=8 np=32
    [ "$SMALL" = 1 ] && { n=3; np=8; }
    "$PY" -m bench.gpu.steps identity --json "$RESULTS/identity.json" --logdir "$LOGS" --prompts $n \
        --n-predict $np --threads "$THREADS" --ngl 99 \
        --models "$MODELS/small-f16.gguf" "$MODELS/llama1b-q4_k_m.gguf" "$MODELS/llama1b-f16.gguf"
}

step_engine() {
    local args=(--threads "$THREADS" --ngl 99 --reps 3) rc=0 m
    [ "$SMALL" = 1 ] && args=(--threads "$THREADS" --ngl 99 --reps 1 --prompt 64 --gen 16)
    for m in llama1b-q4_k_m llama1b-f16; do
        "$PY" -m bench.engine --models "$MODELS/$m.gguf" "${args[@]}" --json "$RESULTS/engine-$m.json" || rc=1
    done
    return $rc
}

step_serve() {
    local args=(--concurrency 1 16 64 --requests 8 32 128 --parallel 64 --rounds 3 --tokens 64 --ctx 2048)
    [ "$SMALL" = 1 ] && args=(--concurrency 1 2 --requests 2 2 --parallel 2 --rounds 1 --tokens 8 --ctx 512)
    "$PY" -m bench.serve --model "$MODELS/llama1b-q4_k_m.gguf" "${args[@]}" --threads "$THREADS" --ngl 99 \
        --json "$RESULTS/serve.json" --log "$LOGS/serve-servers.log"
}

step_placement() {
    local big=131072
    [ "$SMALL" = 1 ] && big=32768
    "$PY" -m bench.gpu.steps placement --json "$RESULTS/placement.json" --work "$WORK" --logdir "$LOGS" \
        --model "$MODELS/llama1b-q4_k_m.gguf" --ctx 4096 --big-ctx $big --num-gpu 8
}

if [ "${1:-}" = "__step" ]; then
    [ "$STEP_NAME" = setup ] || setup_env
    "step_$STEP_NAME"
    exit $?
fi

# --- the driver ---------------------------------------------------------------------------------------
mkdir -p "$OUT" "$RESULTS" "$LOGS" "$MODELS"
rm -f "$RESULTS"/*.json "$WORK/status.json"
exec > >(tee "$OUT/run.log") 2>&1

status() {   # name status seconds note [logfile]
    "$PY" - "$WORK/status.json" "$@" <<'EOF'
import json, os, sys
path, name, status, secs, note = sys.argv[1:6]
log = sys.argv[6] if len(sys.argv) > 6 else ""
st = json.load(open(path)) if os.path.exists(path) else {"meta": {}, "steps": {}}
if name == "meta":
    st["meta"] = json.loads(note)
else:
    tail = open(log, errors="replace").read()[-4000:] if log and os.path.exists(log) else ""
    st["steps"][name] = {"status": status, "seconds": float(secs), "note": note, "tail": tail}
json.dump(st, open(path + ".tmp", "w"), indent=1)
os.replace(path + ".tmp", path)
EOF
}

report() {
    ( setup_env; "$PY" -m bench.gpu.steps report --work "$WORK" --out "$OUT" ) > "$LOGS/report.log" 2>&1 \
        || { say "report failed:"; tail -20 "$LOGS/report.log"; }
}

RESERVE=20     # seconds kept for the last report and the log archive
# Time boxes. The build may take what is left: nothing after it is worth anything without it (and when the
# prebuilt CUDA backend does not load, compiling ggml-cuda is the best use of the lease).
declare -A CAP=([setup]=90 [build]=$BUDGET [env]=60 [models]=150 [identity]=150 [engine]=180 [serve]=200 [placement]=180)
declare -A MIN=([setup]=10 [build]=60 [env]=10 [models]=30 [identity]=20 [engine]=30 [serve]=40 [placement]=40)
[ "$SMALL" = 1 ] && CAP=([setup]=900 [build]=1800 [env]=120 [models]=300 [identity]=300 [engine]=300 [serve]=400 [placement]=400)
# what a step needs before it: a failed prerequisite skips it instead of wasting minutes
declare -A NEEDS=([build]="setup" [env]="build" [models]="build" [identity]="build models" [engine]="build models"
                  [serve]="build models" [placement]="build models")
declare -A RESULT=()

META=$(printf '{"started": "%s", "mode": "%s", "host": "%s", "git": "%s", "python": "%s", "budget_s": %s, "threads": %s, "steps": "%s", "out": "%s", "work": "%s"}' \
    "$(date '+%Y-%m-%d %H:%M:%S %Z')" "$([ "$DRY" = 1 ] && echo dry-run || { [ "$CPU" = 1 ] && echo cpu || echo gpu; })" "$(hostname)" \
    "$(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo +dirty)" "$PY" "$BUDGET" "$THREADS" "$STEPS" "$OUT" "$WORK")
status meta - 0 "$META"
say "bench/gpu: $([ "$DRY" = 1 ] && echo DRY RUN || { [ "$CPU" = 1 ] && echo "CPU RUN (the GPU path, no CUDA)" || echo GPU RUN; }), budget ${BUDGET} s, steps: $STEPS"
say "out: $OUT  work: $WORK  python: $PY  threads: $THREADS"

for name in $STEPS; do
    [ -n "${CAP[$name]:-}" ] || { say "unknown step '$name'"; continue; }
    skip=""
    if [ "$DRY" != 1 ] && [ "$name" != setup ] && [ "$name" != build ] && [ "$name" != env ] && [ "${GPU_OK:-1}" = 0 ]; then
        skip="no GPU: the build produced no working CUDA backend"
    fi
    for need in ${NEEDS[$name]:-}; do
        case " $STEPS " in *" $need "*) [ "${RESULT[$need]:-}" = ok ] || skip="needs $need, which did not succeed" ;; esac
    done
    left=$(( DEADLINE - $(date +%s) - RESERVE ))
    [ -z "$skip" ] && [ "$left" -lt "${MIN[$name]}" ] && skip="out of time (${left} s left)"
    if [ -n "$skip" ]; then
        say "== $name: skipped ($skip)"
        RESULT[$name]=skipped
        status "$name" skipped 0 "$skip"
        report
        continue
    fi
    cap=${CAP[$name]}; [ "$left" -lt "$cap" ] && cap=$left
    say "== $name (time box ${cap} s, $(elapsed) s elapsed)"
    t0=$(date +%s)
    timeout -k 10 "$cap" bash "$SELF" __step "$name" 2>&1 | tee "$LOGS/$name.log" | while IFS= read -r line; do
        printf '%s [%s] %s\n' "$(ts)" "$name" "$line"; done
    rc=${PIPESTATUS[0]}
    secs=$(( $(date +%s) - t0 ))
    case $rc in
        0) RESULT[$name]=ok; note="" ;;
        124|137) RESULT[$name]=timeout; note="killed after the ${cap} s time box" ;;
        *) RESULT[$name]=failed; note="exit $rc" ;;
    esac
    if [ "$name" = build ] && [ "$DRY" != 1 ] && grep -q "^GPU_CHECK: none" "$LOGS/build.log" 2>/dev/null; then
        GPU_OK=0; note="built, but pyollama sees no CUDA device: GPU steps skipped"
    fi
    say "== $name: ${RESULT[$name]} in ${secs} s ${note}"
    status "$name" "${RESULT[$name]}" "$secs" "$note" "$LOGS/$name.log"
    report
done

# the logs, compressed, beside the report (the device tool brings back at most 8 files)
if command -v xz >/dev/null; then tar -C "$WORK" -cJf "$OUT/logs.tar.xz" logs results 2>/dev/null
else tar -C "$WORK" -czf "$OUT/logs.tar.gz" logs results 2>/dev/null; fi
report
say "done in $(elapsed) s: $(for n in $STEPS; do printf '%s=%s ' "$n" "${RESULT[$n]:-?}"; done)"
say "report: $OUT/report.md, $OUT/report.json; logs: $OUT/logs.tar.xz"
echo
# the report's tables (without the raw /api/ps bodies) into the output tail
awk '/^`\/api\/ps` after/{skip=1} /^serve log/{skip=0} !skip' "$OUT/report.md" | head -c 7000
exec >&- 2>&-
sleep 1     # let tee finish run.log
