"""Uploading one blob to a registry (distribution API), in a worker thread the push generator watches.

Steps, with what a real registry (distribution 2.8) answers (docs/contract.md §10.5):

1. ``HEAD /v2/<repo>/blobs/<d>``: 200 → the registry has it, nothing to send;
2. ``POST /v2/<repo>/blobs/uploads/`` — with ``?mount=<d>&from=<ns/model>`` when the layer records the
   model it came from (``from``): **201** = mounted from that repository, done; **202** = an upload
   session (also what an unknown mount source gives), at ``Docker-Upload-Location`` or ``Location``;
3. a blob up to ``upload_chunk`` bytes goes in one ``PUT <location>&digest=<d>`` with the body (2.8 has no
   single-POST upload: it ignores such a body); a bigger one as in-order ``PATCH`` chunks
   (``Content-Range: a-b``), each sent to the ``Location`` of the previous answer, whose ``Range`` must
   say the registry now holds exactly ``0-b`` (2.8 ignores Content-Range and appends, so the client must
   keep the order), then ``PUT <location>&digest=<d>`` with no body;
4. a chunk cut by a dropped connection, or refused for a wrong offset (404 BLOB_UPLOAD_INVALID: a cut
   chunk was partly written), asks the session where it stands (``GET <location>`` → 204 with
   ``Range``) and goes on from there; if the session is gone, the upload starts again. (2.8 signs the
   offset into ``_state``, so once part of a cut chunk lands it refuses that state: it restarts.)

Thread-safety: one BlobUpload per blob and push; ``sent`` is read racily by the watcher for progress.
"""
from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterator
from urllib.parse import quote, urljoin

import httpx

from pyollama.errors import RegistryError, RegistryUnreachable
from pyollama.store.manifest import Layer
from pyollama.store.names import ModelName
from pyollama.store.registry.session import Session
from pyollama.store.store import Store

log = logging.getLogger("pyollama.registry")

READ_CHUNK = 1 << 20
_RANGE_RE = re.compile(r"(?:bytes=)?(\d+)-(\d+)")


def mount_source(layer: Layer, target: ModelName) -> str:
    """The ``ns/model`` a layer can be mounted from, or "" (no ``from``, or the same repository).
    Like Ollama, only the repository of ``from`` counts; its host is ignored."""
    if not layer.from_:
        return ""
    try:
        src = ModelName.parse(layer.from_)
    except ValueError:
        return ""
    repo = src.repository
    return "" if repo.lower() == target.repository.lower() else repo


