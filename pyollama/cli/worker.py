"""``pyollama worker``: serve this machine's devices to a pyollama (or llama.cpp) head over ggml RPC.

The head lists workers in ``PYOLLAMA_RPC_SERVERS=host:port,…`` and places model layers on them as on
GPUs. The worker is upstream's own server (``ggml_backend_rpc_start_server`` from the pinned tree, the
same one ``rpc-server`` runs), reached through the extension; it serves one head at a time.

ggml's RPC protocol has no authentication and no encryption, and a worker computes whatever graph it
is sent: it binds to 127.0.0.1 unless told otherwise, and says so loudly when it is.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
from pathlib import Path

from pyollama.config import is_loopback
from pyollama.errors import ClientError

DEFAULT_HOST = "127.0.0.1"

WARNING = """\
WARNING: this worker listens on {host}:{port}, beyond this machine. ggml's RPC protocol has no
authentication and no encryption, and the worker runs whatever computation a client sends it: anyone
who can reach this port can use its devices and read or overwrite their memory. Keep it on a network
only you can reach, or bind to 127.0.0.1 and tunnel from the head, e.g.
    ssh -N -L {port}:127.0.0.1:{port} THIS-HOST      (on the head; then PYOLLAMA_RPC_SERVERS=127.0.0.1:{port})
"""


def add_parser(add) -> None:
    w = add("worker", cmd_worker, "Serve this machine's devices to a pyollama server over ggml RPC",
            env=None)
    w.add_argument("--host", default=DEFAULT_HOST,
                   help=f"address to listen on (default {DEFAULT_HOST}: this machine only; see the warning "
                        "printed for any other)")
    w.add_argument("-p", "--port", type=int, default=None, help="port (default 50052)")
    w.add_argument("-t", "--threads", type=int, default=0,
                   help="threads for the CPU device (default: the cores this process may use)")
    w.add_argument("-d", "--device", action="append", default=[], metavar="NAME",
                   help="a device to serve (repeat or comma-separate; default: every GPU, else the CPU)")
    w.add_argument("-c", "--cache", nargs="?", const="", default=None, metavar="DIR",
                   help="keep tensors the head sent in DIR (default ~/.cache/pyollama/rpc) so a reload sends "
                        "only their hashes")


def _devices(wanted: list[str]) -> list[str]:
    from pyollama import _native

    devs = _native.devices()           # a worker registers no RPC devices of its own
    names = [n.strip() for w in wanted for n in w.split(",") if n.strip()]
    if names:
        known = {d["name"].lower(): d["name"] for d in devs}
        missing = [n for n in names if n.lower() not in known]
        if missing:
            raise ClientError(f"unknown device {', '.join(missing)}; this machine has "
                              f"{', '.join(d['name'] for d in devs)}")
        return [known[n.lower()] for n in names]
    gpus = [d["name"] for d in devs if d["type"] not in ("cpu", "accel")]
    return gpus or [d["name"] for d in devs if d["type"] == "cpu"][:1]


def _check_bind(host: str, port: int) -> None:
    """Upstream's server only prints that it could not bind; say why here, before it starts."""
    try:
        infos = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise ClientError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(infos[0][4])
    except OSError as e:
        raise ClientError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    finally:
        s.close()


def cmd_worker(args: argparse.Namespace) -> int:
    from pyollama import _native, rpc
    from pyollama.engine.llm import default_threads

    port = rpc.DEFAULT_PORT if args.port is None else args.port
    if not 0 < port < 65536:
        raise ClientError(f"--port must be from 1 to 65535, not {port}")
    if args.threads < 0:
        raise ClientError(f"--threads must be positive, not {args.threads}")
    if ":" in args.host:
        raise ClientError("ggml's RPC server takes an IPv4 address or a host name, not an IPv6 address")
    devices = _devices(args.device)
    if not devices:
        raise ClientError("this machine has no device to serve")
    cache = None
    if args.cache is not None:
        cache = Path(args.cache).expanduser() if args.cache else Path.home() / ".cache" / "pyollama" / "rpc"
        try:
            cache.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ClientError(f"cannot create the tensor cache {cache}: {e.strerror or e}") from None
    _check_bind(args.host, port)
    if not is_loopback(args.host):
        print(WARNING.format(host=args.host, port=port), file=sys.stderr, flush=True)
    threads = args.threads or default_threads()
    print(f"pyollama worker: serving {', '.join(devices)} on {args.host}:{port} "
          f"(ggml RPC {'.'.join(map(str, _native.RPC_PROTOCOL))}, {threads} threads"
          + (f", tensor cache {cache}" if cache else "") + ")", flush=True)

    failed: list[BaseException] = []

    def serve() -> None:
        try:
            _native.rpc_serve(f"{args.host}:{port}", devices, threads, str(cache) if cache else None)
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            failed.append(e)

    t = threading.Thread(target=serve, name="rpc-worker", daemon=True)
    t.start()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.is_set() and t.is_alive():
        stop.wait(0.5)
    if t.is_alive():
        # Upstream's server has no way to stop but ending the process (a head it serves sees the
        # connection close and fails the requests on that model).
        print("pyollama worker: stopped", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(0)
    raise ClientError(f"the RPC server stopped: {failed[0] if failed else 'see its message above'}")
