"""Length-prefixed pickle messages over a socket between the server and a runner child.

Both ends are this package, started by the server itself, so pickle is safe here; the socket is a
private socketpair, never a listening port.
"""
from __future__ import annotations

import pickle
import socket
import struct
import threading

_LEN = struct.Struct("!I")


class Channel:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self._send_lock = threading.Lock()
        self._rfile = sock.makefile("rb", buffering=1 << 16)

    def send(self, msg) -> None:
        data = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)
        with self._send_lock:
            self.sock.sendall(_LEN.pack(len(data)) + data)

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
