"""Which CPU backend module the engine loads: ggml's best for this CPU, or the variant named by
PYOLLAMA_CPU_VARIANT in a build with several (each case in a fresh interpreter: backends load once
per process)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from pyollama import _native

SHOW = ("import pyollama, pyollama._native as n\n"
        "print([l.split()[-1].rsplit('/', 1)[-1] for l in open('/proc/self/maps') if 'libggml-cpu' in l][0])\n"
        "print(sorted({d['backend'] for d in n.devices()}))\n")


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PYOLLAMA_")}
    return subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    """A backend folder shaped like a build with every CPU variant: this build's modules, plus its CPU
    module under the variant name ``pinned``."""
    real = _native.backend_dir()
    folder = tmp_path_factory.mktemp("backends")
    for name in os.listdir(real):
        os.symlink(os.path.join(real, name), folder / name)
    cpu = next(n for n in os.listdir(real) if n.startswith("libggml-cpu") and n.endswith(".so"))
    shutil.copy(os.path.join(real, cpu), folder / "libggml-cpu-pinned.so")   # a copy: /proc/self/maps names it
    return folder


def test_the_named_variant_is_loaded(variants, tiny_model_path):
    r = _run(SHOW + f"from pyollama.engine import LLM\n"
                    f"print(LLM({str(tiny_model_path)!r}, num_ctx=64).complete('hi', num_predict=4).eval_count)",
             PYOLLAMA_BACKEND_DIR=str(variants), PYOLLAMA_CPU_VARIANT="pinned")
    assert r.returncode == 0, r.stderr[-2000:]
    module, backends, generated = r.stdout.split("\n")[:3]
    assert module == "libggml-cpu-pinned.so" and "CPU" in backends and int(generated) == 4


def test_an_unknown_variant_is_a_clear_error(variants):
    r = _run("import pyollama._native", PYOLLAMA_BACKEND_DIR=str(variants), PYOLLAMA_CPU_VARIANT="zen9")
    assert r.returncode != 0 and "PYOLLAMA_CPU_VARIANT='zen9' is not in this build" in r.stderr
    assert "it has pinned" in r.stderr
    r = _run("import pyollama._native", PYOLLAMA_CPU_VARIANT="haswell")
    if "libggml-cpu-haswell.so" not in os.listdir(_native.backend_dir()):
        assert r.returncode != 0 and "built for this machine only" in r.stderr


def test_without_a_pin_ggml_picks(variants):
    r = _run(SHOW, PYOLLAMA_BACKEND_DIR=str(variants))
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split("\n")[0].startswith("libggml-cpu")
