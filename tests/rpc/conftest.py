"""RPC workers for the tests: real ``pyollama worker`` processes (upstream's RPC server from the pin) on
free loopback ports, or inside network namespaces the tests make (tests/rpc/netns.py).

    def test_x(workers):
        a, b = workers(2)                    # two workers; stopped (kill -9 if need be) at the end
        s = serve_with(a, b)                 # a pyollama server whose PYOLLAMA_RPC_SERVERS lists them
"""
from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import REPO, Server, free_port, model_store, serve  # noqa: F401 - fixtures

MODEL = "smollm2:135m"
PROMPT = "The three primary colors are"


class Worker:
    """``pyollama worker`` on ``host:port``; ``netns`` runs it inside that network namespace."""

    def __init__(self, log: Path, host: str = "127.0.0.1", port: int | None = None, netns: str | None = None,
                 threads: int = 0, devices: str = ""):
        self.host, self.port = host, port or free_port()
        self.endpoint = f"{self.host}:{self.port}"
        self.log = log
        cmd = [sys.executable, "-m", "pyollama", "worker", "--host", self.host, "-p", str(self.port)]
        if threads:
            cmd += ["-t", str(threads)]
        if devices:
            cmd += ["-d", devices]
        if netns:
            cmd = ["ip", "netns", "exec", netns, *cmd]      # execs in place: the pid is the worker's
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA_", "PYOLLAMA_"))}
        self._logf = open(log, "ab")  # noqa: SIM115 - the worker writes to it until stop()
        self.proc = subprocess.Popen(cmd, env={**env, "PYTHONUNBUFFERED": "1"}, cwd=REPO,
                                     stdout=self._logf, stderr=subprocess.STDOUT)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60) -> None:
        from pyollama import rpc
        from pyollama.errors import WorkerUnavailable

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.log_text()}")
            try:
                rpc.probe(self.endpoint, timeout=2)
                return
            except WorkerUnavailable:
                time.sleep(0.2)
        raise RuntimeError(f"worker did not start:\n{self.log_text()}")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        """kill -9: the connection drops as when a host loses power mid-command (no goodbye)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self._logf.close()


class Peer:
    """A loopback listener standing in for a broken worker: ``answer(conn)`` runs per connection."""

    def __init__(self, answer):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.conns: list[socket.socket] = []
        self.answer = answer
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            self.answer(conn)

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


def cluster(store: Path, log_dir: Path, hosts: list[Any] | None = None, n: int = 2) -> tuple[Server, list[Worker]]:
    """``n`` workers (one in each of ``hosts``' namespaces, bound to its address, if given) and a server
    whose PYOLLAMA_RPC_SERVERS lists them."""
    ws = [Worker(log_dir / f"worker-{i}.log", **({"host": hosts[i].addr, "netns": hosts[i].name} if hosts else {}))
          for i in range(n)]
    s = Server({"PYOLLAMA_MODELS": str(store), "PYOLLAMA_RPC_SERVERS": ",".join(w.endpoint for w in ws)},
               log_dir / "server.log")
    return s, ws


@pytest.fixture
def workers(tmp_path) -> Iterator[Any]:
    """``workers(n, **kw)`` starts n workers; all are stopped at the end of the test."""
    started: list[Worker] = []

    def start(n: int = 1, **kw: Any) -> list[Worker]:
        new = [Worker(tmp_path / f"worker-{len(started) + i}.log", **kw) for i in range(n)]
        started.extend(new)
        return new

    yield start
    for w in started:
        w.stop()


def generate(server: Server, model: str, prompt: str, n: int = 24, **options: Any) -> dict[str, Any]:
    """A greedy /api/generate of fixed length, ``options`` merged in; its ``context`` holds every token."""
    r = server.post("/api/generate", json={
        "model": model, "prompt": prompt, "stream": False,
        "options": {"temperature": 0, "seed": 7, "num_predict": n, **options}})
    assert r.status_code == 200, r.text
    return r.json()


def unload(server: Server, model: str) -> None:
    r = server.post("/api/generate", json={"model": model, "keep_alive": 0})
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 30
    while any(m["name"] in (model, f"{model}:latest") for m in server.ps()):
        assert time.monotonic() < deadline, f"{model} still loaded"
        time.sleep(0.1)


def stream_until_killed(server, worker, *, after: int = 4, limit: float = 60,
                        how: str = "kill") -> tuple[int, dict]:
    """Stream a long generation, kill -9 ``worker`` (or SIGSTOP it: ``how="stop"``) after ``after``
    chunks; (chunks, last line)."""
    body = {"model": MODEL, "prompt": "Count from one to a thousand: one, two,", "raw": True,
            "options": {"temperature": 0, "num_predict": 4000, "num_gpu": -1, "tensor_split": "1,0"}}
    n, last, t_kill = 0, {}, None
    with server.http.stream("POST", "/api/generate", json=body, timeout=limit) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if not line:
                continue
            last = json.loads(line)
            n += 1
            if n == after:
                worker.kill() if how == "kill" else worker.proc.send_signal(signal.SIGSTOP)
                t_kill = time.monotonic()
            if last.get("done") or "error" in last:
                break
    assert t_kill is not None, f"the stream ended after {n} chunks: {last}"
    return n, last | {"_after_kill_s": time.monotonic() - t_kill}


def recv_cmd(conn) -> tuple[int, bytes]:
    head = conn.recv(9, socket.MSG_WAITALL)
    cmd, n = struct.unpack("<BQ", head)
    return cmd, conn.recv(n, socket.MSG_WAITALL) if n else b""


def hello(version: tuple[int, int, int]):
    """A peer's answer to the HELLO handshake: protocol ``version``."""
    from pyollama import rpc

    def handler(conn):
        cmd, payload = recv_cmd(conn)
        assert cmd == rpc.CMD_HELLO and len(payload) == rpc.CONN_CAPS
        body = bytes(version) + b"\0" + bytes(rpc.CONN_CAPS)
        conn.sendall(struct.pack("<Q", len(body)) + body)
    return handler
