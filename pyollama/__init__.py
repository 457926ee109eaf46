"""pyollama: a local LLM runtime over a pinned llama.cpp, compatible with Ollama's API.

Layers (see docs/architecture.md): `_native` (Cython over libllama) → `engine` → `runner` → `scheduler` →
`api`; beside them `templates`, `store` and `cli`. Importing `pyollama` is cheap: the native
extension loads on first use.
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "backends"]


def backends(workers: bool = True):
    """The compute devices ggml found (CPU variant, GPUs), with name, type and memory; with ``workers``,
    also the devices of the RPC workers in ``PYOLLAMA_RPC_SERVERS`` that answer now (named
    ``RPC[host:port]``, backend "RPC"; read over the network, not registered in this process)."""
    from pyollama import _native

    out = _native.devices()
    if workers:
        from pyollama import rpc
        from pyollama.config import setting

        for w in rpc.Pool(setting("RPC_SERVERS")).available():
            out += [{"name": rpc.label(w.endpoint, d.index), "description": w.endpoint, "type": "gpu",
                     "backend": "RPC", "memory_free": d.free, "memory_total": d.total, "device_id": None}
                    for d in w.devices]
    return out
