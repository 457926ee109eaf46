"""``pull``: fetch a model's manifest and missing blobs from a registry into the store.

Progress events are Ollama's, in Ollama's order (docs/contract.md §2.10)::

    {"status": "pulling manifest"}
    {"status": "pulling 6a0746a1ec1a", "digest": "sha256:…", "total": N, "completed": n}   # repeated
    {"status": "verifying sha256 digest"}
    {"status": "writing manifest"}
    {"status": "removing unused layers"}     # only when a replaced tag left blobs nothing uses
    {"status": "success"}

``completed`` is left out while it is 0 (Go's ``omitempty``). A blob that is already stored gives one line
with completed = total and is not downloaded again (nor re-hashed, as in Ollama).

Crash safety: blobs are verified *before* they get their final name (Ollama renames first); the manifest
bytes, exactly as received, are written atomically and last, under the store's writer lock, so a kill at
any point leaves either the old tag or the new one and never a blob that was not verified.

Thread-safety: ``pull`` may run in any thread, several at once (same or different models, same or
different processes): a blob needed by several pulls is downloaded once.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx

from pyollama.errors import InvalidManifest, ModelNotFound, RegistryError, RemoteModelNotFound
from pyollama.store.manifest import MANIFEST_MEDIA_TYPE, OCI_MANIFEST_MEDIA_TYPE, Layer, Manifest
from pyollama.store.names import ModelName
from pyollama.store.registry.download import BlobDownload
from pyollama.store.registry.options import Credentials, RegistryOptions
from pyollama.store.registry.session import Session
from pyollama.store.store import Store, noprune

log = logging.getLogger("pyollama.registry")

Event = dict[str, Any]
ACCEPT = f"{MANIFEST_MEDIA_TYPE}, {OCI_MANIFEST_MEDIA_TYPE}"
MANIFEST_TYPES = (MANIFEST_MEDIA_TYPE, OCI_MANIFEST_MEDIA_TYPE)


def progress_event(layer: Layer, completed: int) -> Event:
    ev: Event = {"status": f"pulling {layer.digest[7:19]}", "digest": layer.digest, "total": layer.size}
    if completed:
        ev["completed"] = completed
    return ev


def make_options(options: RegistryOptions | None, insecure: bool | None,
                 credentials: Credentials | None) -> RegistryOptions:
    """A copy of ``options`` (the caller's object is never changed) with the call's overrides."""
    o = dataclasses.replace(options) if options is not None else RegistryOptions()
    if insecure is not None:
        o.insecure = bool(insecure)
    if credentials:
        o.credentials = credentials
    return o


def fetch_manifest(session: Session, name: ModelName) -> bytes:
    """``GET /v2/<repo>/manifests/<tag or digest>``; returns the bytes exactly as sent, after checking
    their type, size and (when the registry states it, or the name pins it) their digest."""
    ref = name.digest or name.tag
    url = session.url(f"manifests/{ref}")
    what = "pull model manifest"
    resp = session.request("GET", url, headers={"Accept": ACCEPT}, stream=True, what=what)
    try:
        if resp.status_code == 404:
            raise RemoteModelNotFound(f"{what}: file does not exist", http_status=404,
                                      code="MANIFEST_UNKNOWN")
        if resp.status_code != 200:
            raise session.error(resp, what)
        limit = session.options.max_manifest
        body = bytearray()
        try:
            for chunk in resp.iter_bytes():
                body += chunk
                if len(body) > limit:
                    raise RegistryError(f"{what}: larger than {limit} bytes")
        except httpx.TransportError as e:
            raise session.unreachable("GET", url, e, what) from None
    finally:
        resp.close()
    raw = bytes(body)
    got = "sha256:" + hashlib.sha256(raw).hexdigest()
    stated = resp.headers.get("docker-content-digest", "")
    if name.digest and got != name.digest:
        raise RegistryError(f"{what}: digest mismatch: want {name.digest}, got {got}")
    if stated.startswith("sha256:") and stated != got and ref == name.tag:
        raise RegistryError(f"{what}: digest mismatch: the registry says {stated}, the body is {got}")
    ctype = resp.headers.get("content-type", "").split(";")[0].strip()
    if ctype and ctype not in MANIFEST_TYPES and ctype != "application/json":
        raise RegistryError(f"{what}: unsupported manifest type {ctype} (only Docker v2 and OCI image "
                            "manifests hold models)")
    try:
        m = Manifest.parse(raw)
    except InvalidManifest as e:
        raise RegistryError(f"{what}: {e}") from None
    if m.media_type not in MANIFEST_TYPES:
        raise RegistryError(f"{what}: unsupported manifest type {m.media_type}")
    return raw


def pull(store: Store, name: str | ModelName, *, insecure: bool | None = None,
         credentials: Credentials | None = None, options: RegistryOptions | None = None) -> Iterator[Event]:
    """Pull ``name`` (``[host/][namespace/]model[:tag][@digest]``) into ``store``; yields progress events
    and raises a :class:`~pyollama.errors.PyollamaError` on failure (after ``pulling manifest`` for
    everything but a bad name or an http registry without ``insecure``, as Ollama).

    ``insecure`` allows plain http. ``credentials`` override the configured ones for this registry.
    Closing the iterator early cancels the pull (a download shared with another pull keeps going).
    """
    n = store.parse_name(name)
    opts = make_options(options, insecure, credentials)
    session = Session(n, opts)        # InsecureProtocol here: before any event, before any socket
    jobs: list[BlobDownload] = []
    try:
        yield {"status": "pulling manifest"}
        session.auth.want(f"repository:{n.repository}:pull")
        raw = fetch_manifest(session, n)
        manifest = Manifest.parse(raw)
        old: Manifest | None = None
        with contextlib.suppress(ModelNotFound, InvalidManifest):
            old = store.manifest(n)
        with store.writing():   # no GC may remove a blob between our check and the manifest write
            for layer in [*manifest.layers, manifest.config]:
                if store.blobs.has(layer.digest):
                    yield progress_event(layer, layer.size)
                    continue
                job = BlobDownload.acquire(store, n, opts, layer)
                jobs.append(job)
                yield from _watch(job, layer, opts.progress_interval)
            yield {"status": "verifying sha256 digest"}
            # Verify every new blob even after a failure (as Ollama does): the good ones keep their
            # bytes for the next try, the bad one is deleted, and no partial is left behind.
            failure: BaseException | None = None
            for job in jobs:
                try:
                    job.finish()
                except Exception as e:  # noqa: BLE001 - raised below, after the others
                    failure = failure or e
            if failure is not None:
                raise failure
            yield {"status": "writing manifest"}
            store.write_manifest(n, raw)
        if old is not None and not noprune():
            unused = old.blob_digests() - manifest.blob_digests()
            if unused:
                yield {"status": "removing unused layers"}
                store.collect(unused)
        yield {"status": "success"}
    finally:
        for job in jobs:
            job.release()
        session.close()


def _watch(job: BlobDownload, layer: Layer, interval: float) -> Iterator[Event]:
    """Progress lines of one blob until its bytes are all here; raises the download's error."""
    last = -1
    while not job.fetched.wait(interval):
        done = job.completed
        if done != last:
            last = done
            yield progress_event(layer, done)
    if job.error is not None:
        raise job.error
    yield progress_event(layer, layer.size)


def pull_all(store: Store, name: str | ModelName, **kw: Any) -> Event:
    """Run a pull to the end (library/CLI convenience); returns the last event."""
    last: Event = {}
    t0 = time.monotonic()
    for last in pull(store, name, **kw):
        pass
    log.info("pulled %s in %.1fs", store.parse_name(name).display(), time.monotonic() - t0)
    return last
