"""Docker v2 (schema 2) manifests in Ollama's layout: ``manifests/<host>/<namespace>/<model>/<tag>``.

A manifest is stored as raw bytes; :class:`Manifest` keeps them (``raw``) so that a pulled manifest is
written and pushed back byte for byte, and its ``digest`` (sha256 of the file, what ``/api/tags`` reports)
never changes by being re-encoded. Manifests written here use Go's encoding (``golang.json``), so they are
byte-identical to what Ollama would write for the same layers.

Lookup is case-insensitive, and an existing manifest's casing wins (Ollama's ``getExistingName``).

Thread-safety: reads may run from any thread; writes are atomic renames, so concurrent readers never see a
partial manifest.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyollama.errors import InvalidManifest, InvalidModelName, ModelNotFound
from pyollama.golang import json as gojson
from pyollama.store import fsutil
from pyollama.store.blobs import InvalidDigest, normalize_digest
from pyollama.store.names import INVALID_NAME, ModelName

MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
OCI_MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.docker.container.image.v1+json"

_P = "application/vnd.ollama.image."
MEDIA_MODEL = _P + "model"
MEDIA_ADAPTER = _P + "adapter"
MEDIA_PROJECTOR = _P + "projector"
MEDIA_TEMPLATE = _P + "template"
MEDIA_PROMPT = _P + "prompt"          # legacy name of the template layer
MEDIA_SYSTEM = _P + "system"
MEDIA_PARAMS = _P + "params"
MEDIA_MESSAGES = _P + "messages"
MEDIA_LICENSE = _P + "license"
MEDIA_EMBED = _P + "embed"            # obsolete, ignored
MEDIA_DRAFT = _P + "draft"

# One path component may not exceed the filesystem's NAME_MAX; a host may be 350 characters by Ollama's
# rules, which no Linux filesystem can store. Such names are refused rather than half-created.
_NAME_MAX = 255


@dataclass
class Layer:
    media_type: str
    digest: str
    size: int
    from_: str = ""      # the parent model a layer was inherited from (registry cross-repo mount)
    name: str = ""       # tensor name, for Ollama's safetensors/MLX layers
    extra: dict[str, Any] = field(default_factory=dict)   # unknown fields, kept for round trips

    def to_go(self) -> dict[str, Any]:
        d: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.from_:
            d["from"] = self.from_
        if self.name:
            d["name"] = self.name
        return d

    @classmethod
    def from_json(cls, d: Any) -> Layer:
        if not isinstance(d, dict):
            raise InvalidManifest("manifest layer is not an object")
        try:
            digest = normalize_digest(d["digest"])
            size = d["size"]
            media_type = d["mediaType"]
        except (KeyError, InvalidDigest) as e:
            raise InvalidManifest(f"manifest layer is invalid: {e}") from None
        if not isinstance(size, int) or isinstance(size, bool) or size < 0 or not isinstance(media_type, str):
            raise InvalidManifest("manifest layer has a bad size or media type")
        known = {"mediaType", "digest", "size", "from", "name"}
        return cls(media_type, digest, size, str(d.get("from") or ""), str(d.get("name") or ""),
                   {k: v for k, v in d.items() if k not in known})


@dataclass
class Manifest:
    config: Layer
    layers: list[Layer]
    schema_version: int = 2
    media_type: str = MANIFEST_MEDIA_TYPE
    raw: bytes = b""          # the bytes as stored (filled by parse / to_bytes)

    @classmethod
    def parse(cls, raw: bytes) -> Manifest:
        """Parse and validate (every digest must match the strict pattern)."""
        try:
            d = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise InvalidManifest(f"manifest is not JSON: {e}") from None
        if not isinstance(d, dict) or not isinstance(d.get("layers"), list):
            raise InvalidManifest("manifest has no layers list")
        if d.get("schemaVersion") != 2:
            raise InvalidManifest(f"unsupported manifest schemaVersion {d.get('schemaVersion')!r}")
        config = Layer.from_json(d.get("config"))
        layers = [Layer.from_json(x) for x in d["layers"]]
        return cls(config, layers, 2, str(d.get("mediaType") or MANIFEST_MEDIA_TYPE), bytes(raw))

    def to_bytes(self) -> bytes:
        """Go ``json.Encoder`` output, as Ollama's ``WriteManifest`` produces it."""
        obj = {"schemaVersion": self.schema_version, "mediaType": self.media_type,
               "config": self.config.to_go(), "layers": [layer.to_go() for layer in self.layers]}
        return gojson.encode(obj)

    def bytes(self) -> bytes:
        """The stored bytes if this manifest was read or written, else a fresh encoding."""
        return self.raw or self.to_bytes()

    @property
    def digest(self) -> str:
        """sha256 hex of the manifest bytes (no prefix), as ``/api/tags`` reports it."""
        import hashlib
        return hashlib.sha256(self.bytes()).hexdigest()

    @property
    def size(self) -> int:
        """Config plus all layers (Ollama's ``Manifest.Size``)."""
        return self.config.size + sum(layer.size for layer in self.layers)

    def all_layers(self) -> list[Layer]:
        return [self.config, *self.layers]

    def blob_digests(self) -> set[str]:
        return {layer.digest for layer in self.all_layers()}

    def layers_of(self, media_type: str) -> list[Layer]:
        return [layer for layer in self.layers if layer.media_type == media_type]


