"""A runner child started before it is needed: the interpreter up and the runner's modules (numpy, the native
library) imported, waiting on its socket for the ``start`` message. The next ProcessRunner whose child
would get the same environment takes it, so loading a model does not wait for a Python start (~0.2 s of a
cold start on a 2-core machine). Another spare follows a moment after each one is taken (not at once: it
would take a core from the load that just began).

The server turns this on (``PYOLLAMA_SPARE_RUNNER``, default on) and shuts the spare down when it stops; a
spare whose server dies sees its socket close and exits. Off, nothing changes: children start on demand.

Thread-safety: every function may be called from any thread.
"""
from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading

log = logging.getLogger("pyollama.runner")

REFILL_DELAY = 2.0          # seconds between taking the spare and starting the next one

_lock = threading.Lock()
_enabled = False
_spare: tuple[subprocess.Popen, socket.socket, dict[str, str]] | None = None
_timer: threading.Timer | None = None


def child_env(base: dict[str, str] | None) -> dict[str, str]:
    """The environment of a runner child. An abort (a lost RPC worker, a failed assertion) must end it at
    once: ggml's backtrace runs gdb first, which takes seconds. GGML_NO_BACKTRACE=0 in the server's
    environment keeps the backtrace."""
    env = dict(os.environ if base is None else base)
    if env.get("GGML_NO_BACKTRACE") == "0":
        del env["GGML_NO_BACKTRACE"]
    else:
        env.setdefault("GGML_NO_BACKTRACE", "1")
    return env


def spawn(env: dict[str, str]) -> tuple[subprocess.Popen, socket.socket]:
    """A runner child (``python -m pyollama.runner.child FD``) and the server's end of its socket."""
    parent, child = socket.socketpair()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "pyollama.runner.child", str(child.fileno())],
                                pass_fds=(child.fileno(),), env=env, stdin=subprocess.DEVNULL)
    except BaseException:
        parent.close()
        raise
    finally:
        child.close()
    return proc, parent


def enable() -> None:
    """Keep a spare from now on, and start one."""
    global _enabled
    with _lock:
        _enabled = True
    refill(delay=0)


def take(env: dict[str, str]) -> tuple[subprocess.Popen, socket.socket] | None:
    """The spare, for a child with environment ``env`` (None: there is none, it died, or its environment
    differs); the next spare is started a moment later."""
    global _spare
    with _lock:
        spare, _spare = _spare, None
    if spare is None:
        return None
    proc, sock, spare_env = spare
    if proc.poll() is not None or spare_env != env:
        _close(proc, sock)
        refill()
        return None
    refill()
    return proc, sock


def refill(delay: float = REFILL_DELAY) -> None:
    """Start a spare (after ``delay`` seconds) when one is kept and there is none."""
    global _timer
    with _lock:
        if not _enabled or _spare is not None or (_timer is not None and _timer.is_alive()):
            return
        _timer = threading.Timer(delay, _fill)
        _timer.daemon = True
        _timer.start()


def _fill() -> None:
    global _spare
    env = child_env(None)
    with _lock:
        if not _enabled or _spare is not None:
            return
        try:
            proc, sock = spawn(env)
        except OSError as e:
            log.warning("could not start a spare runner process: %s", e)
            return
        _spare = (proc, sock, env)
    log.debug("spare runner process %d started", proc.pid)


def shutdown() -> None:
    """End the spare (the server is stopping); none is started after this until ``enable``."""
    global _spare, _enabled
    with _lock:
        spare, _spare = _spare, None
        timer = _timer
        _enabled = False
    if timer is not None:
        timer.cancel()
    if spare is not None:
        _close(spare[0], spare[1])


def _close(proc: subprocess.Popen, sock: socket.socket) -> None:
    sock.close()                # the child sees the socket end and exits
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
