"""``push``: upload a stored model's blobs and then its manifest to a registry.

Progress events are Ollama's::

    {"status": "retrieving manifest"}
    {"status": "pushing 6a0746a1ec1a", "digest": "sha256:…", "total": N, "completed": n}   # repeated
    {"status": "pushing manifest"}
    {"status": "success"}

Blobs go one at a time, layers first and the config last (Ollama's order); a blob the registry already has
(``HEAD`` 200) or can mount from the model it was derived from gives one line with completed = total.
The manifest is sent as the **bytes stored locally** (Ollama re-marshals it), with the Content-Type of its
own ``mediaType``, so the registry's digest equals the local one and a pull gives back the same file.

Thread-safety: ``push`` may run in any thread; concurrent pushes are independent.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from typing import Any

from pyollama.errors import RegistryError
from pyollama.store.manifest import Layer
from pyollama.store.names import ModelName
from pyollama.store.registry.options import Credentials, RegistryOptions
from pyollama.store.registry.pull import make_options
from pyollama.store.registry.session import Session
from pyollama.store.registry.upload import BlobUpload, mount_source
from pyollama.store.store import Store

log = logging.getLogger("pyollama.registry")

Event = dict[str, Any]


def progress_event(layer: Layer, completed: int) -> Event:
    ev: Event = {"status": f"pushing {layer.digest[7:19]}", "digest": layer.digest, "total": layer.size}
    if completed:
        ev["completed"] = completed
    return ev


def push(store: Store, name: str | ModelName, *, insecure: bool | None = None,
         credentials: Credentials | None = None, options: RegistryOptions | None = None) -> Iterator[Event]:
    """Push the stored model ``name`` to the registry its name points at; yields progress events and
    raises a :class:`~pyollama.errors.PyollamaError` on failure. Closing the iterator cancels the push."""
    n = store.parse_name(name)
    opts = make_options(options, insecure, credentials)
    yield {"status": "retrieving manifest"}
    session = Session(n, opts)        # InsecureProtocol here, before any socket
    try:
        stored = store.resolve(n)
        manifest = store.manifest(stored)
        raw = manifest.bytes()
        target = n   # the casing the user typed is the remote name
        scopes = [f"repository:{target.repository}:pull,push"]
        scopes += [f"repository:{src}:pull" for src in sorted(
            {mount_source(x, target) for x in manifest.all_layers()} - {""})]
        session.auth.want(*scopes)
        for layer in [*manifest.layers, manifest.config]:
            yield from _upload(session, store, layer, opts.progress_interval)
        yield {"status": "pushing manifest"}
        _put_manifest(session, target, raw, manifest.media_type)
        yield {"status": "success"}
    finally:
        session.close()


def _upload(session: Session, store: Store, layer: Layer, interval: float) -> Iterator[Event]:
    up = BlobUpload(session, store, layer).start()
    try:
        last = -1
        while not up.done.wait(interval):
            if up.sent != last:
                last = up.sent
                yield progress_event(layer, last)
        if up.error is not None:
            raise up.error
        log.info("%s: %s", layer.digest[7:19], up.outcome)
        yield progress_event(layer, layer.size)
    finally:
        up.stop()


def _put_manifest(session: Session, name: ModelName, raw: bytes, media_type: str) -> None:
    what = "pushing manifest"
    resp = session.request("PUT", session.url(f"manifests/{name.tag}"), content=raw,
                           headers={"Content-Type": media_type}, what=what)
    resp.close()
    if resp.status_code not in (200, 201):
        raise session.error(resp, what)
    want = "sha256:" + hashlib.sha256(raw).hexdigest()
    got = resp.headers.get("docker-content-digest", "")
    if got and got != want:
        raise RegistryError(f"{what}: the registry stored digest {got}, the manifest sent is {want}")
