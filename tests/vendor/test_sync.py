"""vendor/sync.py: hash check, extraction layout, stale detection, hostile archives — offline,
with a small stand-in sdist built here."""
from __future__ import annotations

import hashlib
import importlib.util
import io
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sync():
    spec = importlib.util.spec_from_file_location("vendor_sync", REPO / "vendor" / "sync.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _sdist(path: Path, extra: dict[str, bytes] | None = None) -> str:
    files = {"pkg-1.0/vendor/llama.cpp/include/llama.h": b"// llama.h\n",
             "pkg-1.0/vendor/llama.cpp/CMakeLists.txt": b"project(llama)\n",
             "pkg-1.0/vendor/llama.cpp/ggml/CMakeLists.txt": b"project(ggml)\n",
             "pkg-1.0/vendor/llama.cpp/ggml/include/ggml.h": b"// ggml.h\n",
             "pkg-1.0/setup.py": b"",
             **(extra or {})}
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _pin(sha: str) -> dict:
    return {"upstream": {"commit": "0" * 40},
            "source": {"package": "pkg", "version": "1.0", "filename": "pkg-1.0.tar.gz", "sha256": sha,
                       "subdir": "vendor/llama.cpp"}}


def test_extract_layout_and_stamp(sync, tmp_path):
    sha = _sdist(tmp_path / "pkg-1.0.tar.gz")
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    pin = _pin(sha)
    assert not sync.is_current(pin, vendor)
    sync.extract(tmp_path / "pkg-1.0.tar.gz", pin, vendor, log=lambda *a: None)
    assert (vendor / "llama.cpp" / "include" / "llama.h").read_text() == "// llama.h\n"
    assert (vendor / "ggml" / "include" / "ggml.h").exists()          # ggml moved out …
    assert (vendor / "llama.cpp" / "ggml").is_symlink()                # … and linked back for upstream's CMake
    assert (vendor / "llama.cpp" / "ggml" / "CMakeLists.txt").read_text() == "project(ggml)\n"
    assert sync.is_current(pin, vendor)
    assert not sync.is_current(_pin("f" * 64), vendor)                 # a moved pin makes the tree stale
    sync.extract(tmp_path / "pkg-1.0.tar.gz", pin, vendor, log=lambda *a: None)   # re-extract replaces
    assert sync.is_current(pin, vendor)


def test_cached_sdist_with_wrong_hash_is_not_used(sync, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    (cache / "vendor").mkdir(parents=True)
    sha = _sdist(cache / "vendor" / "pkg-1.0.tar.gz")
    monkeypatch.setenv("PYOLLAMA_CACHE", str(cache))
    assert sync.fetch_sdist(_pin(sha), log=lambda *a: None) == cache / "vendor" / "pkg-1.0.tar.gz"
    # a different pinned hash: the cached file is discarded and pip is asked (and fails: no such package)
    with pytest.raises(sync.SyncError):
        sync.fetch_sdist(_pin("0" * 64) | {"source": {**_pin("0" * 64)["source"],
                                                      "package": "pyollama-no-such-package-xyz"}},
                         log=lambda *a: None)
    assert not (cache / "vendor" / "pkg-1.0.tar.gz").exists()


def test_archive_without_the_tree_is_rejected(sync, tmp_path):
    p = tmp_path / "empty.tar.gz"
    with tarfile.open(p, "w:gz") as tar:
        info = tarfile.TarInfo("pkg-1.0/README")
        tar.addfile(info, io.BytesIO(b""))
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    with pytest.raises(sync.SyncError, match="has no vendor/llama.cpp"):
        sync.extract(p, _pin("x"), vendor, log=lambda *a: None)


def test_traversal_members_are_skipped(sync, tmp_path):
    sha = _sdist(tmp_path / "pkg-1.0.tar.gz", {"pkg-1.0/vendor/llama.cpp/../../../escape.txt": b"x"})
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    sync.extract(tmp_path / "pkg-1.0.tar.gz", _pin(sha), vendor, log=lambda *a: None)
    assert not (tmp_path / "escape.txt").exists() and not list(tmp_path.rglob("escape.txt"))
