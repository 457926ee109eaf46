"""Remote devices over ggml's RPC protocol: the workers a server may place layers on.

A worker (``pyollama worker``, or upstream's ``rpc-server`` from the same pin) serves its machine's
devices to one client at a time. Upstream's client aborts the whole process when a worker cannot be
reached, hangs when one accepts and never answers, and aborts on a protocol mismatch, so nothing
native touches a worker before :func:`probe` has talked to it here, with a timeout: the HELLO
handshake (version check), the device count and each device's memory, as ggml's client asks them.

* :func:`parse_endpoints` — ``PYOLLAMA_RPC_SERVERS`` (``host:port,…``) checked;
* :func:`probe` — one worker's version and devices, or :class:`WorkerUnavailable` saying why;
* :class:`Pool` — the configured workers as the scheduler sees them: those a loaded runner holds
  (a worker serves one client) are not probed and not offered to another runner;
* :func:`label` — the device name the scheduler and ``/api/ps`` use (``RPC[host:port]``); a runner maps
  it to the name libggml gave the device in its own process (``RPC0``…).

Thread-safety: :func:`probe` from any thread; a Pool's methods from any thread.
"""
from __future__ import annotations

import concurrent.futures
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pyollama.errors import WorkerUnavailable

log = logging.getLogger("pyollama.rpc")

# Commands and message layouts of ggml-rpc.cpp at the pin (protocol 7.x): a request is the command
# byte, a little-endian u64 size and the payload; a reply is a u64 size and the payload.
CMD_GET_DEVICE_MEMORY = 11
CMD_HELLO = 14
CMD_DEVICE_COUNT = 15
CONN_CAPS = 24             # bytes of transport capabilities in HELLO (all zero: plain TCP)
PROTOCOL_MAJOR = 7         # the pin's RPC_PROTO_MAJOR_VERSION (checked against _native in tests)
PROTOCOL_MINOR = 0
PROBE_TIMEOUT = 3.0        # seconds a worker may take to accept and answer the handshake
RETRY_AFTER = 15.0         # seconds a worker that could not be used is left out before it is asked again
DEFAULT_PORT = 50052       # upstream rpc-server's default


@dataclass(frozen=True)
class Device:
    index: int             # the device's index on its worker
    free: int
    total: int


@dataclass(frozen=True)
class Worker:
    endpoint: str
    version: tuple[int, int, int]
    devices: tuple[Device, ...]


def label(endpoint: str, index: int = 0) -> str:
    """The name of a worker's device outside the runner: ``RPC[host:port]`` (``#i`` from its second)."""
    return f"RPC[{endpoint}]" + (f"#{index}" if index else "")


def endpoint_of(name: str) -> str | None:
    """The endpoint in a :func:`label`, or None for any other device name."""
    if not (name.startswith("RPC[") and "]" in name):
        return None
    return name[4:name.index("]")]


def parse_endpoint(text: str) -> str:
    """``host:port`` as ggml's client splits it (at the first colon: no IPv6 literals)."""
    t = text.strip()
    host, sep, port = t.partition(":")
    if not sep or not host or not port:
        raise ValueError(f"RPC worker {text!r} is not host:port (e.g. 192.168.1.20:{DEFAULT_PORT})")
    if ":" in port:
        raise ValueError(f"RPC worker {text!r}: IPv6 addresses are not supported by ggml's RPC client; "
                         "use an IPv4 address or a host name")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"RPC worker {text!r}: port must be a number from 1 to 65535")
    return f"{host}:{int(port)}"


def parse_endpoints(text: str) -> tuple[str, ...]:
    """``PYOLLAMA_RPC_SERVERS``: comma-separated ``host:port``, duplicates dropped, order kept."""
    out: list[str] = []
    for part in (text or "").split(","):
        if part.strip():
            ep = parse_endpoint(part)
            if ep not in out:
                out.append(ep)
    return tuple(out)


