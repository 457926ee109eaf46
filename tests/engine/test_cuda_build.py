"""The CUDA build (scripts/build_cuda.sh → build/cuda): on a machine without a GPU its CUDA backend
fails to load with one clear line and the CPU backend serves; on a machine with one (marker ``gpu``)
the CUDA device is found and a model runs on it. Skipped where the CUDA build was not made (CI: too
slow for 2 cores)."""
from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CUDA_BIN = REPO / "build" / "cuda" / "bin"
CUDA_LIB = CUDA_BIN / "libggml-cuda.so"

pytestmark = pytest.mark.skipif(not CUDA_LIB.exists(),
                                reason="no CUDA build here (bash scripts/build_cuda.sh --arch 90 makes one)")

PROBE = r"""
import json, logging, sys
logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
import pyollama
from pyollama import _native
from pyollama.engine import LLM
devs = pyollama.backends()
out = {"devices": devs, "failures": _native.backend_failures()}
gpu = any(d["type"] == "gpu" for d in devs)
with LLM(sys.argv[1], num_ctx=256, num_gpu=-1 if gpu else 0) as llm:
    g = llm.generate("Hello", num_predict=4, temperature=0).result()
    out["tokens"] = g.eval_count
    out["memory"] = llm.ctx.allocated()
print(json.dumps(out))
"""


def _driver_present() -> bool:
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


def _run(model: Path) -> tuple[dict, str]:
    env = {**os.environ, "PYOLLAMA_BACKEND_DIR": str(CUDA_BIN)}
    p = subprocess.run([sys.executable, "-c", PROBE, str(model)], capture_output=True, text=True, env=env,
                       timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1]), p.stderr


def test_without_a_gpu_the_cuda_backend_is_skipped_with_one_line_and_the_cpu_serves(tiny_model_path):
    if _driver_present():
        pytest.skip("an NVIDIA driver is installed here: the CUDA backend loads")
    out, err = _run(tiny_model_path)
    assert [d["type"] for d in out["devices"]] == ["cpu"]
    assert [os.path.basename(p) for p, _ in out["failures"]] == ["libggml-cuda.so"]
    assert "libcuda.so.1" in out["failures"][0][1]
    lines = [ln for ln in err.splitlines() if "libggml-cuda.so" in ln]
    assert len(lines) == 1 and "CUDA backend not loaded" in lines[0] and "libcuda.so.1" in lines[0], err
    assert out["tokens"] == 4 and out["memory"][-1]["device"] == "host"


@pytest.mark.gpu
def test_with_a_gpu_the_model_runs_on_it(tiny_model_path):
    if not _driver_present():
        pytest.skip("no NVIDIA driver here")
    out, _ = _run(tiny_model_path)
    gpus = [d for d in out["devices"] if d["type"] == "gpu"]
    assert gpus and gpus[0]["backend"] == "CUDA" and gpus[0]["memory_total"] > 0
    assert not out["failures"] and out["tokens"] == 4
    on_gpu = [u for u in out["memory"] if u["type"] == "gpu"]
    assert on_gpu and on_gpu[0]["model"] > 0 and on_gpu[0]["context"] > 0