class BlobUpload:
    """Upload ``layer`` from ``store`` through ``session``; ``start()`` runs it in a thread."""

    def __init__(self, session: Session, store: Store, layer: Layer):
        self.session = session
        self.store = store
        self.layer = layer
        self.sent = 0
        self.outcome = ""                 # "exists" | "mounted" | "uploaded"
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.cancel = threading.Event()
        self._what = f"pushing {layer.digest[7:19]}"
        self._thread = threading.Thread(target=self._run, name=f"push-{layer.digest[7:19]}", daemon=True)

    def start(self) -> BlobUpload:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.cancel.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        try:
            self._upload()
        except BaseException as e:  # noqa: BLE001 - surfaced by the push generator
            self.error = e
        finally:
            self.done.set()

    # -- steps --------------------------------------------------------------------------------------
    def _upload(self) -> None:
        s = self.session
        d = self.layer.digest
        resp = s.request("HEAD", s.url(f"blobs/{d}"), what=self._what)
        resp.close()
        if resp.status_code == 200:
            self.outcome = "exists"
            self.sent = self.layer.size
            return
        if resp.status_code != 404:
            raise s.error(resp, self._what)
        size = self.store.blobs.size(d)
        if size != self.layer.size:
            raise RegistryError(f"{self._what}: the stored blob has {size} bytes, the manifest says "
                                f"{self.layer.size}")
        tries = 0
        while True:
            location = self._begin()
            if location is None:
                self.outcome = "mounted"
                self.sent = self.layer.size
                return
            try:
                self._send(location)
                self.outcome = "uploaded"
                return
            except _Restart as e:
                tries += 1
                if tries >= s.options.max_tries:
                    raise RegistryUnreachable(str(e)) from None
                s.backoff(tries, f"{e}; starting the upload again")

    def _begin(self) -> str | None:
        """POST an upload (or a mount); None when mounted, else the upload location."""
        s = self.session
        d = self.layer.digest
        src = mount_source(self.layer, s.name)
        url = s.url("blobs/uploads/")
        if src:
            url += f"?mount={quote(d, safe=':')}&from={quote(src, safe='/')}"
        resp = s.request("POST", url, content=b"", headers={"Content-Length": "0"}, what=self._what)
        resp.close()
        if resp.status_code == 201 and src:
            return None
        if resp.status_code != 202:
            raise s.error(resp, self._what)
        loc = resp.headers.get("docker-upload-location") or resp.headers.get("location")
        if not loc:
            raise RegistryError(f"{self._what}: the registry gave no upload location")
        return urljoin(url, loc)

    def _send(self, location: str) -> None:
        size = self.layer.size
        chunk = max(1, self.session.options.upload_chunk)
        if size <= chunk:
            self._commit(location, 0, size)
            return
        offset = 0
        resyncs = 0
        while offset < size:
            if self.cancel.is_set():
                raise RegistryError("push cancelled")
            end = min(offset + chunk, size)
            try:
                location, offset = self._patch(location, offset, end)
                resyncs = 0
            except _Resync as e:
                # A cut chunk may still be landing when we ask, so the answer can be one step
                # behind; the next PATCH then fails its offset check and we ask again, later.
                resyncs += 1
                if resyncs >= self.session.options.max_tries:
                    raise _Restart(str(e)) from None
                self.session.backoff(resyncs, f"{e}; asking where the upload stands")
                status = self._status(location)
                if status is None:
                    raise _Restart(str(e)) from None
                location, offset = status
                log.info("%s: the registry holds %d bytes, going on from there", self._what, offset)
        self._commit(location, size, size)

    def _body(self, start: int, end: int) -> Iterator[bytes]:
        """The blob's bytes [start, end) read with pread; ``sent`` follows what httpx consumed."""
        self.sent = start
        with self.store.blobs.open(self.layer.digest) as f:
            fd = f.fileno()
            pos = start
            while pos < end:
                if self.cancel.is_set():
                    raise RegistryError("push cancelled")
                data = os.pread(fd, min(READ_CHUNK, end - pos), pos)
                if not data:
                    raise RegistryError(f"{self._what}: the stored blob is shorter than its manifest says")
                pos += len(data)
                yield data
                self.sent = pos

    def _patch(self, location: str, start: int, end: int) -> tuple[str, int]:
        """PATCH bytes [start, end); returns the next location and the offset the registry now holds."""
        s = self.session
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(end - start),
                   "Content-Range": f"{start}-{end - 1}"}
        try:
            resp = s.request("PATCH", location, headers=headers, content=lambda: self._body(start, end),
                             retry=False, what=self._what)
        except RegistryUnreachable as e:
            raise _Resync(str(e)) from None
        resp.close()
        if resp.status_code in (404, 416):
            # BLOB_UPLOAD_INVALID / range mismatch: our offset disagrees with what the session
            # holds (a cut chunk partly written), or the session is gone.
            raise _Resync(f"{self._what}: the registry refused the chunk at {start} "
                          f"({resp.status_code})")
        if resp.status_code != 202:
            raise s.error(resp, self._what)
        held = self._range_end(resp)
        if held != end:
            # The session holds bytes we did not mean to send there: only a new one can be right.
            raise _Restart(f"{self._what}: the registry holds {held} bytes after a chunk ending at {end}")
        loc = resp.headers.get("location")
        return (urljoin(location, loc) if loc else location), end

    def _status(self, location: str) -> tuple[str, int] | None:
        """Where the upload session stands (``GET <location>`` → 204 + Range + a fresh Location):
        ``(location, bytes held)``, or None when the session is gone."""
        try:
            resp = self.session.request("GET", location, what=self._what)
        except RegistryUnreachable:
            return None
        resp.close()
        if resp.status_code != 204:
            return None
        loc = resp.headers.get("location")
        return (urljoin(location, loc) if loc else location), self._range_end(resp, empty_if_zero=True)

    @staticmethod
    def _range_end(resp: httpx.Response, *, empty_if_zero: bool = False) -> int:
        """Bytes held according to ``Range: 0-<last>``. Distribution writes ``0-0`` both for an empty
        session and for one byte; after a PATCH it is one byte, in a status answer it is taken as empty
        (a 1-byte upload then fails its digest check instead of passing silently)."""
        m = _RANGE_RE.fullmatch(resp.headers.get("range", "").strip())
        if not m:
            return 0
        last = int(m.group(2))
        return 0 if empty_if_zero and last == 0 else last + 1

    def _commit(self, location: str, start: int, end: int) -> None:
        """``PUT <location>&digest=`` with bytes [start, end) (none after PATCHes)."""
        s = self.session
        sep = "&" if "?" in location else "?"
        url = f"{location}{sep}digest={quote(self.layer.digest, safe=':')}"
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(end - start)}
        content = (lambda: self._body(start, end)) if end > start else b""
        try:
            resp = s.request("PUT", url, headers=headers, content=content, retry=False, what=self._what)
        except RegistryUnreachable as e:
            raise _Restart(str(e)) from None
        resp.close()
        if resp.status_code != 201:
            raise s.error(resp, self._what)
        self.sent = self.layer.size


class _Restart(Exception):
    """The upload session is lost; start a new one. Messages start with the blob (``pushing …:``)."""


class _Resync(Exception):
    """A chunk did not land as sent; ask the session how many bytes it holds."""
