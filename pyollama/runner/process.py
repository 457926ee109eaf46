"""ProcessRunner: the Runner interface, served by a child process.

A native crash, abort or out-of-memory kill ends the child, not the server: every request in
flight then fails with RunnerDied and the scheduler loads a fresh runner for the next one. The
child is `python -m pyollama.runner.child`, talking over a private socketpair (wire.py).

Messages from the child are read by a thread, or — when the runner is given the server's event
loop — by a reader callback on that loop: tokens then reach their async consumers without a
thread hop, a self-pipe wake-up and a GIL hand-over per token.
"""
from __future__ import annotations

import asyncio
import itertools
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
from concurrent.futures import Future

import numpy as np

from pyollama.errors import RunnerDied
from pyollama.runner.types import ErrorEvent, RunnerSpec, SeqRequest, Stream
from pyollama.runner.wire import _LEN, Channel

_ids = itertools.count(1)


class ProcessRunner:
    """Same interface as Runner. Thread-safety: any method from any thread."""

    def __init__(self, spec: RunnerSpec, *, env: dict | None = None, load_timeout: float | None = None,
                 loop: asyncio.AbstractEventLoop | None = None):
        self.spec = spec
        self._loop = loop
        self._rbuf = bytearray()
        self._env = env
        self._load_timeout = load_timeout
        self.proc: subprocess.Popen | None = None
        self._chan: Channel | None = None
        self._streams: dict[int, Stream] = {}
        self._calls: dict[int, Future] = {}
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None
        self._dead: BaseException | None = None
        self._info: dict = {}
        self.load_duration = 0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> ProcessRunner:
        parent, child = socket.socketpair()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pyollama.runner.child", str(child.fileno())],
                pass_fds=(child.fileno(),), env=self._env, stdin=subprocess.DEVNULL)
        finally:
            child.close()
        self._chan = Channel(parent)
        self._chan.send(("start", self.spec))
        started: Future = Future()
        self._started = started
        loop = self._loop
        on_loop_thread = False
        if loop is not None:
            try:
                on_loop_thread = asyncio.get_running_loop() is loop
            except RuntimeError:
                pass
        if loop is not None and not on_loop_thread and loop.is_running():
            attached: Future = Future()
            loop.call_soon_threadsafe(self._attach, attached)
            attached.result()
        else:
            self._loop = None            # blocking here would stall that loop: use a thread
            self._reader = threading.Thread(target=self._read, daemon=True,
                                            name=f"runner-reader:{self.proc.pid}")
            self._reader.start()
        try:
            self._info, self.load_duration = started.result(timeout=self._load_timeout)
        except BaseException:
            self.close()
            raise
        return self

    # --- reading the child's messages --------------------------------------------------------------
    def _read(self) -> None:
        """Thread mode: block on the socket until the child goes away."""
        try:
            while True:
                msg = self._chan.recv()
                if msg is None:
                    break
                self._handle(msg)
        except BaseException as e:              # a broken message: treat like a dead child
            self._dead = e
        finally:
            self._on_exit()

    def _attach(self, attached: Future) -> None:
        self._loop.add_reader(self._chan.sock.fileno(), self._on_readable)
        attached.set_result(None)

    def _on_readable(self) -> None:
        """Loop mode: take what the socket has (without blocking) and handle every whole message."""
        buf = self._rbuf
        try:
            data = self._chan.sock.recv(1 << 16, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._detach()
            threading.Thread(target=self._on_exit, daemon=True).start()   # proc.wait() may block
            return
        buf += data
        pos = 0
        try:
            while len(buf) - pos >= _LEN.size:
                (n,) = _LEN.unpack_from(buf, pos)
                if len(buf) - pos - _LEN.size < n:
                    break
                start = pos + _LEN.size
                self._handle(pickle.loads(buf[start:start + n]))
                pos = start + n
        except Exception as e:                  # a broken message: treat like a dead child
            self._dead = e
            self._detach()
            threading.Thread(target=self._on_exit, daemon=True).start()
            return
        del buf[:pos]

    def _detach(self) -> None:
        if self._loop is not None and self._chan is not None:
            try:
                self._loop.remove_reader(self._chan.sock.fileno())
            except (OSError, ValueError):
                pass

    def _handle(self, msg) -> None:
        kind = msg[0]
        if kind == "ev":
            stream = self._streams.get(msg[1])
            if stream is not None:
                ev = msg[2]
                if isinstance(ev, ErrorEvent) or type(ev).__name__ == "DoneEvent":
                    self._streams.pop(msg[1], None)
                stream.put(ev)
        elif kind in ("result", "error"):
            fut = self._calls.pop(msg[1], None)
            if fut is not None:
                (fut.set_result if kind == "result" else fut.set_exception)(msg[2])
        elif kind == "started":
            self._started.set_result((msg[1], msg[2]))
        elif kind == "start_error":
            self._started.set_exception(msg[1])

    def _on_exit(self) -> None:
        """The child is gone: everything in flight fails with RunnerDied."""
        started = self._started
        code = self.proc.wait() if self.proc else None
        why = f"runner process exited with status {code}" if code else "runner process exited"
        if code is not None and code < 0:
            why = f"runner process was killed by signal {-code}"
        err = RunnerDied(why)
        self._dead = self._dead or err
        if not started.done():
            started.set_exception(err)
        with self._lock:
            streams, self._streams = list(self._streams.values()), {}
            calls, self._calls = list(self._calls.values()), {}
        for s in streams:
            s.put(ErrorEvent(err))
        for f in calls:
            if not f.done():
                f.set_exception(err)

    # --- calls -----------------------------------------------------------------------------------
    def _call(self, kind: str, *args):
        fut: Future = Future()
        rid = next(_ids)
        with self._lock:
            self._check()
            self._calls[rid] = fut
        self._chan.send((kind, rid, *args))
        return fut.result()

    def _check(self) -> None:
        if self._dead is not None:
            raise RunnerDied(str(self._dead))
        if self._chan is None:
            raise RunnerDied("runner is not running")

    @property
    def alive(self) -> bool:
        return self._dead is None and self.proc is not None and self.proc.poll() is None

    def submit(self, req: SeqRequest) -> Stream:
        rid = next(_ids)
        stream = Stream(rid)
        stream.on_cancel(lambda: self._send_quiet(("cancel", rid)))
        fut: Future = Future()
        with self._lock:
            self._check()
            self._streams[rid] = stream
            self._calls[rid] = fut
        self._chan.send(("submit", rid, req))
        try:
            fut.result()                         # the child validated and queued it
        except BaseException:
            self._streams.pop(rid, None)
            raise
        return stream

    def _send_quiet(self, msg) -> None:
        try:
            if self._dead is None and self._chan is not None:
                self._chan.send(msg)
        except OSError:
            pass

    def embed(self, inputs: list[str], truncate: bool = True, normalize: bool = True) -> tuple[np.ndarray, int]:
        return self._call("embed", list(inputs), truncate, normalize)

    def tokenize(self, text: str, add_special: bool = True, parse_special: bool = False) -> list[int]:
        return self._call("tokenize", (text, add_special, parse_special))

    def detokenize(self, tokens) -> str:
        return self._call("detokenize", list(tokens))

    @property
    def info(self) -> dict:
        return dict(self._info)

    def kill(self) -> None:
        """SIGKILL the child (tests; a runner that no longer answers)."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)

    def close(self, timeout: float = 10.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self._send_quiet(("close",))
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(5)
        if self._loop is not None and self._chan is not None and not self._loop.is_closed():
            # the loop must stop watching the socket before it is closed
            try:
                on_loop = asyncio.get_running_loop() is self._loop
            except RuntimeError:
                on_loop = False
            if on_loop or not self._loop.is_running():
                self._detach()
            else:
                done: Future = Future()
                self._loop.call_soon_threadsafe(lambda: (self._detach(), done.set_result(None)))
                try:
                    done.result(5)
                except Exception:
                    pass
        if self._chan is not None:
            self._chan.close()
        self._dead = self._dead or RunnerDied("runner was closed")

    def __enter__(self) -> ProcessRunner:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
