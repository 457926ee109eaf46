"""Network namespaces as hosts: each joined to the root namespace by its own veth pair, the only path
between them (no route anywhere else). Needs root and a kernel that lets it make namespaces."""
from __future__ import annotations

import os
import subprocess


def _ip(*args: str) -> None:
    r = subprocess.run(["ip", *args], capture_output=True, text=True)
    if r.returncode:
        raise OSError(f"ip {' '.join(args)}: {r.stderr.strip() or r.returncode}")


class Host:
    """Namespace ``name`` with address ``addr`` on its end of a veth pair; ``gateway`` is the root's end."""

    def __init__(self, index: int):
        tag = f"{os.getpid() % 100000}{chr(97 + index)}"
        self.name = f"pyollama-rpc-{tag}"
        self.veth = (f"pyo{tag}r", f"pyo{tag}n")          # (root end, namespace end); <= 15 chars
        # 10.213.0.0/16 split in /30s by pid and index, so concurrent runs (CI beside a session) never
        # share a subnet: .1 is the root end, .2 the host
        net = ((os.getpid() % 8000) * 4 + index) * 4
        base = f"10.{213 + net // 65536}.{(net // 256) % 256}.{net % 256}"
        a, b, c, d = map(int, base.split("."))
        self.gateway = f"{a}.{b}.{c}.{d + 1}"
        self.addr = f"{a}.{b}.{c}.{d + 2}"
        self.up = False

    def start(self) -> Host:
        _ip("netns", "add", self.name)
        self.up = True
        root, inner = self.veth
        _ip("link", "add", root, "type", "veth", "peer", "name", inner)
        _ip("link", "set", inner, "netns", self.name)
        _ip("addr", "add", f"{self.gateway}/30", "dev", root)
        _ip("link", "set", root, "up")
        _ip("-n", self.name, "addr", "add", f"{self.addr}/30", "dev", inner)
        _ip("-n", self.name, "link", "set", inner, "up")
        _ip("-n", self.name, "link", "set", "lo", "up")
        return self

    def stop(self) -> None:
        """Delete the namespace (which deletes the veth pair with it); the root end too if still there."""
        if self.up:
            subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
            subprocess.run(["ip", "link", "del", self.veth[0]], capture_output=True)
            self.up = False


def unavailable() -> str | None:
    """Why namespaces cannot be made here (None: they can), found by making and deleting one."""
    h = Host(7)
    try:
        h.start()
    except (OSError, FileNotFoundError) as e:
        return f"cannot make network namespaces here ({e})"
    finally:
        h.stop()
    return None
