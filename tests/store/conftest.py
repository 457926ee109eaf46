"""Store test fixtures: a store per test in tmp_path (never ~/.pyollama), a tiny GGUF."""
from __future__ import annotations

from pathlib import Path

import pytest

from pyollama.store import Store
from tests.tiny_gguf import write_tiny_gguf


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "models")


@pytest.fixture
def tiny_gguf(tmp_path: Path) -> Path:
    return write_tiny_gguf(tmp_path / "tiny.gguf")


@pytest.fixture(autouse=True)
def _no_env_store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Never touch ~/.pyollama: point the env at a per-test directory and clear the prune switches."""
    for k in ("OLLAMA_NOPRUNE", "PYOLLAMA_NOPRUNE", "OLLAMA_MODELS"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("PYOLLAMA_MODELS", str(tmp_path / "env-models"))
