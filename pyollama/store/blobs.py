"""Content-addressed blob store: ``blobs/sha256-<hex>``, written atomically, verified on commit.

Digests are checked against a strict pattern *before* any path is built from them, so a digest string can
never name a file outside ``blobs/``. References use ``sha256:<hex>``; file names use ``sha256-<hex>``.

The registry client (pull/push) uses three entry points:

* :meth:`BlobStore.put_stream` / :meth:`BlobStore.put_file` — stream bytes in, hash while writing,
  optionally check against an expected digest, commit atomically;
* :meth:`BlobStore.partial` — a resumable, random-access download target (``sha256-<hex>-partial`` plus
  ``-partial-<N>`` part-state files, Ollama's names) with ``write_at`` (``os.pwrite``, safe from several
  threads), ``save_part``/``load_parts`` and ``commit`` (hash, verify, rename, clean up);
* :meth:`BlobStore.path` / :meth:`BlobStore.open` to read for upload.

Thread-safety: all methods may be called from any thread; a :class:`PartialBlob` may be written by several
threads at once (each writing its own byte range).
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pyollama.errors import BlobBusy, BlobNotFound, DigestMismatch, InvalidDigest, StoreError
from pyollama.store import fsutil
from pyollama.store.names import DIGEST_RE

BLOB_FILE_RE = re.compile(r"sha256-([0-9a-f]{64})")


def normalize_digest(digest: str) -> str:
    """``sha256:<hex>`` or ``sha256-<hex>`` (any case) → ``sha256:<lowercase hex>``; else InvalidDigest."""
    m = DIGEST_RE.fullmatch(digest) if isinstance(digest, str) else None
    if not m:
        raise InvalidDigest("invalid digest format")
    return "sha256:" + m.group(1).lower()


@dataclass(frozen=True)
class Blob:
    digest: str      # "sha256:<hex>"
    size: int
    created: bool    # False when an identical blob was already stored


class BlobStore:
    def __init__(self, directory: Path):
        self.dir = Path(directory)

    # -- paths ------------------------------------------------------------------------------------
    def path(self, digest: str) -> Path:
        """The file of ``digest`` (validated first). The file may not exist."""
        return self.dir / normalize_digest(digest).replace(":", "-", 1)

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def size(self, digest: str) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise BlobNotFound(f'blob "{normalize_digest(digest)}" not found') from None

    def open(self, digest: str) -> BinaryIO:
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise BlobNotFound(f'blob "{normalize_digest(digest)}" not found') from None

    def read_bytes(self, digest: str) -> bytes:
        with self.open(digest) as f:
            return f.read()

    def digests(self) -> list[str]:
        """Every stored blob, as ``sha256:<hex>`` (temp and partial files excluded)."""
        if not self.dir.is_dir():
            return []
        return sorted("sha256:" + m.group(1) for p in self.dir.iterdir()
                      if (m := BLOB_FILE_RE.fullmatch(p.name)))

    # -- writing ----------------------------------------------------------------------------------
    def put_bytes(self, data: bytes, expected: str | None = None) -> Blob:
        return self.put_stream([data], expected)

    def put_stream(self, chunks: Iterable[bytes], expected: str | None = None) -> Blob:
        """Store the concatenation of ``chunks``. With ``expected``, a different hash raises DigestMismatch
        and stores nothing (Ollama's ``POST /api/blobs`` semantics)."""
        want = normalize_digest(expected) if expected else None
        fsutil.makedirs(self.dir)
        with fsutil.AtomicWriter(self.dir / "pending") as w:
            # A network body comes in whatever pieces the socket gave (often 64 KiB): gather them into
            # CHUNK-sized writes, so the write count (and the crash tests' crash points) never depends
            # on how the network split the bytes.
            buf = bytearray()
            for c in chunks:
                if not buf and len(c) >= fsutil.CHUNK:
                    w.write(c)          # already big (a file copied in CHUNKs): no extra copy
                    continue
                buf += c
                if len(buf) >= fsutil.CHUNK:
                    w.write(buf)
                    buf = bytearray()
            if buf:
                w.write(buf)
            got = w.digest()
            if want and got != want:
                raise DigestMismatch(f'digest mismatch, expected "{want}", got "{got}"', want=want, got=got)
            created = w.commit(self.path(got), replace=False)
            return Blob(got, w.size, created)

    def put_file(self, src: str | os.PathLike[str], expected: str | None = None) -> Blob:
        """Copy a file into the store (hashing while copying). The source is never linked: a later edit of
        the user's file must not change a stored blob."""
        with open(src, "rb") as f:
            return self.put_stream(fsutil.copy_chunks(f), expected)

    def adopt(self, path: Path, expected: str | None = None) -> Blob:
        """Move a finished file that already lives in ``self.dir`` (e.g. a quantizer's output written to a
        temp name here) into place under its digest, without copying it."""
        path = Path(path)
        if path.parent.resolve() != self.dir.resolve():
            raise StoreError(f"{path} is not in {self.dir}")
        h = hashlib.sha256()
        size = 0
        with open(path, "rb") as f:
            for c in fsutil.copy_chunks(f):
                h.update(c)
                size += len(c)
            os.fsync(f.fileno())
        got = "sha256:" + h.hexdigest()
        if expected and normalize_digest(expected) != got:
            os.unlink(path)
            raise DigestMismatch(f'digest mismatch, expected "{normalize_digest(expected)}", got "{got}"',
                                 want=normalize_digest(expected), got=got)
        target = self.path(got)
        if target.exists():
            os.unlink(path)
            return Blob(got, size, False)
        os.chmod(path, 0o644)
        os.replace(path, target)
        fsutil.crash_point(f"rename {target.name}")
        fsutil.fsync_dir(self.dir)
        return Blob(got, size, True)

    def temp_path(self, suffix: str = "") -> Path:
        """A fresh temp name inside ``blobs/`` for a writer that produces a file itself (quantize,
        convert); pass it to :meth:`adopt` when done. Stale ones are removed by prune."""
        fsutil.makedirs(self.dir)
        return fsutil.temp_name(self.dir, suffix)

    def verify(self, digest: str) -> bool:
        """Re-hash a stored blob and compare with its name."""
        want = normalize_digest(digest)
        h = hashlib.sha256()
        with self.open(want) as f:
            for c in fsutil.copy_chunks(f):
                h.update(c)
        return "sha256:" + h.hexdigest() == want

    def remove(self, digest: str) -> bool:
        return fsutil.remove_durably(self.path(digest))

    # -- resumable downloads ------------------------------------------------------------------------
    def partial(self, digest: str, size: int, *, wait: bool = True) -> PartialBlob:
        """Open (or resume) the partial download of ``digest``; see :class:`PartialBlob`."""
        return PartialBlob(self, normalize_digest(digest), size, wait=wait)


class PartialBlob:
    """A download in progress: ``blobs/sha256-<hex>-partial`` (sparse, pre-sized) plus part-state files.

    The file is locked (``flock``) for the lifetime of this object, so two processes never write the same
    partial; inside one process the registry client shares one PartialBlob between waiters.

    Usage::

        with store.blobs.partial(digest, size) as p:
            for n, part in enumerate(plan):          # the client's own part plan
                state = p.load_parts().get(n)        # resume: what was saved before a crash
                ... p.write_at(offset, data) ...     # from any thread
                p.save_part(n, {"N": n, "Offset": ..., "Size": ..., "Completed": ...})
            p.commit()                               # hash, verify, rename, remove part files
    """

    def __init__(self, store: BlobStore, digest: str, size: int, *, wait: bool = True):
        if size < 0:
            raise StoreError("negative blob size")
        self.store = store
        self.digest = digest
        self.size = size
        self.final = store.path(digest)
        self.path = self.final.with_name(self.final.name + "-partial")
        fsutil.makedirs(store.dir)
        while True:
            self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                os.close(self._fd)
                self._fd = None
                raise BlobBusy(f"{digest} is being downloaded by another process") from None
            # The holder we waited for may have committed (renamed this very inode to the final blob
            # name) or discarded it; writing into that inode would corrupt a verified blob. Lock the
            # file that the name points to now.
            try:
                same = os.stat(self.path).st_ino == os.fstat(self._fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(self._fd)
        if os.fstat(self._fd).st_size != size:
            # A new file (or one of another size): part states beside it describe some earlier file,
            # one renamed to the final blob by a process killed before it removed them (and the blob
            # pruned since) or a discarded one. Trusted, they would claim bytes this file never got.
            self._remove_parts()
            os.ftruncate(self._fd, size)   # sparse: only written ranges take space

    @property
    def fd(self) -> int:
        if self._fd is None:
            raise StoreError("partial blob is closed")
        return self._fd

    def write_at(self, offset: int, data: bytes | memoryview) -> int:
        """``pwrite`` ``data`` at ``offset``; thread-safe for disjoint ranges. Returns bytes written."""
        if offset < 0 or offset + len(data) > self.size:
            raise StoreError(f"write of {len(data)} bytes at {offset} is outside the blob's "
                             f"{self.size} bytes")
        view = memoryview(data)
        done = 0
        while done < len(view):
            done += os.pwrite(self.fd, view[done:], offset + done)
        fsutil.crash_point(f"pwrite {self.path.name} {offset + done}")
        return done

    def sync(self) -> None:
        """fsync the data written so far (call before saving a part's Completed count)."""
        os.fsync(self.fd)

    def part_path(self, n: int) -> Path:
        return self.path.with_name(f"{self.path.name}-{int(n)}")

    def save_part(self, n: int, state: dict) -> None:
        """Atomically record part ``n``'s progress (JSON, Ollama's ``-partial-N`` files)."""
        fsutil.write_atomic(self.part_path(n), json.dumps(state).encode())

    def load_parts(self) -> dict[int, dict]:
        out: dict[int, dict] = {}
        prefix = self.path.name + "-"
        for p in self.store.dir.glob(self.path.name + "-*"):
            suffix = p.name[len(prefix):]
            if suffix.isdigit():
                with contextlib.suppress(OSError, ValueError):
                    out[int(suffix)] = json.loads(p.read_text())
        return out

    def remove_parts(self) -> None:
        """Drop the part-state files (a downloader that changes its part plan)."""
        self._remove_parts()

    def _remove_parts(self) -> None:
        for p in self.store.dir.glob(self.path.name + "-*"):
            if p.name[len(self.path.name) + 1:].isdigit():
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(p)

    def commit(self, *, hasher: hashlib._Hash | None = None, hashed: int = 0) -> Blob:
        """Hash the whole file; on a match rename it to its final name, else delete it and raise
        DigestMismatch (Ollama's ``digest mismatch, file must be downloaded again`` message).

        ``hasher`` is a sha256 object that already covers the file's first ``hashed`` bytes (a downloader
        hashes the written prefix while the rest is still arriving); hashing goes on from there."""
        os.fsync(self.fd)
        h = hasher if hasher is not None else hashlib.sha256()
        buf = bytearray(4 << 20)
        view = memoryview(buf)
        pos = hashed if hasher is not None else 0
        while pos < self.size:
            n = os.preadv(self.fd, [view[: min(len(buf), self.size - pos)]], pos)
            if n <= 0:
                break
            h.update(view[:n])
            pos += n
        got = "sha256:" + h.hexdigest()
        if got != self.digest:
            self.discard()
            raise DigestMismatch("digest mismatch, file must be downloaded again: "
                                 f"want {self.digest}, got {got}", want=self.digest, got=got)
        created = not self.final.exists()
        if created:
            os.replace(self.path, self.final)
            fsutil.crash_point(f"rename {self.final.name}")
        else:
            os.unlink(self.path)
        self._remove_parts()
        fsutil.fsync_dir(self.store.dir)
        self.close()
        return Blob(self.digest, self.size, created)

    def discard(self) -> None:
        """Drop the partial file and its part states."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self._remove_parts()
        self.close()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)   # releases the flock
            self._fd = None

    def __enter__(self) -> PartialBlob:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
