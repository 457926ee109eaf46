"""The test registry never outlives its test process, even when that process is SIGKILLed."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

SCRIPT = """
import sys, time
sys.path.insert(0, {here!r})
from registry_servers import Registry
from pathlib import Path
r = Registry(Path({root!r})).start()
print(r.proc.pid, r.port, flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purpose
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_registry_dies_with_a_killed_parent(tmp_path: Path, _registry_exe: str) -> None:
    code = SCRIPT.format(here=str(Path(__file__).parent), root=str(tmp_path / "reg"))
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    pid = 0
    try:
        pid, _port = map(int, parent.stdout.readline().split())
        assert _alive(pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 5
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid)
    finally:
        parent.stdout.close()
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if pid and _alive(pid):   # the guard failed: do not leave the registry running
            os.kill(pid, signal.SIGKILL)
