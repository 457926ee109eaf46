"""Crash-safe file primitives: temp file in the target directory → write (+hash) → fsync → rename → fsync dir.

A reader sees either the old file or the complete new one, never a prefix: the final name only ever
appears through ``os.replace`` of a fully written and fsynced temp file, and the directory is fsynced
afterwards so the rename itself survives a power cut.

Temp files are named ``.tmp-<pid>-<random>`` so that a later prune can tell a dead writer's leftovers
from a live writer's work in progress (see :func:`is_stale_temp`).

Test hook (deliberately tiny, read once at import): ``PYOLLAMA_STORE_CRASH_AT=N`` SIGKILLs the process
at the N-th crash point (every chunk written, every fsync, every rename),
``PYOLLAMA_STORE_CRASH_ON=<label>`` at the first one with exactly that label (a point named rather than
counted: its number can shift with thread timing), and ``PYOLLAMA_STORE_CRASH_TRACE=<file>``
appends one line per crash point, so a test can count the points and then kill a writer at each of them
(tests/store/test_crash.py, tests/api/test_server_kill.py).

Thread-safety: every function may be called from any thread; the crash counter is process-wide.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import hashlib
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 20
TEMP_PREFIX = ".tmp-"

_CRASH_AT = int(os.environ.get("PYOLLAMA_STORE_CRASH_AT", "0") or 0)
_CRASH_TRACE = os.environ.get("PYOLLAMA_STORE_CRASH_TRACE", "")
_CRASH_ON = os.environ.get("PYOLLAMA_STORE_CRASH_ON", "")
_crash_lock = threading.Lock()
_crash_count = 0


def crash_point(label: str) -> None:
    """A place where the test hook may kill the process (no-op unless the env vars are set)."""
    global _crash_count
    if not _CRASH_AT and not _CRASH_TRACE and not _CRASH_ON:
        return
    with _crash_lock:
        _crash_count += 1
        n = _crash_count
        if _CRASH_TRACE:
            with open(_CRASH_TRACE, "a") as f:
                f.write(f"{n} {label}\n")
    if (_CRASH_AT and n == _CRASH_AT) or (_CRASH_ON and label == _CRASH_ON):
        os.kill(os.getpid(), signal.SIGKILL)


def temp_name(directory: Path, stem: str = "") -> Path:
    return directory / f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(6)}{stem}"


def temp_pid(name: str) -> int | None:
    """The writer pid encoded in a temp file name, or None if ``name`` is not one of ours."""
    if not name.startswith(TEMP_PREFIX):
        return None
    pid, _, _ = name[len(TEMP_PREFIX):].partition("-")
    return int(pid) if pid.isdigit() else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale_temp(path: Path, min_age: float) -> bool:
    """A temp file whose writer is gone, or one untouched for ``min_age`` seconds."""
    pid = temp_pid(path.name)
    if pid is not None and pid != os.getpid() and not pid_alive(pid):
        return True
    try:
        return time.time() - path.stat().st_mtime >= min_age
    except FileNotFoundError:
        return False


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as e:  # some filesystems (e.g. certain network mounts) refuse directory fsync
        if e.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def makedirs(directory: Path) -> None:
    """mkdir -p that fsyncs each parent it had to create a child in, so new directories are durable."""
    missing: list[Path] = []
    d = directory
    while not d.exists():
        missing.append(d)
        d = d.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=0o755)
        except FileExistsError:
            pass
        fsync_dir(d.parent)


class AtomicWriter:
    """Write a file under a temp name in ``target``'s directory, hashing as it goes; ``commit`` renames.

    Use as a context manager: leaving the block without ``commit`` (an exception) removes the temp file.
    """

    def __init__(self, target: Path, *, mode: int = 0o644):
        self.target = target
        makedirs(target.parent)
        self.tmp = temp_name(target.parent)
        self._fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        self.sha256 = hashlib.sha256()
        self.size = 0
        self._closed = False

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        self.sha256.update(data)
        self.size += len(data)
        crash_point(f"write {self.target.name} {self.size}")

    def digest(self) -> str:
        return "sha256:" + self.sha256.hexdigest()

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self._fd)

    def flush(self) -> None:
        """fsync the temp file (its content is durable, still under the temp name)."""
        os.fsync(self._fd)
        crash_point(f"fsync {self.target.name}")

    def commit(self, target: Path | None = None, *, replace: bool = True) -> bool:
        """fsync, rename to ``target`` (default: the constructor's), fsync the directory.

        With ``replace=False`` an existing target is kept (content-addressed blobs: same name, same bytes)
        and the temp file is dropped; returns whether this call created the target.
        """
        target = target or self.target
        self.flush()
        self._close()
        if not replace and target.exists():
            os.unlink(self.tmp)
            return False
        os.replace(self.tmp, target)
        crash_point(f"rename {target.name}")
        fsync_dir(target.parent)
        crash_point(f"fsync-dir {target.name}")
        return True

    def abort(self) -> None:
        self._close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)

    def __enter__(self) -> AtomicWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or not self._closed:
            self.abort()


def write_atomic(target: Path, data: bytes) -> None:
    """Replace ``target`` with ``data`` atomically (written in two halves so a crash test can cut it)."""
    with AtomicWriter(target) as w:
        half = len(data) // 2
        w.write(data[:half])
        w.write(data[half:])
        w.commit()


def copy_chunks(src: BinaryIO, chunk: int = CHUNK) -> Iterator[bytes]:
    while True:
        b = src.read(chunk)
        if not b:
            return
        yield b


def remove_durably(path: Path) -> bool:
    """unlink + fsync the directory. Returns False if the file was already gone."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    crash_point(f"unlink {path.name}")
    fsync_dir(path.parent)
    return True


class FileLock:
    """An ``flock`` on a lock file: shared for writers, exclusive for garbage collection.

    Each instance opens its own descriptor, so two threads of one process exclude each other too.
    """

    def __init__(self, path: Path):
        self.path = path

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def exclusive(self, timeout: float | None = None) -> Iterator[bool]:
        """Yields True when the lock was taken; False when ``timeout`` expired first (the caller skips)."""
        fd = self._open()
        try:
            if timeout is None:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield True
                return
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        yield False
                        return
                    time.sleep(0.05)
            yield True
        finally:
            os.close(fd)

    def _open(self) -> int:
        makedirs(self.path.parent)
        return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)


def _load_sync_file_range():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        f = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    f.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    f.restype = ctypes.c_int
    return f


_sync_file_range = _load_sync_file_range() if sys.platform.startswith("linux") else None


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Start (not wait for) writeback of a just-written range, so the fsync before the final rename has
    little left to flush (Linux ``sync_file_range(SYNC_FILE_RANGE_WRITE)``; elsewhere a no-op)."""
    if _sync_file_range is not None:
        _sync_file_range(fd, offset, length, 2)
