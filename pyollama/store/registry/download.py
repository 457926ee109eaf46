"""Downloading one blob: ranged parts in parallel, resumable, shared by every pull that needs it.

A :class:`BlobDownload` is the one download of a digest into one store. Pulls ``acquire`` it (creating it
if nobody is downloading that digest yet), watch its progress, ``finish`` it (verify + rename, done once
for all of them) and ``release`` it; the last one to leave stops it, keeping the part state for a resume.
Another *process* downloading the same blob holds the partial file's lock: this one then waits, showing
that process's progress from its part files, and takes over (resuming) if that process dies.

How the bytes move:

* the size comes from the manifest, cross-checked with ``HEAD`` on the blob; the ``HEAD`` also decides the
  URL: the registry's own (it serves bytes directly, as distribution's filesystem storage does — Ollama
  fails there, #7244) or the target of a redirect to another host (a CDN; no Authorization goes there);
* the blob is cut into parts (size/16, clamped to ``min_part``…``max_part``), at most ``parallel`` in
  flight; each part is ``GET`` with ``Range``, and must come back ``206`` with the matching
  ``Content-Range``. A server that ignores ranges (200) makes the download fall back to one stream;
* the body is read with ``readinto`` into a reused buffer per part (``fastget``: http.client on the hot
  path, httpx for everything unusual) and written with one ``pwrite`` per buffer
  (:meth:`PartialBlob.write_at`), whose writeback starts at once (``sync_file_range``) so the fsync before
  the rename has little left; the part's ``Completed`` count is saved (Ollama's ``-partial-N`` JSON) only
  after the data it counts was written, at least every ``save_interval`` seconds and when an attempt ends,
  so a SIGKILL loses at most that much;
* a hasher thread (``hasher.py``) hashes the written prefix of the file (read back through a read-only map) while later
  parts still arrive; the commit finishes the hash, compares, and only then renames;
* a dropped connection retries the rest of the part with exponential backoff (``max_tries``); a stall (no
  byte for ``stall_timeout``) retries without using a try (bounded by ``max_stalls``); a refused redirect
  target (expired presigned URL: 401/403/400) re-resolves the URL through the registry.

Thread-safety: everything here is called from the pull generators' threads and the download's own
worker threads; shared state is guarded by locks, progress reads are racy-but-monotonic by design.
"""
from __future__ import annotations

import contextlib
import http.client
import json
import logging
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import urljoin

import httpx

from pyollama.errors import BlobBusy, RegistryError, RegistryUnreachable
from pyollama.store.blobs import Blob, PartialBlob
from pyollama.store.fsutil import start_writeback
from pyollama.store.manifest import Layer
from pyollama.store.names import ModelName
from pyollama.store.registry.fastget import Body, FastBody, HttpxBody, RangeClient
from pyollama.store.registry.hasher import PrefixHasher
from pyollama.store.registry.options import RegistryOptions
from pyollama.store.registry.session import REDIRECTS, Session
from pyollama.store.store import Store

log = logging.getLogger("pyollama.registry")

_CONTENT_RANGE_RE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


@dataclass
class Part:
    n: int
    offset: int
    size: int
    completed: int = 0
    buffered: int = 0      # received but not yet written (progress display only)

    def state(self) -> dict:
        """Ollama's part-state JSON (``blobs/sha256-<hex>-partial-<N>``)."""
        return {"N": self.n, "Offset": self.offset, "Size": self.size, "Completed": self.completed}


