"""ProcessRunner: the Runner interface, served by a child process.

A native crash, abort or out-of-memory kill ends the child, not the server: every request in
flight then fails with RunnerDied and the scheduler loads a fresh runner for the next one. The
child is `python -m pyollama.runner.child`, talking over a private socketpair (wire.py).

Messages from the child are read by a thread, or — when the runner is given the server's event
loop — by a reader callback on that loop: tokens then reach their async consumers without a
thread hop, a self-pipe wake-up and a GIL hand-over per token.

A watchdog thread replaces a child that hangs instead of dying: one silent for ``hang_timeout``
(it beats several times a second, so it is stopped or deadlocked), or stuck in one unit of work —
a batch step, an embedding — for ``step_timeout``. It is killed, and the requests on it fail with
RunnerDied saying so. A torn or unreadable message from the child is handled the same way.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import os
import pickle
import select
import signal
import socket
import subprocess
import threading
import time
from concurrent.futures import Future

import numpy as np

from pyollama.errors import RunnerDied
from pyollama.runner import spare
from pyollama.runner.types import DoneEvent, ErrorEvent, RunnerInfo, RunnerSpec, SeqRequest, Stream
from pyollama.runner.wire import _LEN, Channel

_ids = itertools.count(1)
log = logging.getLogger("pyollama.runner")

HANG_TIMEOUT = 60.0       # seconds of silence (no heartbeat) before a child counts as hung
STEP_TIMEOUT = 600.0      # seconds one batch step or embedding may take: a long prompt chunk on a big model


class ProcessRunner:
    """Same interface as Runner. Thread-safety: any method from any thread."""

    def __init__(self, spec: RunnerSpec, *, env: dict | None = None, load_timeout: float | None = None,
                 loop: asyncio.AbstractEventLoop | None = None, hang_timeout: float = HANG_TIMEOUT,
                 step_timeout: float = STEP_TIMEOUT):
        self.spec = spec
        self.hang_timeout = hang_timeout        # <= 0 or inf: never
        self.step_timeout = step_timeout
        self._seen_at = 0.0                     # monotonic time of the child's last heartbeat
        self._progress = (0, False, 0.0)        # its last (progress, working) report, and since when
        self._why: str | None = None            # why the parent ended the child, when it did
        self._watch_stop = threading.Event()
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
        self._info = RunnerInfo()
        self.load_duration = 0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> ProcessRunner:
        env = spare.child_env(self._env)
        self.proc, parent = spare.take(env) or spare.spawn(env)     # a child already up, when one is kept
        self._chan = Channel(parent)
        self._seen_at = time.monotonic()
        self._chan.send(("start", self.spec, self._beat_interval()))
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
        if self._beat_interval() > 0:
            threading.Thread(target=self._watch, daemon=True, name=f"runner-watchdog:{self.proc.pid}").start()
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
        except BaseException as e:              # a broken message: the stream cannot be trusted any more
            self._end_child(f"runner sent a broken message ({type(e).__name__}: {e})")
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
        except Exception as e:                  # a broken message: the stream cannot be trusted any more
            self._end_child(f"runner sent a broken message ({type(e).__name__}: {e})")
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
        if kind == "beat":          # beats come at least every second: the only clock the watchdog needs
            self._seen_at = now = time.monotonic()
            if msg[1:] != self._progress[:2]:
                self._progress = (msg[1], msg[2], now)
            return
        if kind == "fatal":
            self._why = msg[1]
            return
        if kind == "evs":               # one step's events, for any number of streams
            streams = self._streams
            for rid, ev in msg[1]:
                stream = streams.get(rid)
                if stream is not None:
                    if isinstance(ev, (DoneEvent, ErrorEvent)):
                        streams.pop(rid, None)
                    stream.put(ev)
        elif kind in ("result", "error"):
            fut = self._calls.pop(msg[1], None)
            if fut is not None:
                _settle(fut, kind == "result", msg[2])
        elif kind == "started":
            self._started.set_result((msg[1], msg[2]))
        elif kind == "start_error":
            self._started.set_exception(msg[1])

    def _on_exit(self) -> None:
        """The child is gone: everything in flight fails with RunnerDied."""
        started = self._started
        code = self.proc.wait() if self.proc else None
        self._watch_stop.set()
        why = f"runner process exited with status {code}" if code else "runner process exited"
        if code is not None and code < 0:
            why = f"runner process was killed by signal {-code}"
            if code in (-signal.SIGSEGV, -signal.SIGABRT, -signal.SIGBUS, -signal.SIGILL, -signal.SIGFPE):
                log.error("runner for %s crashed (signal %d)", self.spec.model_path, -code)
        if self._why:
            why = self._why
        if self.spec.rpc_servers and code:
            # Upstream aborts a process whose worker stops answering: name the worker that went away.
            from pyollama import rpc
            gone = rpc.diagnose(self.spec.rpc_servers)
            if gone:
                why = (f"lost {gone}; the runner that used it ended ({why}), and the next request loads "
                       "the model again on the devices that remain")
                log.error("runner for %s lost an RPC worker: %s", self.spec.model_path, gone)
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
            _settle(f, False, err)

    # --- the watchdog ------------------------------------------------------------------------------
    def _beat_interval(self) -> float:
        """How often the child beats: several beats fit in the shortest timeout (0: no watchdog)."""
        limits = [t for t in (self.hang_timeout, self.step_timeout) if 0 < t < float("inf")]
        return min(1.0, min(limits) / 5) if limits else 0.0

    def _watch(self) -> None:
        every = self._beat_interval()
        while not self._watch_stop.wait(every):
            if self.proc is None or self.proc.poll() is not None:
                return
            now = time.monotonic()
            if self._chan is not None and select.select([self._chan.sock], [], [], 0)[0]:
                self._seen_at = now          # it has spoken; this process is what is slow to read
            silent = now - self._seen_at
            progress, working, since = self._progress
            if 0 < self.hang_timeout < silent:
                self._end_child(f"runner stopped answering (no heartbeat for {silent:.0f} s, more than "
                                f"PYOLLAMA_RUNNER_TIMEOUT={self.hang_timeout:g} s); it was killed and will be "
                                f"loaded again by the next request")
                return
            if working and since and 0 < self.step_timeout < now - since:
                self._end_child(f"runner hung: one batch step has run for {now - since:.0f} s, more than "
                                f"PYOLLAMA_STEP_TIMEOUT={self.step_timeout:g} s; it was killed and will be "
                                f"loaded again by the next request")
                return

    def _end_child(self, why: str) -> None:
        """Kill the child for ``why``; the reader sees it exit and fails what was in flight."""
        if self._why is None:
            self._why = why
            log.error("runner %s (%s): %s", self.pid, os.path.basename(self.spec.model_path), why)
        self.kill()

    # --- calls -----------------------------------------------------------------------------------
    def _call(self, kind: str, *args, timeout: float | None = None):
        fut: Future = Future()
        rid = next(_ids)
        with self._lock:
            self._check()
            self._calls[rid] = fut
        try:
            self._chan.send((kind, rid, *args))
        except BaseException:
            self._calls.pop(rid, None)
            raise
        try:
            return fut.result(timeout)
        finally:
            self._calls.pop(rid, None)          # a call that timed out must not wait for ever

    def _check(self) -> None:
        if self._dead is not None:
            raise RunnerDied(str(self._dead))
        if self._chan is None:
            raise RunnerDied("runner is not running")

    @property
    def alive(self) -> bool:
        return self._dead is None and self._why is None and self.proc is not None and self.proc.poll() is None

    def submit(self, req: SeqRequest) -> Stream:
        fut: Future = Future()
        rid, stream = self._send_submit(req, fut)
        try:
            fut.result()                         # the child validated and queued it
        except BaseException:
            self._forget(rid)
            raise
        return stream

    async def asubmit(self, req: SeqRequest) -> Stream:
        """submit() from an event loop: waits for the child's answer without a thread. A caller cancelled
        after the request went out cancels it in the child."""
        fut = asyncio.get_running_loop().create_future()
        rid, stream = self._send_submit(req, fut)
        try:
            await fut
        except asyncio.CancelledError:
            self._forget(rid)
            stream.cancel()
            raise
        except BaseException:
            self._forget(rid)
            raise
        return stream

    def _send_submit(self, req: SeqRequest, fut) -> tuple[int, Stream]:
        """Register the stream and the answer's future, then send ``submit`` (events may come before the
        answer: the stream is there to take them)."""
        rid = next(_ids)
        stream = Stream(rid)
        stream.on_cancel(lambda: self._send_quiet(("cancel", rid)))
        with self._lock:
            self._check()
            self._streams[rid] = stream
            self._calls[rid] = fut
        try:
            self._chan.send(("submit", rid, req))
        except BaseException:
            self._forget(rid)
            raise
        return rid, stream

    def _forget(self, rid: int) -> None:
        self._streams.pop(rid, None)
        self._calls.pop(rid, None)

    def _send_quiet(self, msg) -> None:
        try:
            if self._dead is None and self._chan is not None:
                self._chan.send(msg)
        except OSError:
            pass

    def embed(self, inputs: list[str | list[int]], truncate: bool = True,
              normalize: bool = True) -> tuple[np.ndarray, int]:
        return self._call("embed", list(inputs), truncate, normalize)

    def tokenize(self, text: str, add_special: bool = True, parse_special: bool = False) -> list[int]:
        return self._call("tokenize", (text, add_special, parse_special))

    def detokenize(self, tokens) -> str:
        return self._call("detokenize", list(tokens))

    def stats(self, timeout: float | None = None) -> dict:
        return self._call("stats", timeout=timeout)

    @property
    def info(self) -> RunnerInfo:
        return self._info

    def kill(self) -> None:
        """SIGKILL the child (tests; a runner that no longer answers)."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)

    def close(self, timeout: float = 10.0) -> None:
        self._watch_stop.set()
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


def _settle(fut, ok: bool, value) -> None:
    """Resolve a call's future, a concurrent one or one of an event loop (asubmit), from any thread."""
    if isinstance(fut, asyncio.Future) and not _on_loop(fut.get_loop()):
        try:
            fut.get_loop().call_soon_threadsafe(_set, fut, ok, value)
        except RuntimeError:             # that loop is closed: nobody waits for the answer
            pass
    else:
        _set(fut, ok, value)


def _set(fut, ok: bool, value) -> None:
    if not fut.done():
        (fut.set_result if ok else fut.set_exception)(value)


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