def _entries(path: str | Path, *, files: bool = False) -> list[os.DirEntry[str]]:
    """The sub-directories of ``path`` (or its plain files), by name; links are not followed."""
    with os.scandir(path) as it:
        return sorted((e for e in it if (e.is_file if files else e.is_dir)(follow_symlinks=False)),
                      key=lambda e: e.name)


class ManifestStore:
    def __init__(self, directory: Path):
        self.dir = Path(directory)

    # -- paths ------------------------------------------------------------------------------------
    def path(self, name: ModelName) -> Path:
        for part in name.parts:
            if len(part.encode()) > _NAME_MAX:
                raise InvalidModelName(INVALID_NAME)
        if not name.is_valid():
            raise InvalidModelName(INVALID_NAME)
        return self.dir.joinpath(*name.parts)

    def resolve(self, name: ModelName) -> ModelName | None:
        """The stored name equal to ``name`` ignoring case (exact casing preferred), or None."""
        exact = self.path(name)
        if exact.is_file():
            return name
        d = self.dir
        found: list[str] = []
        for want in name.parts:
            try:
                entries = sorted(os.listdir(d))
            except (FileNotFoundError, NotADirectoryError):
                return None
            match = next((e for e in entries if e == want), None) or \
                next((e for e in entries if e.lower() == want.lower()), None)
            if match is None:
                return None
            found.append(match)
            d = d / match
        if not d.is_file():
            return None
        try:
            return name.with_parts(tuple(found))  # type: ignore[arg-type]
        except InvalidModelName:
            return None

    # -- reading ----------------------------------------------------------------------------------
    def read(self, name: ModelName) -> Manifest:
        """The manifest of ``name`` (case-insensitive). Raises ModelNotFound."""
        stored = self.resolve(name)
        if stored is None:
            raise ModelNotFound(f"model '{name.display()}' not found")
        try:
            raw = self.path(stored).read_bytes()
        except FileNotFoundError:  # deleted between resolve and read
            raise ModelNotFound(f"model '{name.display()}' not found") from None
        return Manifest.parse(raw)

    def names(self) -> Iterator[ModelName]:
        """Every stored name (4-level ``host/ns/model/tag`` files with valid parts); others are skipped."""
        if not self.dir.is_dir():
            return
        for host in _entries(self.dir):
            for ns in _entries(host.path):
                for model in _entries(ns.path):
                    for tag in _entries(model.path, files=True):
                        try:
                            yield ModelName.from_parts((host.name, ns.name, model.name, tag.name))
                        except InvalidModelName:
                            continue   # temp files (".tmp-…") and foreign files

    def all(self) -> dict[ModelName, Manifest]:
        """Every readable manifest; unreadable ones are skipped (as Ollama's ``Manifests(true)``)."""
        out: dict[ModelName, Manifest] = {}
        for n in self.names():
            try:
                out[n] = Manifest.parse(self.path(n).read_bytes())
            except (OSError, InvalidManifest):
                continue
        return out

    # -- writing ----------------------------------------------------------------------------------
    def write(self, name: ModelName, manifest: Manifest | bytes) -> Manifest:
        """Atomically (re)place the manifest of ``name``; ``bytes`` are written exactly as given."""
        raw = manifest if isinstance(manifest, (bytes, bytearray)) else manifest.bytes()
        parsed = Manifest.parse(bytes(raw))
        fsutil.write_atomic(self.path(name), bytes(raw))
        return parsed

    def remove(self, name: ModelName) -> bool:
        """Remove the manifest file and any directories it leaves empty."""
        p = self.path(name)
        if not fsutil.remove_durably(p):
            return False
        d = p.parent
        while d != self.dir and d.is_relative_to(self.dir):
            try:
                d.rmdir()
            except OSError:
                break
            d = d.parent
        return True

    def prune_empty_dirs(self) -> None:
        if not self.dir.is_dir():
            return
        for root, _dirs, _files in os.walk(self.dir, topdown=False):
            if Path(root) != self.dir and not os.listdir(root):
                try:
                    os.rmdir(root)
                except OSError:
                    pass
