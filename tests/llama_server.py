"""Upstream's llama-server, built from the pin, as a reference in tests: started on a free loopback port,
waited for, stopped."""
from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pyollama.upstream import find_tool


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def llama_server(model: Path, args: list[str], log_dir: Path, *, timeout: float = 900) -> Iterator[httpx.Client]:
    """A client of ``llama-server -m model *args`` (skips the test when the tools are not built)."""
    server = find_tool("llama-server")
    if server is None:
        pytest.skip("llama-server not built (PYOLLAMA_BUILD_TOOLS=ON)")
    port = free_port()
    log = open(log_dir / "llama-server.log", "w+b")   # noqa: SIM115 - closed below
    proc = subprocess.Popen([str(server), "-m", str(model), "--host", "127.0.0.1", "--port", str(port), *args],
                            stdout=subprocess.DEVNULL, stderr=log)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=timeout) as c:   # a loaded 2-core box is slow
            deadline = time.monotonic() + 120
            while True:
                assert proc.poll() is None, log.read()
                try:
                    if c.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "llama-server did not start"
                time.sleep(0.2)
            yield c
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
