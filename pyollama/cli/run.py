"""``pyollama run MODEL [PROMPT...]``: one answer, an embedding, or the interactive session.

* The model is looked up with ``/api/show``; a model the server does not have is pulled first (with
  progress), as Ollama does.
* ``PROMPT`` words are joined with spaces; text piped on stdin comes first (Ollama's order), so
  ``cat notes.txt | pyollama run m "Summarize:"`` works. With neither, and stdin a terminal, the REPL
  starts.
* Embedding models print the vector as a JSON array (``--dimensions``, ``--truncate``).
* ``MODEL`` may be a GGUF file (``run ./model.gguf``, Ollama #7254): see :class:`FileModel`.

Thread-safety: called once from ``main``.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from pyollama.cli.client import Client
from pyollama.cli.images import ImageError, extract
from pyollama.cli.models import connect, pull_model
from pyollama.cli.progress import is_terminal, progress_for
from pyollama.cli.session import RunOptions, generate_once, load_model
from pyollama.errors import ClientError
from pyollama.golang.time import parse_duration

GGUF_MAGIC = b"GGUF"


# --- run ./model.gguf ----------------------------------------------------------------------------
def looks_like_path(arg: str) -> bool:
    """A path, not a model name: written as one (``./x``, ``/x``, ``~/x``), or naming a GGUF file here
    (a file that is not GGUF does not shadow a model of the same name)."""
    if arg.startswith(("./", "../", "/", "~", ".\\")):
        return True
    try:
        with open(arg, "rb") as f:
            return f.read(4) == GGUF_MAGIC
    except OSError:
        return False


class FileModel:
    """A GGUF file run in place, without ``create`` first (Ollama #7254).

    The file goes through the ordinary API: it is hashed, sent as a blob unless the server already has
    that digest (``HEAD /api/blobs``), and a model is created from it under a name made of the file's
    name, its digest and this process id (``file/<stem>:<12 hex>-<pid>``). When the run ends the model is
    deleted again, so nothing stays in ``pyollama list`` and the store keeps the blob only if another
    model uses it.

    Why this and not a server route that opens the path: the server may be on another machine (a
    remote ``OLLAMA_HOST``) and cannot see the client's files, and a route that reads any path the
    client names would let anything that can reach the API (a web page, through CORS) read the
    server's files. The content address makes repeated runs of an unchanged file skip the upload
    while another model still holds it, and a changed file can never be mistaken for the old one. The
    cost is one copy into the store while the run lasts.
    """

    def __init__(self, client: Client, path: Path):
        self.client = client
        self.path = path
        self.name = ""

    @staticmethod
    def check(arg: str) -> Path:
        path = Path(arg).expanduser()
        if not path.exists():
            raise ClientError(f"{arg}: no such file")
        if not path.is_file():
            raise ClientError(f"{arg}: not a GGUF file (a folder; import it with `pyollama create`)")
        with open(path, "rb") as f:
            if f.read(4) != GGUF_MAGIC:
                raise ClientError(f"{arg}: not a GGUF file")
        return path.resolve()

    def create(self) -> str:
        stem = re.sub(r"[^a-z0-9_.-]+", "-", self.path.stem.lower()).strip("-.") or "model"
        with progress_for(sys.stderr, transient=True) as show:
            digest = self.client.upload_blob(self.path, show)
            self.name = f"file/{stem[:60]}:{digest[7:19]}-{os.getpid()}"
            key = self.path.name if self.path.name.endswith((".gguf", ".bin")) else self.path.name + ".gguf"
            for event in self.client.stream("/api/create", {"model": self.name, "files": {key: digest},
                                                            "stream": True}):
                show(event)
        return self.name

    def remove(self) -> None:
        if self.name:
            try:
                self.client.delete("/api/delete", {"model": self.name})
            except ClientError:
                pass            # the server went away: nothing more to clean up from here


# --- flags ---------------------------------------------------------------------------------------
def parse_think(value: str | None) -> bool | str | None:
    if value is not None and value.strip().lower() in ("low", "medium", "high", "max"):
        return value.strip().lower()
    return parse_bool_flag(value, "think", "true, false, low, medium, high or max")


def parse_format(value: str | None) -> str | dict[str, Any] | None:
    """``json``, or a JSON schema given inline (``--format '{"type":"object",...}'``)."""
    if not value:
        return None
    if value.lstrip().startswith("{"):
        try:
            return json.loads(value)
        except ValueError as e:
            raise ClientError(f"invalid --format schema: {e}") from None
    return value


def parse_keepalive(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        parse_duration(value)
    except ValueError as e:
        raise ClientError(str(e)) from None
    return value


def parse_bool_flag(value: str | None, name: str, accepted: str = "") -> bool | None:
    if value is None:
        return None
    v = value.strip().lower()
    if v in ("true", "1", "yes", "on", ""):
        return True
    if v in ("false", "0", "no", "off"):
        return False
    raise ClientError(f"invalid value for --{name}: {value!r}" + (f" ({accepted})" if accepted else ""))


# --- the command ---------------------------------------------------------------------------------
def show_or_pull(client: Client, name: str, insecure: bool) -> dict[str, Any]:
    try:
        return client.post("/api/show", {"model": name})
    except ClientError as e:
        if e.status != 404:
            raise
    pull_model(client, name, insecure=insecure)
    return client.post("/api/show", {"model": name})



def cmd_run(args: argparse.Namespace) -> int:
    think = parse_think(args.think)
    opts = RunOptions(model=args.model, verbose=args.verbose, format=parse_format(args.format), think=think,
                      hide_thinking=args.hidethinking, keep_alive=parse_keepalive(args.keepalive),
                      insecure=args.insecure,
                      wordwrap=not args.nowordwrap and is_terminal(sys.stdout))
    truncate = parse_bool_flag(args.truncate, "truncate")
    parts = list(args.prompt)
    interactive = not parts
    if not is_terminal(sys.stdin):
        piped = sys.stdin.read()
        if piped:
            parts.insert(0, piped)
        interactive = False
        opts.wordwrap = False
    prompt = " ".join(parts)
    # Thinking is shown on a terminal; piped, only when asked for with --think (as Ollama).
    show_thinking = not opts.hide_thinking and (is_terminal(sys.stdout) or think not in (None, False))

    file_model: FileModel | None = None
    if looks_like_path(args.model):
        path = FileModel.check(args.model)
        client = connect()
        file_model = FileModel(client, path)
    else:
        client = connect()
    try:
        if file_model is not None:
            opts.model = file_model.create()
        info = show_or_pull(client, opts.model, opts.insecure)
        caps = info.get("capabilities") or []
        if "embedding" in caps and "completion" not in caps:
            if interactive:
                raise ClientError('embedding models require input text. Usage: pyollama run MODEL "your text"')
            return _embed(client, opts, prompt, truncate, args.dimensions)
        if interactive:
            from pyollama.cli.repl import Repl

            load_model(client, opts)
            return Repl(client, opts, info, show_thinking=show_thinking).run()
        images: list[str] = []
        if "vision" in caps:                 # image paths in the prompt are read and sent, as Ollama's
            try:
                prompt, data = extract(prompt)
            except ImageError as e:
                raise ClientError(f"Couldn't process image: {e}") from None
            images = [base64.b64encode(d).decode() for d in data]
        result = generate_once(client, opts, prompt, show_thinking=show_thinking, images=images)
        if result.interrupted:
            return 130
        if is_terminal(sys.stdout) and result.content:
            print()
        return 0
    finally:
        if file_model is not None:
            file_model.remove()
        client.close()


def _embed(client: Client, opts: RunOptions, prompt: str, truncate: bool | None, dimensions: int | None) -> int:
    body: dict[str, Any] = {"model": opts.model, "input": prompt}
    if truncate is not None:
        body["truncate"] = truncate
    if dimensions:
        body["dimensions"] = dimensions
    if opts.keep_alive is not None:
        body["keep_alive"] = opts.keep_alive
    resp = client.post("/api/embed", body)
    vectors = resp.get("embeddings") or []
    print(json.dumps(vectors[0] if vectors else []))
    return 0
