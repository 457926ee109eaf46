"""Locate llama.cpp's own tools (llama-bench, llama-server, …) built from the same pinned tree.

They are built beside the extension when PYOLLAMA_BUILD_TOOLS=ON (scripts/bootstrap.sh does);
tests use them as the reference for token identity, bench/ for side-by-side speed. Search order:
$PYOLLAMA_TOOLS_DIR, the build folder recorded at build time, the folder the extension was linked in.
"""
from __future__ import annotations

import os
from pathlib import Path


def _candidates() -> list[Path]:
    dirs = []
    env = os.environ.get("PYOLLAMA_TOOLS_DIR")
    if env:
        dirs.append(Path(env))
    try:
        from pyollama import _native
    except ImportError:
        return dirs
    ext = Path(_native.__file__)
    info = ext.parent / "lib" / "build_info.txt"
    if info.exists():
        for line in info.read_text().splitlines():
            key, _, value = line.partition("=")
            if key == "tools_dir" and value:
                dirs.append(Path(value))
    dirs.append(ext.resolve().parent)
    return dirs


def find_tool(name: str) -> Path | None:
    """Path of an upstream executable such as "llama-server", or None when not built."""
    for d in _candidates():
        p = d / name
        if p.is_file() and os.access(p, os.X_OK):
            return p
    return None
