"""Crash safety: SIGKILL a create + copy at every crash point; the store shows the old or the new state.

The writer runs in a subprocess with ``PYOLLAMA_STORE_CRASH_AT=N`` (pyollama/store/fsutil.py), which
kills it at the N-th crash point: after every chunk written to a temp file, every fsync, every rename, every
unlink. A first run with ``PYOLLAMA_STORE_CRASH_TRACE`` counts the points.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from store_helpers import run

from pyollama.store import Store, create_from_modelfile, show
from pyollama.store.blobs import BLOB_FILE_RE
from tests.tiny_gguf import write_tiny_gguf

CHILD = """
import sys
from pyollama.store import Store, create_from_modelfile
store = Store(sys.argv[1])
for _ in create_from_modelfile(store, "m", f"FROM {sys.argv[2]}\\nSYSTEM new\\nPARAMETER seed 7\\n"):
    pass
store.copy("m", "m-copy")
"""


def _run_child(root: Path, gguf: Path, env_extra: dict[str, str]) -> int:
    env = {**os.environ, **env_extra, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    p = subprocess.run([sys.executable, "-c", CHILD, str(root), str(gguf)], env=env, capture_output=True,
                       timeout=120, check=False)
    if p.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(p.stderr.decode())
    return p.returncode


def _manifest_bytes(store: Store, name: str) -> bytes | None:
    p = store.root / "manifests" / "registry.ollama.ai" / "library" / name / "latest"
    return p.read_bytes() if p.exists() else None


def _check_consistent(store: Store) -> None:
    for p in store.blobs.dir.iterdir():
        m = BLOB_FILE_RE.fullmatch(p.name)
        if m:   # a blob under its final name is always complete
            assert hashlib.sha256(p.read_bytes()).hexdigest() == m.group(1), p.name
    for name in store.names():
        for d in store.manifest(name).blob_digests():
            assert store.blobs.has(d), f"{name} references missing {d}"


@pytest.mark.slow
def test_kill_at_every_point_leaves_old_or_new_state(tmp_path: Path) -> None:
    old_gguf = write_tiny_gguf(tmp_path / "old.gguf", seed=1, size_kib=2500)     # ~2.5 MiB: 3 write chunks
    new_gguf = write_tiny_gguf(tmp_path / "new.gguf", seed=2, size_kib=2500)
    template = tmp_path / "template"
    base = Store(template)
    run(create_from_modelfile(base, "m", f"FROM {old_gguf}\nSYSTEM old\n"))
    old = _manifest_bytes(base, "m")

    ref = tmp_path / "ref"
    shutil.copytree(template, ref)
    trace = tmp_path / "trace.txt"
    assert _run_child(ref, new_gguf, {"PYOLLAMA_STORE_CRASH_TRACE": str(trace)}) == 0
    points = trace.read_text().splitlines()
    assert len(points) >= 20, points
    new = _manifest_bytes(Store(ref), "m")
    assert new != old and _manifest_bytes(Store(ref), "m-copy") == new

    seen = {"old": 0, "new": 0}
    for n in range(1, len(points) + 1):
        root = tmp_path / f"crash-{n}"
        shutil.copytree(template, root)
        assert _run_child(root, new_gguf, {"PYOLLAMA_STORE_CRASH_AT": str(n)}) == -signal.SIGKILL, points[n - 1]
        store = Store(root)
        _check_consistent(store)
        m = _manifest_bytes(store, "m")
        assert m in (old, new), f"kill at {points[n - 1]}: half-written manifest"
        seen["old" if m == old else "new"] += 1
        assert _manifest_bytes(store, "m-copy") in (None, new), points[n - 1]
        assert show(store, "m")["system"] in ("old", "new")
        # The next start's prune removes what the killed writer left behind.
        store.prune(min_age=3600)
        left = [p.name for p in store.blobs.dir.iterdir() if not BLOB_FILE_RE.fullmatch(p.name)]
        assert left == [], f"kill at {points[n - 1]}: temp files left: {left}"
        used = set().union(*(store.manifest(x).blob_digests() for x in store.names()))
        assert set(store.blobs.digests()) == used
        shutil.rmtree(root)
    assert seen["old"] > 0 and seen["new"] > 0, seen
