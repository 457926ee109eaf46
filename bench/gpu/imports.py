"""Are pyollama's and bench's imports satisfiable on the GPU machine (its image's Python packages plus
the wheels that .gpu/wheels carries)? Two checks:

    python -m bench.gpu.imports --wheels .gpu/wheels            static: scan the sources, resolve every
                                                                third-party import and every wheel's
                                                                Requires-Dist against the image + wheels
    python -m bench.gpu.imports --live PYTHON --site DIR        import the modules the run needs in PYTHON
                                                                with DIR (the wheels installed there) first
                                                                on the path; prints what failed

Stdlib only (``packaging`` or pip's copy of it for markers).
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

# What the GPU machine lacks and the wheels bring (pyproject's dependencies, and theirs).
WHEELS = ("starlette", "uvicorn", "gguf", "httptools", "orjson", "prompt_toolkit", "wcwidth")

# The GPU image's Python packages (python3 is 3.12 in /opt/torch/.venv), as the device notes list them.
DEVICE = """absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build
certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core
cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock
flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx
huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin
jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax
llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack
multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda numpy numpyro
nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft
nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py
nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript
opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec
patsy peft pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11
py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock
pytest-timeout pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu
safetensors scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece sentence-transformers
setuptools shellingham simplejson six sortedcontainers statsmodels sympy tabulate tensorboard
tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm tokenizers toolz torch torchaudio
torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope triton typer
typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl
zipp""".split()  # noqa: SIM905

# Import names that differ from their distribution's name.
MODULE_DIST = {"yaml": "pyyaml", "markdown_it": "markdown-it-py", "pygments": "pygments", "PIL": "pillow",
               "dateutil": "python-dateutil", "_pytest": "pytest"}

# Modules the Python 3.12 standard library no longer has.
REMOVED_IN_312 = {"distutils", "imp", "asynchat", "asyncore", "smtpd"}

# The sources that run on the GPU machine (relative to the repo).
SOURCES = ("pyollama", "bench/__init__.py", "bench/engine", "bench/serve", "bench/gpu", "tests/tiny_gguf.py",
           "tests/__init__.py", "tests/engine/__init__.py", "tests/engine/test_reference.py", "vendor/sync.py",
           "cmake/cuda_support.py")
LOCAL = {"pyollama", "bench", "tests", "sync"}

# What --live imports: the server and its runner children, the CLI, the benchmarks, the model writer.
LIVE_MODULES = ("pyollama.api.server", "pyollama.api.app", "pyollama.cli", "pyollama.cli.repl", "pyollama.runner.child",
                "pyollama.scheduler", "pyollama.store.create", "pyollama.engine", "bench.engine.__main__",
                "bench.serve.__main__", "bench.gpu.models", "bench.gpu.steps", "tests.tiny_gguf",
                "tests.engine.test_reference", "gguf", "uvicorn", "starlette", "httptools", "uvloop",
                "prompt_toolkit", "yaml", "tqdm")

MARKER_ENV = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
              "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
              "implementation_name": "cpython", "platform_python_implementation": "CPython",
              "implementation_version": "3.12.3", "platform_release": "", "platform_version": "", "extra": ""}


def norm(name: str) -> str:
    return name.lower().replace("-", "_").replace(".", "_")


def _requirement_cls():
    try:
        from packaging.requirements import Requirement
    except ImportError:
        from pip._vendor.packaging.requirements import Requirement
    return Requirement


def imports_of(path: Path) -> set[str]:
    """Top-level names of the absolute imports in one file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def source_files(repo: Path) -> list[Path]:
    out = []
    for s in SOURCES:
        p = repo / s
        if p.is_dir():
            out += sorted(p.rglob("*.py"))
        elif p.is_file():
            out.append(p)
    return out


