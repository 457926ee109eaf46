#!/usr/bin/env python3
"""Materialize the pinned upstream llama.cpp and ggml trees under vendor/.

The pin (vendor/pin.toml) names a PyPI source distribution that carries the upstream tree at
an exact commit. This script downloads it with pip (into a cache outside the repo), checks its
sha256, and extracts:

    vendor/llama.cpp/        the upstream tree, with ggml/ replaced by a link to ../ggml
    vendor/ggml/             upstream's ggml tree

Nothing here is committed; both folders are git-ignored. Run it again after moving the pin:
a stamp file records which sdist a tree came from, and a stale tree is replaced.

Stdlib only: the build backend calls it from an isolated build environment.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from pathlib import Path

VENDOR = Path(__file__).resolve().parent
STAMP = ".pyollama-pin"


class SyncError(RuntimeError):
    pass


def load_pin(path: Path = VENDOR / "pin.toml") -> dict:
    with open(path, "rb") as f:
        pin = tomllib.load(f)
    for key in ("package", "version", "filename", "sha256", "subdir"):
        if key not in pin.get("source", {}):
            raise SyncError(f"{path}: [source] lacks '{key}'")
    return pin


def cache_dir() -> Path:
    base = os.environ.get("PYOLLAMA_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "pyollama")
    return Path(base) / "vendor"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_sdist(pin: dict, log=print) -> Path:
    """Return a verified local copy of the pinned sdist, downloading it with pip if needed."""
    src = pin["source"]
    dest = cache_dir()
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / src["filename"]
    if path.exists() and sha256_of(path) == src["sha256"]:
        return path
    path.unlink(missing_ok=True)
    log(f"sync: downloading {src['package']}=={src['version']} (source distribution) with pip")
    # --no-build-isolation: pip only reads the sdist's metadata; an isolated build environment
    # would compile cmake from source because of --no-binary :all:.
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
           "--no-build-isolation", "--disable-pip-version-check", "-d", str(dest),
           f"{src['package']}=={src['version']}"]
    try:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    except (OSError, subprocess.CalledProcessError) as e:
        raise SyncError(f"pip download of {src['package']}=={src['version']} failed ({e}); "
                        "check network access to PyPI, or build against your own checkout "
                        "with PYOLLAMA_LLAMA_CPP_DIR=/path/to/llama.cpp") from e
    if not path.exists():
        raise SyncError(f"pip did not produce {path}")
    got = sha256_of(path)
    if got != src["sha256"]:
        path.unlink()
        raise SyncError(f"sha256 mismatch for {src['filename']}: expected {src['sha256']}, got {got}")
    return path


def stamp_of(pin: dict) -> str:
    return f"{pin['upstream']['commit']} {pin['source']['sha256']}\n"


def is_current(pin: dict, vendor: Path = VENDOR) -> bool:
    stamp = vendor / "llama.cpp" / STAMP
    return (stamp.exists() and stamp.read_text() == stamp_of(pin)
            and (vendor / "ggml" / "CMakeLists.txt").exists()
            and (vendor / "llama.cpp" / "include" / "llama.h").exists())


def _safe_members(tar: tarfile.TarFile, prefix: str):
    for m in tar.getmembers():
        name = m.name
        if not name.startswith(prefix):
            continue
        rel = name[len(prefix):]
        if not rel or rel.startswith("/") or ".." in Path(rel).parts:
            continue
        yield m.replace(name=rel)


def extract(sdist: Path, pin: dict, vendor: Path = VENDOR, log=print) -> None:
    """Replace vendor/llama.cpp and vendor/ggml with the tree from the sdist, atomically per folder."""
    subdir = pin["source"]["subdir"].strip("/")
    with tempfile.TemporaryDirectory(dir=vendor, prefix=".sync-") as tmp:
        tmpdir = Path(tmp)
        with tarfile.open(sdist) as tar:
            top = tar.getmembers()[0].name.split("/")[0]
            prefix = f"{top}/{subdir}/"
            members = list(_safe_members(tar, prefix))
            if not members:
                raise SyncError(f"{sdist.name} has no {subdir}/")
            tar.extractall(tmpdir / "llama.cpp", members=members, filter="tar")
        lc = tmpdir / "llama.cpp"
        if not (lc / "include" / "llama.h").exists() or not (lc / "ggml" / "CMakeLists.txt").exists():
            raise SyncError(f"{sdist.name}:{subdir} does not look like a llama.cpp tree")
        shutil.move(str(lc / "ggml"), str(tmpdir / "ggml"))
        # llama.cpp's CMake includes ggml/cmake/*.cmake by relative path: keep it reachable.
        os.symlink("../ggml", lc / "ggml")
        (lc / STAMP).write_text(stamp_of(pin))
        for name in ("ggml", "llama.cpp"):
            target = vendor / name
            if target.is_symlink() or target.is_file():
                target.unlink()
            elif target.exists():
                shutil.rmtree(target)
            os.replace(tmpdir / name, target)
    log(f"sync: vendor/llama.cpp and vendor/ggml at {pin['upstream']['commit'][:12]}")


def sync(force: bool = False, log=print) -> None:
    pin = load_pin()
    if not force and is_current(pin):
        return
    extract(fetch_sdist(pin, log=log), pin, log=log)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--force", action="store_true", help="re-extract even when the trees are current")
    ap.add_argument("--check", action="store_true", help="exit 1 when the trees are missing or stale")
    args = ap.parse_args(argv)
    if args.check:
        return 0 if is_current(load_pin()) else 1
    try:
        sync(force=args.force)
    except SyncError as e:
        print(f"sync: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
