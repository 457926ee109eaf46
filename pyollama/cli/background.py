"""Start ``pyollama serve`` in the background when a command finds no server on this machine.

Ollama's CLI starts its desktop app in that case; pyollama has no app, so the CLI starts the server
itself: a detached process (its own session, so a Ctrl+C in the terminal does not stop it) with the
caller's environment (the same OLLAMA_HOST, OLLAMA_MODELS, ...), logging to
``~/.pyollama/logs/server.log``. The command says so on stderr, with the process id, then waits until
the server answers. The server keeps running after the command ends, as ``ollama serve`` would; stop
it by its pid.

Thread-safety: call from the main thread.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pyollama.errors import ServerUnreachable

if TYPE_CHECKING:
    from pyollama.cli.client import Client

READY_TIMEOUT = 120.0


def state_dir() -> Path:
    """``~/.pyollama`` — history and the background server's log (the store lives under it too)."""
    return Path.home() / ".pyollama"


def start_server(client: Client) -> int:
    """Spawn the server, wait until it answers, return its pid."""
    log_path = state_dir() / "logs" / "server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    offset = log_path.stat().st_size if log_path.exists() else 0
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "pyollama", "serve"], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                close_fds=True, env=os.environ.copy())
    print(f"No pyollama server at {client.host.host}:{client.host.port}; started one in the background "
          f"(pid {proc.pid}, log {log_path})", file=sys.stderr, flush=True)
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if client.heartbeat():
            return proc.pid
        code = proc.poll()
        if code is not None:
            # Another command may have started one at the same moment (ours then fails to bind).
            if client.heartbeat():
                return proc.pid
            raise ServerUnreachable(f"the background server exited with status {code}: "
                                    f"{_last_line(log_path, offset)}")
        time.sleep(0.1)
    raise ServerUnreachable(f"the background server (pid {proc.pid}) did not answer within "
                            f"{READY_TIMEOUT:.0f} s; see {log_path}")


def _last_line(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            lines = [x for x in f.read().decode(errors="replace").splitlines() if x.strip()]
    except OSError:
        return "(no log)"
    return lines[-1].strip() if lines else "(no output)"
