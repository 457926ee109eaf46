"""The runner child process: `python -m pyollama.runner.child FD` serves one Runner over the
socket FD (see process.py for the messages)."""
from __future__ import annotations

import socket
import sys
import threading

from pyollama.runner.runner import Runner
from pyollama.runner.types import DoneEvent, ErrorEvent, Event, Stream
from pyollama.runner.wire import Channel


class _ForwardStream(Stream):
    """Events go straight to the parent from the runner's loop thread."""

    def __init__(self, request_id: int, chan: Channel, live: dict):
        super().__init__(request_id)
        self._chan = chan
        self._live = live

    def put(self, ev: Event) -> None:
        if isinstance(ev, (DoneEvent, ErrorEvent)):
            self._live.pop(self.id, None)
        self._chan.send(("ev", self.id, ev))


def serve(chan: Channel) -> None:
    msg = chan.recv()
    if msg is None or msg[0] != "start":
        return
    runner = Runner(msg[1])
    try:
        runner.start()
    except BaseException as e:
        chan.send(("start_error", e))
        return
    chan.send(("started", runner.info, runner.load_duration))
    streams: dict[int, Stream] = {}
    try:
        while True:
            msg = chan.recv()
            if msg is None or msg[0] == "close":
                break
            kind, rid = msg[0], msg[1]
            try:
                if kind == "submit":
                    fwd = streams[rid] = _ForwardStream(rid, chan, streams)
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
    _send_quiet(chan, ("result", rid, result))


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
