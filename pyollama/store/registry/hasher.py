"""Hashing a blob while it downloads: the written prefix of the partial file, read back from disk.

Thread-safety: one hasher thread per download; ``wake`` and ``stop`` from any thread.
"""
from __future__ import annotations

import hashlib
import mmap
import threading
from typing import TYPE_CHECKING

from pyollama.errors import StoreError

if TYPE_CHECKING:
    from pyollama.store.registry.download import BlobDownload


class PrefixHasher(threading.Thread):
    """Hashes the written prefix of the partial file (read back from the file, so what is verified is
    what is on disk) while later parts are still arriving; the commit then only hashes what is left."""

    def __init__(self, job: BlobDownload):
        super().__init__(name=f"sha256-{job.digest[7:19]}", daemon=True)
        self.job = job
        self.sha = hashlib.sha256()
        self.done = 0
        self.wake = threading.Event()
        self._halt = threading.Event()

    def prefix(self) -> int:
        """Bytes from 0 that are written: whole parts, then the first unfinished part's completed."""
        pos = 0
        for p in self.job.parts:
            if p.offset != pos:
                break
            pos = p.offset + p.completed
            if p.completed < p.size:
                break
        return pos

    def run(self) -> None:
        partial = self.job.partial
        if partial is None:
            return
        total = self.job.total
        step = 8 << 20
        try:
            # Hash straight from the page cache through a read-only map: no copy into a buffer.
            with mmap.mmap(partial.fd, total, prot=mmap.PROT_READ) as mm:
                view = memoryview(mm)
                try:
                    while not self._halt.is_set() and self.done < total:
                        upto = min(self.prefix(), self.done + step)
                        if upto <= self.done:
                            self.wake.wait(0.05)
                            self.wake.clear()
                            continue
                        self.sha.update(view[self.done:upto])
                        self.done = upto
                finally:
                    view.release()
        except (OSError, ValueError, StoreError):   # the partial was closed under us: commit re-hashes
            self.done = -1

    def stop(self) -> None:
        self._halt.set()
        self.wake.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join()