def plan_parts(size: int, options: RegistryOptions) -> list[Part]:
    """Cut ``size`` bytes into parts of size/16, clamped to [min_part, max_part] (Ollama: 100 MB–1 GB)."""
    if size <= 0:
        return []
    part = min(max(size // 16, options.min_part), options.max_part)
    return [Part(i, off, min(part, size - off)) for i, off in enumerate(range(0, size, part))]


def parts_from_state(states: dict[int, dict], size: int) -> list[Part] | None:
    """Parts saved by an earlier run, if they tile ``[0, size)`` exactly; None when unusable."""
    try:
        parts = sorted((Part(int(s["N"]), int(s["Offset"]), int(s["Size"]), int(s["Completed"]))
                        for s in states.values()), key=lambda p: p.offset)
    except (KeyError, TypeError, ValueError):
        return None
    pos = 0
    for p in parts:
        if p.offset != pos or p.size <= 0 or not 0 <= p.completed <= p.size:
            return None
        pos += p.size
    return parts if parts and pos == size else None


class _NoRanges(Exception):
    """The server answered a ranged GET with the whole blob (200)."""


class _Cancelled(Exception):
    pass


class BlobDownload:
    """The single download of ``layer.digest`` into ``store`` (see the module docstring)."""

    _jobs: ClassVar[dict[tuple[str, str], BlobDownload]] = {}
    _jobs_lock = threading.Lock()

    @classmethod
    def acquire(cls, store: Store, name: ModelName, options: RegistryOptions, layer: Layer) -> BlobDownload:
        """The running download of this blob, or a new one (started). Pair with :meth:`release`."""
        key = (str(store.blobs.dir.resolve()), layer.digest)
        with cls._jobs_lock:
            job = cls._jobs.get(key)
            if job is None or job._abandoned:
                job = cls(store, name, options, layer, key)
                cls._jobs[key] = job
                job._refs = 1
                job._thread.start()
            else:
                job._refs += 1
            return job

    def __init__(self, store: Store, name: ModelName, options: RegistryOptions, layer: Layer,
                 key: tuple[str, str]):
        self.store = store
        self.name = name
        self.options = options
        self.layer = layer
        self.digest = layer.digest
        self.total = layer.size
        self._key = key
        self._refs = 0
        self._abandoned = False
        self.parts: list[Part] = []
        self.partial: PartialBlob | None = None
        self.fetched = threading.Event()          # set when the bytes are all there, or on failure
        self.error: BaseException | None = None
        self.result: Blob | None = None
        self.cancel = threading.Event()           # every pull left: stop
        self._stop_parts = threading.Event()      # one part failed: the others stop too
        self._foreign = 0                         # progress of another process holding the partial
        self._commit_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._url: str | None = None
        self._session: Session | None = None
        self._local = threading.local()           # each worker's keep-alive RangeClient
        self._clients: list[RangeClient] = []
        self._hasher: PrefixHasher | None = None
        self._thread = threading.Thread(target=self._run, name=f"pull-{self.digest[7:19]}", daemon=True)

    # -- for the pulls ------------------------------------------------------------------------------
    @property
    def completed(self) -> int:
        if self.result is not None:
            return self.total
        if self.partial is None:
            return self._foreign
        return sum(p.completed + p.buffered for p in self.parts)

    def finish(self) -> Blob:
        """Verify the sha256 and give the blob its final name (once, whoever calls first); re-raises the
        download's error, or DigestMismatch (the partial is then deleted), to every caller."""
        self.fetched.wait()
        with self._commit_lock:
            if self.result is not None:
                return self.result
            if self.error is not None:
                raise self.error
            if self.store.blobs.has(self.digest) and self.partial is None:
                self.result = Blob(self.digest, self.total, False)
                return self.result
            partial, self.partial = self.partial, None
            assert partial is not None
            hasher, self._hasher = self._hasher, None
            if hasher is not None:
                hasher.join()            # all bytes are here: it finishes the file and ends
            try:
                if hasher is not None and hasher.done >= 0:
                    self.result = partial.commit(hasher=hasher.sha, hashed=hasher.done)
                else:
                    self.result = partial.commit()   # hash, then rename; a mismatch deletes it
            except BaseException as e:
                self.error = e
                partial.close()
                raise
            finally:
                self._forget()
            return self.result

    def release(self) -> None:
        """A pull is done with this download; the last one out stops it (part state stays for resume)."""
        with self._jobs_lock:
            self._refs -= 1
            if self._refs > 0:
                return
            self._abandoned = True
            if self._jobs.get(self._key) is self:
                del self._jobs[self._key]
        self.cancel.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join()
        self._stop_hasher()
        with self._commit_lock:
            if self.partial is not None:
                self.partial.close()   # keeps the file and part states: the next pull resumes
                self.partial = None

    def _forget(self) -> None:
        with self._jobs_lock:
            if self._jobs.get(self._key) is self:
                del self._jobs[self._key]

    # -- the download thread --------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._session = Session(self.name, self.options)
            if self._lock_partial():
                self._download()
        except _Cancelled:
            self.error = RegistryError("pull cancelled")
        except BaseException as e:  # noqa: BLE001 - handed to every waiting pull through finish()
            self.error = e
        finally:
            if self._session is not None:
                self._session.close()
            for c in self._clients:
                c.close()
            if self.error is not None:
                self._stop_hasher()
                self._forget()
                with self._commit_lock:
                    if self.partial is not None:
                        self.partial.close()
                        self.partial = None
            self.fetched.set()

    def _lock_partial(self) -> bool:
        """Take the partial file's lock, waiting (with progress) while another process holds it.
        Returns False when the blob turned up complete meanwhile."""
        blobs = self.store.blobs
        while True:
            if blobs.has(self.digest):
                return False
            try:
                self.partial = blobs.partial(self.digest, self.total, wait=False)
            except BlobBusy:
                self._foreign = self._foreign_progress()
                if self.cancel.wait(0.25):
                    raise _Cancelled() from None
                continue
            if blobs.has(self.digest):   # finished by the other process just before we got the lock
                self.partial.close()
                self.partial = None
                return False
            return True

    def _foreign_progress(self) -> int:
        base = self.store.blobs.path(self.digest).name + "-partial-"
        done = 0
        for p in self.store.blobs.dir.glob(base + "*"):
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                done += int(json.loads(p.read_text())["Completed"])
        return min(done, self.total)

    def _download(self) -> None:
        assert self.partial is not None
        saved = parts_from_state(self.partial.load_parts(), self.total)
        self.parts = saved if saved is not None else plan_parts(self.total, self.options)
        if saved is None:
            self._save_all()
        if saved:
            log.info("resuming %s: %d of %d bytes already here", self.digest[7:19],
                     sum(p.completed for p in saved), self.total)
        self._start_hasher()
        pending = [p for p in self.parts if p.completed < p.size]
        if not pending:
            return
        # A blob of one part is simply fetched (the GET follows a redirect by itself); HEAD first only
        # when several ranges will go to the same place.
        if len(pending) > 1:
            self._url = self._resolve()
        try:
            self._fetch_parallel(pending)
        except _NoRanges:
            log.info("%s ignores Range; downloading %s in one stream", self.name.host, self.digest[7:19])
            self._stop_hasher()
            self._stop_parts.clear()   # the parallel parts were stopped on purpose
            for p in self.parts:
                p.completed = p.buffered = 0
            self.partial.remove_parts()
            self.parts = [Part(0, 0, self.total)]
            self._save_all()
            self._fetch_part(self.parts[0], ranged=False)

    def _save_all(self) -> None:
        for p in self.parts:
            self._save(p)

    def _save(self, part: Part) -> None:
        if self.partial is not None:
            with self._state_lock:
                self.partial.save_part(part.n, part.state())

    def _fetch_parallel(self, pending: list[Part]) -> None:
        workers = max(1, min(self.options.parallel, len(pending)))
        if workers == 1:
            for p in pending:
                self._fetch_part(p)
            return
        with ThreadPoolExecutor(workers, thread_name_prefix=f"part-{self.digest[7:15]}") as pool:
            futures = [pool.submit(self._fetch_part, p) for p in pending]
            first: BaseException | None = None
            for f in futures:
                try:
                    f.result()
                except BaseException as e:  # noqa: BLE001 - stop the other parts, keep the first cause
                    self._stop_parts.set()
                    if first is None or isinstance(first, _Cancelled):
                        first = e
            if first is not None:
                raise first

    # -- urls ---------------------------------------------------------------------------------------
    def _resolve(self) -> str:
        """``HEAD`` the blob: the registry's URL when it serves the bytes itself, else the first
        redirect target on another host (same-host redirects are followed)."""
        s = self._session
        assert s is not None
        url = s.url(f"blobs/{self.digest}")
        what = f"pull model blob {self.digest[7:19]}"
        for _ in range(10):
            resp = s.request("HEAD", url, follow=False, what=what)
            resp.close()
            if resp.status_code in REDIRECTS and resp.headers.get("location"):
                target = urljoin(url, resp.headers["location"])
                if not s.same_host(target):
                    return target
                url = target
                continue
            if resp.status_code == 200:
                length = resp.headers.get("content-length")
                if length is not None and length.isdigit() and int(length) != self.total:
                    raise RegistryError(f"{what}: the registry has {length} bytes, the manifest says "
                                        f"{self.total}")
                return url
            raise s.error(resp, what)
        raise RegistryError(f"{what}: too many redirects")

    # -- one part -----------------------------------------------------------------------------------
    def _range_client(self) -> RangeClient:
        c = getattr(self._local, "client", None)
        if c is None:
            o = self.options
            c = self._local.client = RangeClient(o.user_agent, o.connect_timeout, o.stall_timeout)
            with self._state_lock:
                self._clients.append(c)
        return c

    def _open(self, url: str, headers: dict[str, str]) -> Body:
        """GET on the fast path; anything but 200/206 is redone through the session, which knows how to
        answer an auth challenge, follow a redirect and word an error."""
        s = self._session
        assert s is not None
        what = f"pull model blob {self.digest[7:19]}"
        client = self._range_client()
        hdrs = dict(headers)
        if s.same_host(url):
            auth = s.auth.header()
            if auth:
                hdrs["Authorization"] = auth
        try:
            r = client.get(url, hdrs)
        except ConnectionRefusedError as e:
            raise s.unreachable("GET", url, e, what) from None
        except socket.gaierror as e:
            raise s.unreachable("GET", url, e, what) from None
        if r.status in (200, 206):
            return FastBody(r, client, url)
        with contextlib.suppress(OSError, http.client.HTTPException):
            r.read(64 << 10)
        r.close()
        client.drop(url)
        resp = s.request("GET", url, headers=headers, stream=True, retry=False,
                         read_timeout=self.options.stall_timeout, what=what)
        return HttpxBody(resp)

    def _fetch_part(self, part: Part, ranged: bool = True) -> None:
        s = self._session
        assert s is not None and self.partial is not None
        o = self.options
        buf = bytearray(min(o.buffer_size, max(part.size, 1)))
        view = memoryview(buf)
        tries = stalls = 0
        tag = f"part {part.n} of {self.digest[7:19]}"
        while part.completed < part.size:
            if self.cancel.is_set() or self._stop_parts.is_set():
                raise _Cancelled()
            start = part.offset + part.completed
            end = part.offset + part.size - 1
            url = self._url or s.url(f"blobs/{self.digest}")
            if ranged:
                headers = {"Range": f"bytes={start}-{end}"}
            else:   # the single-stream fallback; a resume of it still asks for the rest
                headers = {"Range": f"bytes={start}-"} if start else {}
            try:
                body = self._open(url, headers)
            except (RegistryUnreachable, OSError, http.client.HTTPException, httpx.TransportError) as e:
                tries += 1
                if tries >= o.max_tries:
                    if isinstance(e, RegistryUnreachable):
                        raise
                    raise s.unreachable("GET", url, e, f"pull model blob {self.digest[7:19]}") from None
                s.backoff(tries, f"{tag}: {type(e).__name__}")
                continue
            try:
                self._check_status(body, part, start, end, ranged)
            except _Retry as r:
                body.close()
                tries += 1
                if tries >= o.max_tries:
                    raise r.error from None
                if r.reresolve:
                    self._url = self._resolve()
                s.backoff(tries, f"{tag}: {r.error}")
                continue
            except BaseException:
                body.close()
                raise
            before = part.completed
            try:
                self._receive(body, part, view)
            except (TimeoutError, httpx.ReadTimeout):
                stalls += 1
                if stalls > o.max_stalls:
                    raise RegistryUnreachable(f"pull model blob {self.digest[7:19]}: stalled "
                                              f"{stalls} times (no data for {o.stall_timeout:g}s)") from None
                log.info("%s stalled at %d; retrying", tag, part.offset + part.completed)
            except (OSError, http.client.HTTPException, httpx.TransportError, _ShortBody) as e:
                # A part that moved gets its tries back: only attempts without progress count.
                tries = tries + 1 if part.completed == before else 0
                if tries >= o.max_tries:
                    raise RegistryUnreachable(f"pull model blob {self.digest[7:19]}: "
                                              f"{type(e).__name__} after {tries} tries") from None
                s.backoff(max(tries, 1), f"{tag} cut at {part.offset + part.completed}: "
                          f"{type(e).__name__}")
            finally:
                body.close()
                self._save(part)

    def _check_status(self, body: Body, part: Part, start: int, end: int, ranged: bool) -> None:
        code = body.status
        s = self._session
        assert s is not None
        what = f"pull model blob {self.digest[7:19]}"
        if code == 206:
            m = _CONTENT_RANGE_RE.fullmatch((body.header("content-range") or "").strip())
            if not m or int(m.group(1)) != start or int(m.group(2)) != end or \
                    (m.group(3) != "*" and int(m.group(3)) != self.total):
                raise RegistryError(f"{what}: the server sent range {body.header('content-range')!r} "
                                    f"for bytes {start}-{end}")
            return
        if code == 200:
            if not ranged:
                if part.completed:
                    self._stop_hasher()   # the whole blob again, from byte 0: rewritten bytes
                    part.completed = 0
                return
            if start == 0 and part.offset == 0 and end == self.total - 1:
                return   # the whole blob from the start: what this part wants anyway
            raise _NoRanges()
        assert isinstance(body, HttpxBody)
        resp = body.resp
        if code in (401, 403, 400) and self._url and not s.same_host(self._url):
            raise _Retry(s.error(resp, what), reresolve=True)    # an expired presigned URL
        if code in (408, 429, 500, 502, 503, 504):
            raise _Retry(s.error(resp, what))
        raise s.error(resp, what)

    def _receive(self, body: Body, part: Part, view: memoryview) -> None:
        """``readinto`` the reused buffer and pwrite it at the part's offset, buffer by buffer; save the
        part's progress every ``save_interval`` seconds (data first, then the count)."""
        cap = len(view)
        fill = 0
        last_save = time.monotonic()
        interval = self.options.save_interval
        try:
            while True:
                want = min(cap - fill, part.size - part.completed - fill)
                if want <= 0:
                    break
                n = body.readinto(view[fill:fill + want])
                if not n:
                    break
                fill += n
                part.buffered = fill
                now = time.monotonic()
                if fill == cap or now - last_save >= interval:
                    self._flush(part, view, fill)
                    fill = 0
                    if now - last_save >= interval:
                        self._save(part)
                        last_save = now
                    if self.cancel.is_set() or self._stop_parts.is_set():
                        raise _Cancelled()
        finally:
            # What arrived is a valid prefix of the range: keep it, whatever ended the stream.
            if fill:
                self._flush(part, view, fill)
        if part.completed < part.size:
            raise _ShortBody()

    def _flush(self, part: Part, view: memoryview, fill: int) -> None:
        assert self.partial is not None
        offset = part.offset + part.completed
        self.partial.write_at(offset, view[:fill])
        start_writeback(self.partial.fd, offset, fill)
        part.completed += fill
        part.buffered = 0
        hasher = self._hasher
        if hasher is not None:
            hasher.wake.set()

    # -- hashing while downloading -----------------------------------------------------------------
    def _start_hasher(self) -> None:
        if self.partial is not None and self.total:
            self._hasher = PrefixHasher(self)
            self._hasher.start()

    def _stop_hasher(self) -> None:
        """Forget the running hash (bytes already hashed are about to be rewritten); commit re-hashes."""
        h, self._hasher = self._hasher, None
        if h is not None:
            h.stop()


class _Retry(Exception):
    def __init__(self, error: BaseException, reresolve: bool = False):
        super().__init__(str(error))
        self.error = error
        self.reresolve = reresolve


class _ShortBody(Exception):
    """The response ended before the requested range did (a cut connection)."""
