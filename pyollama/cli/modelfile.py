"""``pyollama create -f Modelfile``: read the Modelfile on the client, send its files as blobs, and turn
it into an ``/api/create`` body (as Ollama's CLI does since the server stopped reading Modelfiles).

A ``FROM`` that names an existing file or folder (relative to the Modelfile, ``~`` expanded) is uploaded:
a GGUF as one blob; a safetensors folder as its weights, JSON configs and tokenizer files, each under its
name relative to the folder (the server converts them). Anything else after ``FROM`` is a model name.
``ADAPTER`` and ``DRAFT`` files are uploaded the same way. Parsing and validation are the store's own
(:mod:`pyollama.store.modelfile`, :class:`~pyollama.store.CreateRequest`), so a bad Modelfile fails here
with Ollama's ``(line N): ...`` message before anything is sent.

Thread-safety: plain functions, run on the CLI's thread.
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

from pyollama.cli.client import Client, Progress
from pyollama.errors import ClientError

# Files of a Hugging Face folder that conversion reads: weights, configs and tokenizers, and the JSON of
# sentence-transformers module folders (``1_Pooling/config.json`` says how an embedding model pools).
_FOLDER_PATTERNS = ("*.safetensors", "*.json", "tokenizer.model", "*.tiktoken", "merges.txt", "vocab.txt",
                    "[!.]*/*.json")


def folder_files(folder: Path) -> list[Path]:
    found: dict[Path, None] = {}
    for pattern in _FOLDER_PATTERNS:
        for p in sorted(folder.glob(pattern)):
            if p.is_file():
                found[p] = None
    if not any(p.suffix == ".safetensors" for p in found):
        raise ClientError(f"no safetensors or GGUF files found in {folder}")
    return list(found)


def _upload_source(client: Client, path: Path, show: Progress) -> dict[str, str]:
    """``{file name: digest}`` for a GGUF file or a safetensors folder."""
    if path.is_dir():
        return {str(p.relative_to(path)): client.upload_blob(p, show) for p in folder_files(path)}
    name = path.name if path.name.endswith((".gguf", ".bin")) else path.name + ".gguf"
    return {name: client.upload_blob(path, show)}


def read_modelfile(name: str, modelfile: Path, *, quantize: str, draft_quantize: str = "") -> Any:
    """Parse and check ``modelfile`` (a :class:`~pyollama.store.CreateRequest` with local paths)."""
    from pyollama.store import CreateRequest

    try:
        text = modelfile.read_bytes()
    except FileNotFoundError:
        raise ClientError(f"no Modelfile at {modelfile} (give one with -f)") from None
    except OSError as e:
        raise ClientError(f"cannot read {modelfile}: {e.strerror or e}") from None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            req = CreateRequest.from_modelfile(name, text, base_dir=modelfile.parent, quantize=quantize,
                                               draft_quantize=draft_quantize)
    except ValueError as e:          # ModelfileError, CreateError, InvalidModelName, OptionError
        raise ClientError(str(e), 400) from None
    for w in caught:                 # e.g. a removed legacy PARAMETER: accepted, ignored, said once
        print(f"Warning: {w.message}", file=sys.stderr)
    return req


def create_body(client: Client, req: Any, *, show: Progress) -> dict[str, Any]:
    """Upload what a parsed Modelfile points at; return the ``/api/create`` request body."""
    body: dict[str, Any] = {"model": req.model, "stream": True}
    if req.from_:
        body["from"] = req.from_
    files: dict[str, str] = {}
    if req.from_path is not None:
        files.update(_upload_source(client, req.from_path, show))
    for extra in req.extra_paths:                      # further FROM files: projectors
        files.update(_upload_source(client, extra, show))
    if files:
        body["files"] = files
    if req.adapter_paths:
        adapters: dict[str, str] = {}
        for p in req.adapter_paths:
            adapters.update(_upload_source(client, p, show))
        body["adapters"] = adapters
    if req.draft_path is not None:
        body["draft_files"] = _upload_source(client, req.draft_path, show)
    for key in ("template", "system", "renderer", "parser", "requires", "quantize", "draft_quantize"):
        value = getattr(req, key)
        if value:
            body[key] = value
    if req.license:
        body["license"] = list(req.license)
    if req.parameters:
        body["parameters"] = dict(req.parameters)
    if req.messages:
        body["messages"] = list(req.messages)
    return body
