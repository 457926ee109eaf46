"""``pyollama worker``: what it refuses before it starts, what it warns about, and that it serves."""
from __future__ import annotations

import re
import socket
import subprocess
import sys

from pyollama import rpc
from tests.rpc.conftest import REPO, Worker


def _worker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pyollama", "worker", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def test_refuses_bad_arguments():
    r = _worker("-d", "nope")
    # (a GPU build lists its GPUs before the CPU)
    assert r.returncode == 1 and re.search(r"Error: unknown device nope; this machine has .*\bCPU\b", r.stderr), r.stderr
    r = _worker("-p", "70000")
    assert r.returncode == 1 and "--port must be from 1 to 65535" in r.stderr, r.stderr
    r = _worker("--host", "::1")
    assert r.returncode == 1 and "not an IPv6 address" in r.stderr, r.stderr


def test_refuses_a_port_in_use():
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
        r = _worker("-p", str(port))
    assert r.returncode == 1 and f"cannot listen on 127.0.0.1:{port}: Address already in use" in r.stderr, r.stderr


def test_serves_the_cpu_quietly_on_loopback(tmp_path):
    w = Worker(tmp_path / "worker.log", threads=1, devices="CPU")     # the CPU even where there are GPUs
    try:
        info = rpc.probe(w.endpoint)
        assert info.version[0] == rpc.PROTOCOL_MAJOR and len(info.devices) == 1
        assert 0 < info.devices[0].free <= info.devices[0].total
        log = w.log_text()
        assert f"serving CPU on {w.endpoint}" in log and "WARNING" not in log, log
    finally:
        w.stop()
    assert w.proc.returncode == 0
