"""Helpers for the registry tests: quick options, synthetic models, event summaries."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from pyollama.store import Store
from pyollama.store import manifest as mf
from pyollama.store.registry import RegistryOptions


def fast_options(**kw) -> RegistryOptions:
    """Small parts, buffers and waits so a few MiB exercise every code path within seconds."""
    base = {"insecure": True, "backoff": 0.02, "connect_timeout": 3.0, "stall_timeout": 5.0,
            "request_timeout": 10.0, "min_part": 256 << 10, "buffer_size": 64 << 10, "save_interval": 0.05,
            "upload_chunk": 1 << 20, "progress_interval": 0.02, "max_tries": 4}
    base.update(kw)
    return RegistryOptions(**base)


def make_model(store: Store, name: str, *, model: bytes | None = None, model_size: int = 1 << 20,
               system: str | None = None, seed: int = 0, from_: str = "") -> mf.Manifest:
    """A model whose "weights" are random bytes, plus a template (and a system) layer and a config,
    stored under ``name`` with a Go-encoded manifest (the bytes Ollama would write)."""
    weights = model if model is not None else _random(model_size, seed)
    layers = []
    for media, data in ((mf.MEDIA_MODEL, weights),
                        (mf.MEDIA_TEMPLATE, f"{{{{ .Prompt }}}} #{seed}".encode()),
                        *(((mf.MEDIA_SYSTEM, system.encode()),) if system is not None else ())):
        blob = store.blobs.put_bytes(data)
        layers.append(mf.Layer(media, blob.digest, blob.size, from_ if media != mf.MEDIA_SYSTEM else ""))
    cfg = json.dumps({"model_format": "gguf", "model_family": "llama", "seed": seed,
                      "rootfs": {"type": "layers", "diff_ids": [x.digest for x in layers]}}).encode()
    cb = store.blobs.put_bytes(cfg)
    m = mf.Manifest(mf.Layer(mf.CONFIG_MEDIA_TYPE, cb.digest, cb.size), layers)
    store.write_manifest(name, m)
    return store.manifest(name)


def _random(size: int, seed: int) -> bytes:
    # Deterministic and fast: sha256 counter stream would be slow for MiBs; os.urandom is fine and the
    # seed only matters for distinct small layers.
    return os.urandom(size) if size > 64 else hashlib.sha256(str(seed).encode()).digest()[:size]


def statuses(events: list[dict]) -> list[str]:
    """Status strings with repeats collapsed (progress lines of one blob become one entry)."""
    out: list[str] = []
    for e in events:
        if not out or out[-1] != e["status"]:
            out.append(e["status"])
    return out


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path → bytes), lock files excluded."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.name.startswith(".pyollama-store.lock"):
            out[str(p.relative_to(root))] = p.read_bytes()
    return out


def leftovers(store: Store) -> list[str]:
    """Files in blobs/ that are not committed blobs (partials, part states, temp files)."""
    if not store.blobs.dir.is_dir():
        return []
    return sorted(p.name for p in store.blobs.dir.iterdir() if not p.name.startswith("sha256-")
                  or "-partial" in p.name)
