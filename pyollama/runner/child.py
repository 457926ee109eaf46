"""The runner child process: `python -m pyollama.runner.child FD` serves one Runner over the
socket FD (see process.py for the messages).

A heartbeat thread reports ``("beat", progress, working)`` as often as the server asks (<= 1 s), from before the
load on, so the server can tell a hung child (silent, or stuck inside one unit of work) from a busy one.

Test hook (read once, deliberately tiny): ``PYOLLAMA_RUNNER_FAULT=<file>`` - the first child to rename
the file away claims it and injects the fault it names, ``load <action>`` or ``step <n> <action>``. The
action is ``segv``, ``abort``, ``kill``, ``stop`` (SIGSTOP: the whole child freezes), ``hang`` (the
thread blocks for ever; heartbeats go on), ``raise`` (the thread raises) or ``garbage`` (a torn frame to
the server). One file, one fault: the runner loaded after it is healthy.
"""
from __future__ import annotations

import os
import signal
import socket
import sys
import threading

from pyollama.errors import RequestTooLarge
from pyollama.runner.runner import Runner
from pyollama.runner.types import DoneEvent, ErrorEvent, Event, Stream
from pyollama.runner.wire import _LEN, Channel


class _Outbox:
    """Events on their way to the parent. Those the runner's loop thread produces are held until its
    unit of work ends (Runner.after_unit) and go as one ``("evs", [(rid, event), …])`` message: one
    pickle, one write and one wake-up of the server per step instead of one per stream. Events from
    any other thread (a submit that failed, a cancel) go at once."""

    def __init__(self, chan: Channel):
        self.chan = chan
        self.loop_thread: int | None = None
        self._held: list[tuple[int, Event]] = []

    def put(self, rid: int, ev: Event) -> None:
        if threading.get_ident() == self.loop_thread:
            self._held.append((rid, ev))
        else:
            self.chan.send(("evs", [(rid, ev)]))

    def flush(self) -> None:
        if self._held:
            held, self._held = self._held, []
            self.chan.send(("evs", held))


class _ForwardStream(Stream):
    """Events go to the parent through the outbox."""

    def __init__(self, request_id: int, outbox: _Outbox, live: dict):
        super().__init__(request_id)
        self._outbox = outbox
        self._live = live

    def put(self, ev: Event) -> None:
        if isinstance(ev, (DoneEvent, ErrorEvent)):
            self._live.pop(self.id, None)
        self._outbox.put(self.id, ev)


def serve(chan: Channel) -> None:
    msg = chan.recv()
    if msg is None or msg[0] != "start":
        return
    runner = Runner(msg[1])
    beat = msg[2] if len(msg) > 2 else 0.0
    stop = threading.Event()
    if beat > 0:
        threading.Thread(target=_heartbeat, args=(chan, runner, beat, stop), daemon=True,
                         name="runner-heartbeat").start()
    fault = _claim_fault()
    try:
        if fault and fault[0] == "load":
            _inject(fault[-1], chan)
        runner.start()
    except BaseException as e:
        chan.send(("start_error", e))
        stop.set()
        return
    if fault and fault[0] == "step":
        at = int(fault[1])
        runner.on_step = lambda n: _inject(fault[-1], chan) if n == at else None
    outbox = _Outbox(chan)
    outbox.loop_thread = runner.loop_thread
    runner.after_unit = outbox.flush
    chan.send(("started", runner.info, runner.load_duration))
    try:
        _serve_requests(chan, runner, outbox)
    finally:
        stop.set()


def _serve_requests(chan: Channel, runner: Runner, outbox: _Outbox) -> None:
    streams: dict[int, Stream] = {}
    try:
        while True:
            msg = chan.recv()
            if msg is None or msg[0] == "close":
                break
            kind, rid = msg[0], msg[1]
            try:
                if kind == "submit":
                    fwd = streams[rid] = _ForwardStream(rid, outbox, streams)
                    try:
                        runner.submit(msg[2], fwd)
                    except BaseException:
                        streams.pop(rid, None)
                        raise
                    chan.send(("result", rid, None))
                elif kind == "cancel":
                    s = streams.pop(rid, None)
                    if s is not None:
                        s.cancel()
                elif kind == "embed":
                    # blocking: answer from a thread so the message loop keeps serving
                    threading.Thread(target=_embed, args=(chan, runner, rid, *msg[2:]), daemon=True).start()
                elif kind == "tokenize":
                    chan.send(("result", rid, runner.tokenize(*msg[2])))
                elif kind == "detokenize":
                    chan.send(("result", rid, runner.detokenize(msg[2])))
                elif kind == "info":
                    chan.send(("result", rid, runner.info))
                elif kind == "stats":
                    chan.send(("result", rid, runner.stats()))
            except BaseException as e:
                chan.send(("error", rid, e))
    finally:
        runner.close()


def _embed(chan: Channel, runner: Runner, rid: int, inputs, truncate, normalize) -> None:
    try:
        result = runner.embed(inputs, truncate, normalize)
    except BaseException as e:
        _send_quiet(chan, ("error", rid, e))
        return
    try:
        _send_quiet(chan, ("result", rid, result))
    except RequestTooLarge as e:          # refused whole before sending: the caller must still hear
        _send_quiet(chan, ("error", rid, e))


def _heartbeat(chan: Channel, runner: Runner, every: float, stop: threading.Event) -> None:
    """Beats until the runner is closed. A loop thread that died of a native failure leaves a child that
    would refuse every request while looking alive: report it and exit, so the server loads a fresh one."""
    while not stop.wait(every):
        if runner.failure is not None:
            _send_quiet(chan, ("fatal", f"the runner's loop failed: {runner.failure!r}"))
            os._exit(3)
        _send_quiet(chan, ("beat", runner.progress, runner.working))


def _claim_fault() -> list[str] | None:
    path = os.environ.get("PYOLLAMA_RUNNER_FAULT")
    if not path:
        return None
    mine = f"{path}.{os.getpid()}"
    try:
        os.rename(path, mine)
    except OSError:
        return None                 # none set up, or another child took it
    with open(mine) as f:
        words = f.read().split()
    os.unlink(mine)
    return words or None


def _inject(action: str, chan: Channel) -> None:
    if action == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif action == "abort":
        os.abort()
    elif action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "stop":
        os.kill(os.getpid(), signal.SIGSTOP)
    elif action == "hang":
        threading.Event().wait()
    elif action == "raise":
        raise RuntimeError("injected fault")
    elif action == "garbage":
        with chan._send_lock:
            chan.sock.sendall(_LEN.pack(12) + b"not a pickle")


def _send_quiet(chan: Channel, msg) -> None:
    try:
        chan.send(msg)
    except OSError:
        pass             # the server is gone; the message loop sees EOF and ends


def main() -> int:
    sock = socket.socket(fileno=int(sys.argv[1]))
    chan = Channel(sock)
    try:
        serve(chan)
    except (BrokenPipeError, ConnectionResetError):
        pass             # the server went away (e.g. it shut down during our load): nothing to report to
    finally:
        chan.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
