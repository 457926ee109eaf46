"""Real ``pyollama serve`` subprocesses on free loopback ports, over a model store filled once per session.

    def test_x(server):                      # the shared server (module-scoped), default settings
        r = server.post("/api/generate", json={...})
    def test_y(serve):                       # a private server with its own settings
        s = serve(PYOLLAMA_MAX_QUEUE="1")

Models in the shared store: ``smollm2:135m`` (SmolLM2-135M-Instruct, the default model), ``tiny`` (a 2-layer
random llama: loads in milliseconds), ``gemma3`` (Gemma 3 270M base, no template) and ``minilm``
(all-MiniLM-L6-v2 converted from safetensors: an embedding model).
"""
from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (the runner processes of a server)."""
    out: list[int] = []
    task_dir = Path(f"/proc/{pid}/task")
    try:
        for t in task_dir.iterdir():
            text = (t / "children").read_text().split()
            out += [int(x) for x in text]
    except OSError:
        pass
    return sorted(set(out))


class Server:
    def __init__(self, env: dict[str, str], log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("OLLAMA_", "PYOLLAMA_")) and k.lower() not in PROXY_VARS}
        # No spare runner process unless a test asks for one (test_spare_runner.py): tests count and kill
        # a server's runner processes by its children.
        self.env.update({"PYOLLAMA_HOST": f"127.0.0.1:{self.port}", "PYOLLAMA_NOPRUNE": "1",
                         "PYTHONUNBUFFERED": "1", "PYOLLAMA_SPARE_RUNNER": "0"})
        self.env.update(env)
        self._logf = open(log, "ab")  # noqa: SIM115 - the server writes to it until stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "pyollama", "serve"], env=self.env, cwd=REPO,
                                     stdout=self._logf, stderr=subprocess.STDOUT)
        self.http = httpx.Client(base_url=self.url, timeout=120)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_text()}")
            try:
                if self.http.get("/").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not start:\n{self.log_text()}")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]

    # --- shortcuts ---------------------------------------------------------------------------------
    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.get(path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.post(path, **kw)

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return self.http.request(method, path, **kw)

    def ps(self) -> list[dict[str, Any]]:
        return self.get("/api/ps").json()["models"]

    def runner_pids(self) -> list[int]:
        return children(self.proc.pid)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.http.close()
        self._logf.close()
        return self.proc.returncode


def _create(store: Any, name: str, path: Path, **kw: Any) -> None:
    from pyollama.store import CreateRequest, create

    req = CreateRequest(model=name, from_path=path, **kw)
    req.validate()
    for _ in create(store, req):
        pass


@pytest.fixture(scope="session")
def model_store(tmp_path_factory, smollm2_path, tiny_model_path, gemma3_path, minilm_dir) -> Path:
    """A store with smollm2:135m, tiny, gemma3 and minilm (built with the library, once)."""
    from pyollama.store import Store

    root = tmp_path_factory.mktemp("api-store") / "models"
    store = Store(root)
    _create(store, "smollm2:135m", smollm2_path)
    _create(store, "tiny", tiny_model_path)
    _create(store, "gemma3", gemma3_path)
    _create(store, "minilm", minilm_dir)
    return root


@pytest.fixture
def serve(model_store, tmp_path) -> Iterator[Any]:
    """Start private servers: ``serve(**env)``; all are stopped at the end of the test."""
    started: list[Server] = []

    def start(**env: str) -> Server:
        env.setdefault("PYOLLAMA_MODELS", str(model_store))
        s = Server(env, tmp_path / f"server-{len(started)}.log")
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


@pytest.fixture(scope="module")
def server(model_store, tmp_path_factory) -> Iterator[Server]:
    """One server shared by a test module (default settings, the shared store)."""
    s = Server({"PYOLLAMA_MODELS": str(model_store)}, tmp_path_factory.mktemp("server") / "server.log")
    yield s
    s.stop()


def _registry_servers():
    """The store tests' real docker-registry harness (tests/store/registry/registry_servers.py)."""
    path = REPO / "tests" / "store" / "registry" / "registry_servers.py"
    spec = importlib.util.spec_from_file_location("registry_servers", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("registry_servers", mod)
    spec.loader.exec_module(mod)
    return sys.modules["registry_servers"]


@pytest.fixture
def registry(tmp_path) -> Iterator[Any]:
    """A real ``docker-registry`` on a loopback port (project policy: never a mock)."""
    r = _registry_servers().Registry(tmp_path / "registry").start()
    yield r
    r.stop()