def wheel_info(whl: Path) -> tuple[str, set[str], list[str]]:
    """(distribution name, top-level import names, Requires-Dist lines)."""
    with zipfile.ZipFile(whl) as z:
        names = z.namelist()
        info = next(n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info"))
        meta = z.read(f"{info}/METADATA").decode("utf-8", "replace")
        tops: set[str] = set()
        if f"{info}/top_level.txt" in names:
            tops = {t.strip() for t in z.read(f"{info}/top_level.txt").decode().split() if t.strip()}
        if not tops:
            for n in names:
                first = n.split("/")[0]
                if first.endswith((".dist-info", ".data")):
                    continue
                tops.add(first[:-3] if first.endswith(".py") else first.split(".")[0])
    dist = next((line.split(":", 1)[1].strip() for line in meta.splitlines() if line.startswith("Name:")),
                whl.name.split("-")[0])
    requires = [line.split(":", 1)[1].strip() for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    return dist, tops, requires


def _fits_cp312(filename: str) -> bool:
    """Whether a wheel's tags admit CPython 3.12 on x86-64 manylinux (glibc 2.39)."""
    pys, abis, plats = (t.split(".") for t in filename[:-4].split("-")[-3:])

    def py_ok(p: str) -> bool:
        return p in ("py3", "cp312") or (p.startswith("cp3") and "abi3" in abis and int(p[3:] or 99) <= 12)

    def plat_ok(p: str) -> bool:
        if p == "any":
            return True
        if not p.endswith("x86_64"):
            return False
        if p.startswith("manylinux_"):
            return int(p.split("_")[1]) == 2 and int(p.split("_")[2]) <= 39
        return p.startswith(("manylinux1", "manylinux2010", "manylinux2014", "linux"))

    return any(py_ok(p) for p in pys) and (set(abis) & {"none", "abi3", "cp312"}) != set() and any(
        plat_ok(p) for p in plats)


def check_static(repo: Path, wheels: Path) -> list[str]:
    """Problems found (empty: all satisfiable)."""
    problems = []
    Requirement = _requirement_cls()
    device = {norm(d) for d in DEVICE}
    wheel_dists: dict[str, Path] = {}
    wheel_modules: set[str] = set()
    infos = []
    for whl in sorted(wheels.glob("*.whl")) if wheels.is_dir() else []:
        dist, tops, requires = wheel_info(whl)
        if norm(dist) in wheel_dists:
            problems.append(f"two wheels of {dist}: {wheel_dists[norm(dist)].name}, {whl.name}")
        wheel_dists[norm(dist)] = whl
        wheel_modules |= tops
        infos.append((dist, requires))
        if not _fits_cp312(whl.name):
            problems.append(f"{whl.name}: not a wheel for CPython 3.12 on x86-64 Linux")
    for dist in WHEELS:
        if norm(dist) not in wheel_dists:
            problems.append(f"no wheel of {dist} in {wheels}")
    # every Requires-Dist of every wheel (no extras) is on the image or among the wheels
    for dist, requires in infos:
        for line in requires:
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate(MARKER_ENV):
                continue
            n = norm(req.name)
            if n not in device and n not in wheel_dists:
                problems.append(f"{dist} requires {line!r}: neither on the GPU image nor among the wheels")
    # every third-party import in the sources
    stdlib = set(sys.stdlib_module_names) - REMOVED_IN_312
    for path in source_files(repo):
        for name in sorted(imports_of(path)):
            if name in LOCAL or name == "__future__":
                continue
            if name in REMOVED_IN_312:
                problems.append(f"{path.relative_to(repo)} imports {name}, gone in Python 3.12")
            elif name in stdlib or name in wheel_modules:
                continue
            elif norm(MODULE_DIST.get(name, name)) not in device:
                problems.append(f"{path.relative_to(repo)} imports {name}: neither on the GPU image nor in a wheel")
    return problems


def check_live(python: str, site: str, repo: Path, stub_native: bool = True) -> dict:
    """Import LIVE_MODULES in ``python`` with ``site`` and the repo on the path."""
    # The native extension is built for the GPU machine's Python there, not here: a stand-in module
    # whose every attribute is a dummy class lets the pure-Python imports be checked.
    stub = ("import types\nclass _Stub(types.ModuleType):\n    def __getattr__(self, name):\n"
            "        if name.startswith('__'): raise AttributeError(name)\n"
            "        return type(name, (), {})\n"
            "try:\n    import pyollama._native\nexcept ImportError:\n"
            "    import pyollama; sys.modules['pyollama._native'] = pyollama._native = _Stub('pyollama._native')\n"
            "    out['_native'] = 'stand-in (not built for this Python)'\n") if stub_native else ""
    code = ("import importlib, json, sys\nout = {}\n" + stub +
            f"for m in {list(LIVE_MODULES)!r}:\n"
            "    try:\n        importlib.import_module(m); out[m] = 'ok'\n"
            "    except BaseException as e:\n        out[m] = f'{type(e).__name__}: {e}'\n"
            "out['_python'] = sys.version.split()[0]\nprint(json.dumps(out))\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (site, str(repo)) if p)}
    r = subprocess.run([python, "-c", code], cwd=repo, env=env, capture_output=True, text=True, timeout=300, check=False)
    if r.returncode != 0:
        return {"_error": r.stderr[-2000:]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    repo = Path(__file__).resolve().parents[2]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheels", default=str(repo / ".gpu" / "wheels"))
    ap.add_argument("--live", metavar="PYTHON", help="import the run's modules in this interpreter")
    ap.add_argument("--site", default="", help="with --live: the folder the wheels are installed in")
    args = ap.parse_args(argv)
    if args.live:
        res = check_live(args.live, args.site, repo)
        bad = {k: v for k, v in res.items() if not k.startswith("_") and v != "ok"}
        if res.get("_native"):
            print("note: pyollama._native is a stand-in here (the extension is built on the GPU machine)",
                  file=sys.stderr)
        print(json.dumps(res, indent=1))
        return 1 if bad or "_error" in res else 0
    problems = check_static(repo, Path(args.wheels))
    for p in problems:
        print(p)
    print("static import check: ok" if not problems else f"static import check: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
