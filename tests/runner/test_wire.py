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