class _Conn:
    def __init__(self, endpoint: str, timeout: float):
        self.endpoint = endpoint
        host, _, port = endpoint.partition(":")
        try:
            self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        except socket.timeout:
            raise WorkerUnavailable(endpoint, f"no connection within {timeout:g} s") from None
        except OSError as e:
            raise WorkerUnavailable(endpoint, e.strerror or str(e)) from None
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def call(self, cmd: int, payload: bytes, reply: int) -> bytes:
        try:
            self.sock.sendall(struct.pack("<BQ", cmd, len(payload)) + payload)
            (n,) = struct.unpack("<Q", self._recv(8))
            if n != reply:
                raise WorkerUnavailable(self.endpoint, f"answered command {cmd} with {n} bytes, not {reply} "
                                                       "(not a ggml RPC worker of this protocol?)")
            return self._recv(n)
        except socket.timeout:
            raise WorkerUnavailable(self.endpoint, "accepted the connection but did not answer "
                                                   "(busy serving another client, or hung)") from None
        except OSError as e:
            raise WorkerUnavailable(self.endpoint, e.strerror or str(e)) from None

    def _recv(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise WorkerUnavailable(self.endpoint, "closed the connection (not a ggml RPC worker, or "
                                                       "one of another protocol version?)")
            buf += chunk
        return bytes(buf)

    def close(self) -> None:
        self.sock.close()


def probe(endpoint: str, timeout: float = PROBE_TIMEOUT) -> Worker:
    """Handshake with the worker at ``endpoint`` and read its devices' memory, each step bounded by
    ``timeout``. Raises WorkerUnavailable naming the worker and the reason."""
    conn = _Conn(endpoint, timeout)
    try:
        rsp = conn.call(CMD_HELLO, bytes(CONN_CAPS), 4 + CONN_CAPS)
        version = (rsp[0], rsp[1], rsp[2])
        if version[0] != PROTOCOL_MAJOR or version[1] > PROTOCOL_MINOR:
            raise WorkerUnavailable(endpoint, f"speaks RPC protocol {'.'.join(map(str, version))}; this build "
                                              f"speaks {PROTOCOL_MAJOR}.{PROTOCOL_MINOR} (run a worker built "
                                              "from the same llama.cpp)")
        (count,) = struct.unpack("<I", conn.call(CMD_DEVICE_COUNT, b"", 4))
        devices = []
        for i in range(count):
            free, total = struct.unpack("<QQ", conn.call(CMD_GET_DEVICE_MEMORY, struct.pack("<I", i), 16))
            devices.append(Device(i, free, total))
        if not devices:
            raise WorkerUnavailable(endpoint, "serves no devices")
        return Worker(endpoint, version, tuple(devices))
    finally:
        conn.close()


def probe_all(endpoints: Iterable[str], timeout: float = PROBE_TIMEOUT) -> dict[str, Worker | WorkerUnavailable]:
    """:func:`probe` every endpoint at once (a dead worker costs one timeout, not one each)."""
    eps = list(endpoints)
    if not eps:
        return {}

    def one(ep: str) -> Worker | WorkerUnavailable:
        try:
            return probe(ep, timeout)
        except WorkerUnavailable as e:
            return e

    with concurrent.futures.ThreadPoolExecutor(max_workers=min(16, len(eps))) as ex:
        return dict(zip(eps, ex.map(one, eps)))


class Pool:
    """The configured workers. ``held`` says which ones loaded runners use (a worker serves one client
    at a time: probing one of those would wait for the runner to let go). A worker that cannot be
    used is skipped with one warning until it answers again, and not asked again for ``retry_after``
    seconds (a silent one would otherwise cost every load the probe's timeout)."""

    def __init__(self, endpoints: Iterable[str], *, held: Callable[[], Iterable[str]] = lambda: (),
                 timeout: float = PROBE_TIMEOUT, retry_after: float = RETRY_AFTER):
        self.endpoints = tuple(endpoints)
        self.held = held
        self.timeout = timeout
        self.retry_after = retry_after
        self._lock = threading.Lock()
        self._down: dict[str, tuple[str, float]] = {}   # endpoint -> (the reason warned about, when to ask again)

    def available(self) -> list[Worker]:
        """The workers no runner holds that answer now, in configured order."""
        busy = set(self.held())
        now = time.monotonic()
        with self._lock:
            resting = {ep for ep, (_, when) in self._down.items() if when > now}
        results = probe_all([ep for ep in self.endpoints if ep not in busy and ep not in resting], self.timeout)
        out = []
        with self._lock:
            for ep, r in results.items():
                if isinstance(r, WorkerUnavailable):
                    if self._down.get(ep, ("",))[0] != r.reason:
                        log.warning("%s; skipping it (asked again in %g s)", r, self.retry_after)
                    self._down[ep] = (r.reason, time.monotonic() + self.retry_after)
                    continue
                if ep in self._down:
                    log.info("RPC worker %s answers again", ep)
                    del self._down[ep]
                out.append(r)
        return out


def register(endpoints: Iterable[str], timeout: float = PROBE_TIMEOUT) -> dict[str, str]:
    """Make the workers' devices devices of this process (a runner child: upstream aborts the process
    that uses a worker which goes away). Each is probed first; one that cannot be used is skipped with
    a warning. Returns {label: libggml's device name}."""
    from pyollama import _native

    names: dict[str, str] = {}
    for ep, r in probe_all(endpoints, timeout).items():
        if isinstance(r, WorkerUnavailable):
            log.warning("%s; loading without it", r)
            continue
        for i, native in enumerate(_native.rpc_add_server(ep)):
            names[label(ep, i)] = native
        log.info("RPC worker %s: %s", ep, ", ".join(f"{d.total >> 20} MiB ({d.free >> 20} MiB free)"
                                                   for d in r.devices))
    return names


def diagnose(endpoints: Iterable[str], timeout: float = 1.0) -> str:
    """Why a runner that used these workers died: the workers that no longer answer, or ""."""
    gone = [r for r in probe_all(endpoints, timeout).values() if isinstance(r, WorkerUnavailable)]
    return "; ".join(str(r) for r in gone)
