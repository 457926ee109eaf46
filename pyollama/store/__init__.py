"""Model store: names, blobs, manifests, Modelfiles and create/show/list/copy/delete, in Ollama's layout.

Entry points the server and the registry client use::

    store = Store()                          # PYOLLAMA_MODELS / OLLAMA_MODELS / ~/.pyollama/models
    store.prune()                            # at startup (skipped with PYOLLAMA_NOPRUNE / OLLAMA_NOPRUNE)
    for event in create(store, CreateRequest.from_api(body)): ...
    show(store, "smollm2", verbose=False)    # /api/show
    list_models(store)                       # /api/tags
    store.copy("a", "b"); store.delete("b")  # /api/copy, /api/delete
    load_model(store, "smollm2")             # what the runner needs: weights, adapters, template, params

Modules: ``names`` (model names), ``blobs`` (content-addressed files, partial downloads), ``manifest``
(Docker v2 manifests, Ollama media types), ``store`` (the directory, locking, GC, prune), ``modelfile``
(parse/serialize), ``options`` (the option table), ``request``/``create`` (create), ``show``, ``model``
(a resolved model), ``gguf_meta`` (GGUF headers), ``convert`` (safetensors → GGUF), ``quantize``.
"""
from __future__ import annotations

from pyollama.store.blobs import Blob, BlobNotFound, BlobStore, DigestMismatch, InvalidDigest, PartialBlob
from pyollama.store.create import create, create_from_modelfile, model_path
from pyollama.store.manifest import Layer, Manifest, ManifestStore
from pyollama.store.model import ModelRecord
from pyollama.store.model import load as load_model
from pyollama.store.modelfile import Command, Modelfile, ModelfileWarning, parse, serialize
from pyollama.store.names import ModelName, parse_name
from pyollama.store.request import CreateError, CreateRequest
from pyollama.store.show import list_models, show
from pyollama.store.store import Store, default_root


def copy(store: Store, source: str, destination: str) -> ModelName:
    """``POST /api/copy``."""
    return store.copy(source, destination)


def delete(store: Store, name: str) -> ModelName:
    """``DELETE /api/delete``."""
    return store.delete(name)


__all__ = [
    "Blob", "BlobNotFound", "BlobStore", "Command", "CreateError", "CreateRequest", "DigestMismatch",
    "InvalidDigest", "Layer", "Manifest", "ManifestStore", "ModelName", "ModelRecord", "Modelfile",
    "ModelfileWarning", "PartialBlob", "Store", "copy", "create", "create_from_modelfile", "default_root",
    "delete", "list_models", "load_model", "model_path", "parse", "parse_name", "serialize", "show",
]
