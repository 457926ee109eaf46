"""A stored model, resolved: its manifest, config and the contents of its small layers.

This is what the server reads to run a model (weights path, adapters, projector, template, system,
params, messages) and what ``show``/``list`` format.

The template a model renders with and its capabilities are decided here (``effective_template``,
``capabilities``), for show, create and the server alike.

Thread-safety: a ModelRecord is a snapshot, never changed once loaded (the server shares one between
requests while its manifest file is unchanged).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyollama.errors import TemplateError
from pyollama.store import gguf_meta
from pyollama.store import manifest as mf
from pyollama.store.names import ModelName
from pyollama.store.store import Store
from pyollama.templates.render import DEFAULT_TEMPLATE

log = logging.getLogger("pyollama.store")


@dataclass
class ModelRecord:
    store: Store
    name: ModelName                 # the stored casing
    manifest: mf.Manifest
    config: dict[str, Any]
    modified_ns: int                # manifest file mtime
    model_path: Path | None = None
    parent_model: str = ""
    adapter_paths: list[Path] = field(default_factory=list)
    projector_paths: list[Path] = field(default_factory=list)
    draft_path: Path | None = None
    template: str | None = None     # the template layer (a Go template), if any
    system: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    licenses: list[str] = field(default_factory=list)

    @property
    def digest(self) -> str:
        return self.manifest.digest

    @property
    def size(self) -> int:
        return self.manifest.size

    def gguf(self, *, max_array: int | None = 5, tensors: bool = True) -> gguf_meta.GGUFInfo | None:
        if self.model_path is None:
            return None
        return gguf_meta.read(self.model_path, max_array=max_array, tensors=tensors)

    def effective_template(self, info: gguf_meta.GGUFInfo | None = None) -> tuple[str, bool]:
        """``(template, is_jinja)``: the template layer, else the GGUF's own chat template (Jinja, which the
        server renders natively), else Ollama's default ``{{ .Prompt }}``."""
        if self.template is not None:
            return self.template, False
        if info is None and self.model_path is not None:
            info = self.gguf(max_array=0, tensors=False)
        if info is not None and info.chat_template:
            return info.chat_template, True
        return DEFAULT_TEMPLATE, False

    def capabilities(self, info: gguf_meta.GGUFInfo | None = None) -> list[str]:
        if info is None and self.model_path is not None:
            info = self.gguf(max_array=0, tensors=False)
        template, is_jinja = self.effective_template(info)
        caps = derive_capabilities(info, template, is_jinja=is_jinja, projector=bool(self.projector_paths))
        if not caps and self.config.get("capabilities"):
            caps = list(self.config["capabilities"])
        return caps


def derive_capabilities(info: gguf_meta.GGUFInfo | None, template: str | None, *, is_jinja: bool,
                        projector: bool) -> list[str]:
    """Ollama's ``capabilities`` list (docs/contract.md §2.6) for a model GGUF header, its template (a Go
    TEMPLATE, or the GGUF's Jinja chat template when ``is_jinja``) and whether it has a projector.

    The template engine decides (``pyollama.templates.model_capabilities``), so show, create and the
    server's checks agree. Without a model GGUF there is no completion/embedding entry, only what the
    template gives, as in Ollama. A TEMPLATE that does not parse gives no template capabilities: create
    does not reject it today, and show must not fail on a model that is already stored."""
    # Imported here: the template engine (and jinja2) loads only when capabilities are needed, not for
    # every user of the store (the CLI, registry pulls).
    from pyollama.templates import model_capabilities

    embedding = info is not None and info.is_embedding
    rerank = info is not None and info.is_reranker
    vision = info is not None and info.has_vision
    try:
        caps = model_capabilities(None if is_jinja else template, jinja_template=template if is_jinja else None,
                                  embedding=embedding, gguf_vision=vision, projector=projector, rerank=rerank)
    except TemplateError as e:
        log.warning("template does not parse, so it gives no capabilities: %s", e)
        caps = model_capabilities(None, embedding=embedding, gguf_vision=vision, projector=projector,
                                  rerank=rerank)
    # model_capabilities always starts with completion, embedding or rerank, which only a model GGUF can say.
    return caps if info is not None else caps[1:]


def _read_json(store: Store, digest: str, default: Any) -> Any:
    try:
        return json.loads(store.blobs.read_bytes(digest))
    except (OSError, ValueError) as e:
        log.warning("unreadable layer %s: %s", digest, e)
        return default


def load(store: Store, name: str | ModelName) -> ModelRecord:
    """Resolve ``name`` and read its manifest, config and small layers. Raises ModelNotFound."""
    stored = store.resolve(name)
    path = store.manifests.path(stored)
    m = mf.Manifest.parse(path.read_bytes())
    config = _read_json(store, m.config.digest, {}) if m.config.digest else {}
    rec = ModelRecord(store, stored, m, config if isinstance(config, dict) else {}, path.stat().st_mtime_ns)
    for layer in m.layers:
        blob = store.blobs.path(layer.digest)
        t = layer.media_type
        if t == mf.MEDIA_MODEL:
            if rec.model_path is None:
                rec.model_path = blob
                rec.parent_model = layer.from_
            else:                        # a second model GGUF is a projector in old manifests
                rec.projector_paths.append(blob)
        elif t == mf.MEDIA_ADAPTER:
            rec.adapter_paths.append(blob)
        elif t == mf.MEDIA_PROJECTOR:
            rec.projector_paths.append(blob)
        elif t == mf.MEDIA_DRAFT:
            rec.draft_path = blob
        elif t in (mf.MEDIA_TEMPLATE, mf.MEDIA_PROMPT):
            rec.template = store.blobs.read_bytes(layer.digest).decode("utf-8", errors="replace")
        elif t == mf.MEDIA_SYSTEM:
            rec.system = store.blobs.read_bytes(layer.digest).decode("utf-8", errors="replace")
        elif t == mf.MEDIA_PARAMS:
            p = _read_json(store, layer.digest, {})
            rec.params = p if isinstance(p, dict) else {}
        elif t == mf.MEDIA_MESSAGES:
            msgs = _read_json(store, layer.digest, [])
            rec.messages = msgs if isinstance(msgs, list) else []
        elif t == mf.MEDIA_LICENSE:
            rec.licenses.append(store.blobs.read_bytes(layer.digest).decode("utf-8", errors="replace"))
        elif t == mf.MEDIA_EMBED:
            log.info("%s has an obsolete embed layer; ignored", stored.display())
    return rec
