"""The runner channel: whole frames whatever the size, also over a non-blocking socket (uvloop makes
the parent's polled end non-blocking; a partial write used to tear a frame and wedge the runner)."""
from __future__ import annotations

import socket
import threading

from pyollama.runner.wire import Channel


def test_large_messages_cross_a_non_blocking_socket_whole():
    a, b = socket.socketpair()
    a.setblocking(False)                       # as the parent's end is under the event loop
    sender, receiver = Channel(a), Channel(b)
    big = "x" * (8 << 20)                      # far beyond the socket buffer
    got: list = []
    reader = threading.Thread(target=lambda: got.extend(receiver.recv() for _ in range(3)))
    reader.start()
    try:
        sender.send(("submit", 1, big))
        sender.send(("small", 2))
        sender.send(("submit", 3, big + "y"))
        reader.join(30)
        assert not reader.is_alive()
        assert got[0] == ("submit", 1, big) and got[1] == ("small", 2) and got[2][2].endswith("y")
    finally:
        sender.close()
        receiver.close()


def test_concurrent_senders_never_interleave_frames():
    a, b = socket.socketpair()
    a.setblocking(False)
    sender, receiver = Channel(a), Channel(b)
    payload = {i: bytes([i]) * (1 << 20) for i in range(4)}
    got: list = []
    reader = threading.Thread(target=lambda: got.extend(receiver.recv() for _ in range(4 * 5)))
    reader.start()
    threads = [threading.Thread(target=lambda i=i: [sender.send((i, payload[i])) for _ in range(5)])
               for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    reader.join(30)
    try:
        assert len(got) == 20 and all(msg[1] == payload[msg[0]] for msg in got)
    finally:
        sender.close()
        receiver.close()


def test_outbox_holds_the_loop_threads_events_until_the_step_ends():
    from pyollama.runner.child import _Outbox
    from pyollama.runner.types import DoneEvent, TokenEvent

    a, b = socket.socketpair()
    box = _Outbox(Channel(a))
    receiver = Channel(b)
    done = DoneEvent("stop", 1, 0, 2, 0)
    try:
        go = threading.Event()

        def step():                               # the "loop thread": two streams, three events, one flush
            go.wait(10)
            box.put(1, TokenEvent("a", 5))
            box.put(2, TokenEvent("b", 6))
            box.put(1, done)
            box.flush()
            box.flush()                           # nothing held: nothing sent
        t = threading.Thread(target=step)
        box.loop_thread = None
        box.put(3, TokenEvent("now", 7))          # any other thread: sent at once, alone
        t.start()
        box.loop_thread = t.ident
        go.set()
        t.join()
        first, second = receiver.recv(), receiver.recv()
        assert first == ("evs", [(3, TokenEvent("now", 7))])
        assert second[0] == "evs" and [(rid, ev) for rid, ev in second[1]] == [
            (1, TokenEvent("a", 5)), (2, TokenEvent("b", 6)), (1, done)]
        assert not _ready(b)
    finally:
        box.chan.close()
        receiver.close()


def _ready(sock: socket.socket) -> bool:
    import select
    return bool(select.select([sock], [], [], 0.2)[0])
