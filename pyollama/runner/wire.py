"""Length-prefixed pickle messages over a socket between the server and a runner child.

Both ends are this package, started by the server itself, so pickle is safe here; the socket is a
private socketpair, never a listening port.
"""
from __future__ import annotations

import pickle
import select
import socket
import struct
import threading

from pyollama.errors import RequestTooLarge

_LEN = struct.Struct("!I")
MAX_MESSAGE = (1 << 32) - 1


class Channel:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.max_message = MAX_MESSAGE
        self._send_lock = threading.Lock()
        self._rfile = sock.makefile("rb", buffering=1 << 16)

    def send(self, msg) -> None:
        """Write one message whole. The socket may be non-blocking (an event loop polls the parent's
        end, and uvloop makes polled fds non-blocking): then this waits for room instead of leaving
        half a frame behind, which would desynchronize every later message."""
        data = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)
        if len(data) > self.max_message:        # refused before a byte is written: the channel stays in step
            raise RequestTooLarge(f"a message of {len(data)} bytes is larger than the runner channel carries "
                                  f"({self.max_message} bytes)")
        view = memoryview(_LEN.pack(len(data)) + data)
        with self._send_lock:
            poller = None
            while view:
                try:
                    n = self.sock.send(view)
                except BlockingIOError:
                    if poller is None:
                        poller = select.poll()
                        poller.register(self.sock.fileno(), select.POLLOUT)
                    poller.poll()
                    continue
                view = view[n:]

    def recv(self):
        """The next message, or None when the other end is gone."""
        head = self._rfile.read(_LEN.size)
        if len(head) < _LEN.size:
            return None
        (n,) = _LEN.unpack(head)
        body = self._rfile.read(n)
        if len(body) < n:
            return None
        return pickle.loads(body)

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._rfile.close()
        self.sock.close()
