"""pyollama: a local LLM runtime over a pinned llama.cpp, compatible with Ollama's API.

Layers (see docs/architecture.md): `_native` (Cython over libllama) → `engine` → `runner` → `scheduler` →
`api`; beside them `templates`, `store` and `cli`. Importing `pyollama` is cheap: the native
extension loads on first use.
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "backends"]


def backends():
    """The compute devices ggml found (CPU variant, GPUs), with name, type and memory."""
    from pyollama import _native

    return _native.devices()
