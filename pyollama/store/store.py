"""The model store: a root directory with ``blobs/`` and ``manifests/`` in Ollama's layout.

Crash safety and concurrency, in one place:

* every file appears through an atomic rename (``fsutil``); a manifest is written only after all the blobs
  it references are committed, so a kill at any moment leaves the old state or the new one;
* writers (create, copy, pull) hold a **shared** lock on ``<root>/.pyollama-store.lock`` while they commit
  blobs and write the manifest; garbage collection (delete's blob removal, prune) takes it **exclusively**,
  so it never removes a blob that an in-flight writer is about to reference. Writers never wait for each
  other; GC waits a bounded time and otherwise leaves the garbage for the next prune.

Thread-safety: a Store may be shared by threads and processes.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from pyollama import config
from pyollama.errors import InvalidModelName, ModelNotFound
from pyollama.store import fsutil
from pyollama.store.blobs import BLOB_FILE_RE, BlobNotFound, BlobStore
from pyollama.store.manifest import Manifest, ManifestStore
from pyollama.store.names import ModelName

log = logging.getLogger("pyollama.store")

LOCK_NAME = ".pyollama-store.lock"
GC_WAIT = 10.0          # seconds a delete waits for in-flight writers before leaving blobs to prune
STALE_AGE = 3600.0      # Ollama's PruneLayers removes non-digest files in blobs/ older than 1 h


def default_root() -> Path:
    """``PYOLLAMA_MODELS``, else ``OLLAMA_MODELS``, else ``~/.pyollama/models``."""
    root: Path | None = config.setting("MODELS")
    return root if root is not None else Path.home() / ".pyollama" / "models"


def noprune() -> bool:
    """``PYOLLAMA_NOPRUNE`` / ``OLLAMA_NOPRUNE``: keep unused blobs (prune, and a replaced model's layers)."""
    return bool(config.setting("NOPRUNE"))


class Store:
    """One model directory. ``Store()`` uses :func:`default_root`."""

    def __init__(self, root: str | os.PathLike[str] | None = None):
        self.root = Path(root).expanduser() if root is not None else default_root()
        self.blobs = BlobStore(self.root / "blobs")
        self.manifests = ManifestStore(self.root / "manifests")
        self._lock = fsutil.FileLock(self.root / LOCK_NAME)

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    # -- locking ----------------------------------------------------------------------------------
    def writing(self) -> contextlib.AbstractContextManager[None]:
        """Hold while committing blobs that a manifest written in the same block will reference."""
        return self._lock.shared()

    def collecting(self, timeout: float | None = -1.0) -> contextlib.AbstractContextManager[bool]:
        """Exclusive GC lock; yields False if writers kept it busy past ``timeout`` seconds (default
        ``GC_WAIT``; None waits for ever)."""
        return self._lock.exclusive(GC_WAIT if timeout is not None and timeout < 0 else timeout)

    # -- names ------------------------------------------------------------------------------------
    @staticmethod
    def parse_name(name: str | ModelName) -> ModelName:
        return name if isinstance(name, ModelName) else ModelName.parse(name)

    def resolve(self, name: str | ModelName) -> ModelName:
        """The stored name (its casing) for ``name``; ModelNotFound if there is none. A name pinned with
        ``@sha256:…`` must also match the manifest's digest."""
        n = self.parse_name(name)
        stored = self.manifests.resolve(n)
        if stored is None:
            raise ModelNotFound(f"model '{n.display()}' not found")
        if n.digest and self.manifests.read(stored).digest != n.digest.split(":", 1)[1]:
            raise ModelNotFound(f"model '{n.display()}@{n.digest}' not found")
        return stored

    def existing_name(self, name: str | ModelName) -> ModelName:
        """``name`` with an existing manifest's casing if there is one (for writes), else ``name``."""
        n = self.parse_name(name)
        return self.manifests.resolve(n) or n

    def exists(self, name: str | ModelName) -> bool:
        try:
            self.resolve(name)
        except (ModelNotFound, InvalidModelName):
            return False
        return True

    def names(self) -> list[ModelName]:
        return list(self.manifests.names())

    # -- manifests --------------------------------------------------------------------------------
    def manifest(self, name: str | ModelName) -> Manifest:
        return self.manifests.read(self.resolve(name))

    def write_manifest(self, name: str | ModelName, manifest: Manifest | bytes, *,
                       check_blobs: bool = True) -> ModelName:
        """Write a manifest (bytes are kept exactly as given, e.g. as received from a registry), last,
        after checking that every blob it references is present. Returns the name written (casing of an
        existing manifest wins)."""
        target = self.existing_name(name)
        m = manifest if isinstance(manifest, Manifest) else Manifest.parse(bytes(manifest))
        if check_blobs:
            missing = [d for d in sorted(m.blob_digests()) if not self.blobs.has(d)]
            if missing:
                raise BlobNotFound(f"manifest references missing blobs: {', '.join(missing)}")
        self.manifests.write(target, m.bytes() if isinstance(manifest, Manifest) else bytes(manifest))
        return target

    def layers(self, name: str | ModelName) -> list:
        """Config plus layers of a model (what a push uploads)."""
        return self.manifest(name).all_layers()

    def modified_at(self, name: ModelName) -> float:
        """mtime (seconds, float) of the stored manifest file."""
        return self.manifests.path(self.resolve(name)).stat().st_mtime

    # -- copy / delete ----------------------------------------------------------------------------
    def copy(self, source: str | ModelName, destination: str | ModelName) -> ModelName:
        """Point a second name at the same manifest bytes; no blob is duplicated (``POST /api/copy``)."""
        try:
            src = self.parse_name(source)
        except InvalidModelName:
            raise InvalidModelName(f"source {source!s} is invalid") from None
        try:
            dst = self.parse_name(destination)
        except InvalidModelName:
            raise InvalidModelName(f"destination {destination!s} is invalid") from None
        with self.writing():   # the source's blobs can't be collected while the copy is written
            stored = self.resolve(src)
            raw = self.manifests.path(stored).read_bytes()
            target = self.existing_name(dst)
            if target.key == stored.key and target.parts == stored.parts:
                return target
            self.manifests.write(target, raw)
        return target

    def delete(self, name: str | ModelName) -> ModelName:
        """Remove a model's manifest, then every blob of it that no other manifest references."""
        stored = self.resolve(name)
        m = self.manifests.read(stored)
        self.manifests.remove(stored)
        self.collect(m.blob_digests())
        return stored

    def collect(self, candidates: set[str]) -> list[str]:
        """Remove those of ``candidates`` that no manifest references. Returns the removed digests."""
        if not candidates:
            return []
        with self.collecting() as locked:
            if not locked:
                log.warning("store busy: leaving %d unreferenced blob(s) for the next prune", len(candidates))
                return []
            used: set[str] = set()
            for m in self.manifests.all().values():
                used |= m.blob_digests()
            removed = []
            for d in sorted(candidates - used):
                if self.blobs.remove(d):
                    removed.append(d)
            return removed

    # -- prune ------------------------------------------------------------------------------------
    def prune(self, *, min_age: float = STALE_AGE, force: bool = False) -> dict[str, int]:
        """Startup clean-up (skipped when ``PYOLLAMA_NOPRUNE``/``OLLAMA_NOPRUNE`` is set unless ``force``):
        remove unreferenced blobs, stale temp/partial files (writer dead, or untouched ``min_age`` s),
        and empty manifest directories. Returns counts."""
        counts = {"blobs": 0, "temp": 0}
        if noprune() and not force:
            return counts
        with self.collecting(timeout=0) as locked:
            if not locked:
                log.info("store busy, prune skipped")
                return counts
            used: set[str] = set()
            for m in self.manifests.all().values():
                used |= m.blob_digests()
            if self.blobs.dir.is_dir():
                for p in self.blobs.dir.iterdir():
                    if not p.is_file():
                        continue
                    m = BLOB_FILE_RE.fullmatch(p.name)
                    if m:
                        if "sha256:" + m.group(1) not in used and self.blobs.remove("sha256:" + m.group(1)):
                            counts["blobs"] += 1
                    elif self._stale(p, min_age):
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(p)
                            counts["temp"] += 1
            if self.root.is_dir():   # conversion work folders (.tmp-<pid>-…-convert) of dead creates
                for p in self.root.iterdir():
                    if p.is_dir() and fsutil.temp_pid(p.name) is not None and \
                            fsutil.is_stale_temp(p, min_age):
                        shutil.rmtree(p, ignore_errors=True)
                        counts["temp"] += 1
            if self.manifests.dir.is_dir():
                for root, _dirs, files in os.walk(self.manifests.dir):
                    for f in files:
                        p = Path(root) / f
                        if fsutil.temp_pid(f) is not None and fsutil.is_stale_temp(p, min_age):
                            with contextlib.suppress(FileNotFoundError):
                                os.unlink(p)
                                counts["temp"] += 1
                self.manifests.prune_empty_dirs()
        return counts

    @staticmethod
    def _stale(p: Path, min_age: float) -> bool:
        """Non-digest files in blobs/: ours (``.tmp-<pid>-…``) go when their writer is dead; anything
        else (``-partial`` downloads, Ollama's temp files) when untouched for ``min_age`` seconds."""
        return fsutil.is_stale_temp(p, min_age)

    # -- paths for the engine ---------------------------------------------------------------------
    def iter_models(self) -> Iterator[tuple[ModelName, Manifest]]:
        yield from self.manifests.all().items()
