"""Memory: what a model needs (weights + KV cache + compute overhead), what the machine has free, and
how many layers go to the GPUs.

Three pure pieces and one probe:

* :func:`estimate` — bytes a runner needs, from the GGUF header and the runner spec;
* :func:`place` — given an estimate and free memory, how many layers go to the GPUs and what stays in
  system RAM; says whether it fits;
* :class:`Memory` — free/total system RAM and per-GPU memory, as plain data;
* :func:`probe` — reads it from ``/proc/meminfo`` and the devices ggml reports.

Estimates are approximate by nature (as Ollama's are); they err on the large side.

Thread-safety: pure functions; ``probe`` may run in any thread.
"""
from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("pyollama.scheduler")

GIB = 1 << 30
MIB = 1 << 20

# Bytes per element of the KV cache types (ggml block sizes: q8_0 = 34 B per 32, q4_0 = 18 B per 32).
KV_BYTES = {"f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32, "f32": 4.0}
GPU_HEADROOM = 0.9      # keep 10 % of a GPU free for the driver, fragmentation and late allocations
FIXED_OVERHEAD = 64 * MIB


@dataclass(frozen=True)
class Gpu:
    name: str
    free: int
    total: int


@dataclass(frozen=True)
class Memory:
    """Free and total memory right now: system RAM and each GPU."""

    free: int
    total: int
    gpus: tuple[Gpu, ...] = ()

    @property
    def gpu_total(self) -> int:
        return sum(g.total for g in self.gpus)


@dataclass(frozen=True)
class Estimate:
    """What a runner needs. ``layers`` counts the repeating blocks plus the output layer (what
    ``num_gpu`` counts)."""

    weights: int
    kv: int
    graph: int
    layers: int

    @property
    def total(self) -> int:
        return self.weights + self.kv + self.graph

    def per_layer(self) -> int:
        return (self.weights + self.kv) // max(1, self.layers)


@dataclass(frozen=True)
class Placement:
    """Where a runner goes: ``gpu_layers`` (the resolved num_gpu), bytes in VRAM and in system RAM, and
    the KV cache type it loads with."""

    gpu_layers: int
    vram: int
    ram: int
    fits: bool
    reason: str = ""
    kv_cache_type: str = ""

    @property
    def total(self) -> int:
        return self.vram + self.ram


def _int(kv: Mapping[str, Any], key: str, default: int = 0) -> int:
    v = kv.get(key)
    if isinstance(v, bool):
        return default
    if isinstance(v, int):
        return v
    if isinstance(v, list) and v and all(isinstance(x, int) for x in v):
        return max(v)           # per-layer arrays (e.g. head_count_kv varying by layer)
    return default


def estimate(kv: Mapping[str, Any], *, file_size: int, adapters_size: int = 0, num_ctx: int, parallel: int,
             num_batch: int, kv_cache_type: str = "f16", n_vocab: int | None = None) -> Estimate:
    """Bytes a runner needs: the weight files, a KV cache of ``num_ctx × parallel`` cells and the compute
    graph (activations and the logits of one batch). ``kv`` is the GGUF header's key/values."""
    arch = str(kv.get("general.architecture", ""))
    n_layer = _int(kv, f"{arch}.block_count", 1)
    n_embd = _int(kv, f"{arch}.embedding_length", 0)
    n_head = _int(kv, f"{arch}.attention.head_count", 1) or 1
    n_head_kv = _int(kv, f"{arch}.attention.head_count_kv", n_head) or n_head
    head_k = _int(kv, f"{arch}.attention.key_length", n_embd // n_head if n_embd else 0)
    head_v = _int(kv, f"{arch}.attention.value_length", head_k)
    if n_vocab is None:
        tokens = kv.get("tokenizer.ggml.tokens")
        if isinstance(tokens, list):
            n_vocab = len(tokens)
        elif isinstance(getattr(tokens, "count", None), int):   # gguf_meta.SkippedArray: length only
            n_vocab = tokens.count
        else:
            n_vocab = _int(kv, f"{arch}.vocab_size", 32000)
    cells = num_ctx * max(1, parallel)
    kv_bytes = int(n_layer * cells * n_head_kv * (head_k + head_v) * KV_BYTES.get(kv_cache_type, 2.0))
    graph = FIXED_OVERHEAD + num_batch * (n_embd * 4 * 4 + n_vocab * 4)
    return Estimate(weights=file_size + adapters_size, kv=kv_bytes, graph=graph, layers=n_layer + 1)


def place(est: Estimate, mem: Memory, *, num_gpu: int = -1, reserved_ram: int = 0, reserved_vram: int = 0,
          gpu_overhead: int = 0) -> Placement:
    """Put as many layers on the GPUs as fit (``num_gpu=-1``) or exactly ``num_gpu``; the rest, and
    everything on a CPU-only machine, in system RAM. ``reserved_*`` is what already-loaded runners are
    booked for (their estimates), so a model that has not touched its memory yet still counts."""
    # Measured free memory already excludes what loaded runners touched; their bookings cover what they
    # have mapped but not touched yet. Take whichever is smaller rather than subtracting twice.
    ram_free = max(0, min(mem.free, mem.total - reserved_ram))
    gpu_free = sum(max(0, g.free - gpu_overhead) for g in mem.gpus)
    gpu_total = sum(max(0, g.total - gpu_overhead) for g in mem.gpus)
    vram_free = max(0, int(min(gpu_free, gpu_total - reserved_vram) * GPU_HEADROOM))
    layers = 0
    if mem.gpus:
        if num_gpu < 0:
            room = vram_free - est.graph
            layers = max(0, min(est.layers, room // max(1, est.per_layer()))) if room > 0 else 0
        else:
            layers = min(num_gpu, est.layers)
    frac = layers / est.layers
    vram = int((est.weights + est.kv) * frac) + (est.graph if layers else 0)
    ram = est.total - vram
    if mem.gpus and vram > vram_free and num_gpu >= 0:
        return Placement(layers, vram, ram, False,
                         f"num_gpu {num_gpu} needs {vram / GIB:.1f} GiB of GPU memory, "
                         f"{vram_free / GIB:.1f} GiB is free")
    if ram > ram_free:
        return Placement(layers, vram, ram, False,
                         f"model requires more system memory ({ram / GIB:.1f} GiB) than is available "
                         f"({ram_free / GIB:.1f} GiB)")
    return Placement(layers, vram, ram, True)


def _meminfo() -> tuple[int, int] | None:
    try:
        with open("/proc/meminfo") as f:
            fields = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f if ":" in line}
        return fields.get("MemAvailable", fields.get("MemFree", 0)), fields["MemTotal"]
    except (OSError, ValueError, KeyError, IndexError):
        return None


def _cgroup_limit() -> int | None:
    """A container's memory limit (cgroup v2), which /proc/meminfo does not show."""
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            v = f.read().strip()
        if v == "max":
            return None
        limit = int(v)
        with open("/sys/fs/cgroup/memory.current") as f:
            used = int(f.read().strip())
        return max(0, limit - used)
    except (OSError, ValueError):
        return None


@functools.cache
def total_ram() -> int:
    """This machine's memory in bytes (/proc/meminfo, else sysconf); it does not change while we run."""
    info = _meminfo()
    if info is not None:
        return info[1]
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


@dataclass
class Probe:
    """Reads free memory; ``devices`` is injectable (defaults to ``pyollama.backends()``). ``workers``
    (an :class:`pyollama.rpc.Pool`) adds the devices of RPC workers no runner holds, as GPUs named
    ``RPC[host:port]``."""

    devices: Any = None
    workers: Any = None

    def __call__(self) -> Memory:
        free = total = 0
        info = _meminfo()
        if info is not None:
            free, total = info
        limit = _cgroup_limit()
        if limit is not None:
            free = min(free, limit) if free else limit
        gpus: list[Gpu] = []
        try:
            devs = self.devices() if self.devices is not None else _backends()
        except Exception as e:  # noqa: BLE001 - no native build: CPU only, from /proc
            log.debug("device probe failed: %s", e)
            devs = []
        for d in devs:
            if d.get("type") == "cpu":
                if not total:
                    free, total = int(d.get("memory_free", 0)), int(d.get("memory_total", 0))
                continue
            if d.get("type") not in ("gpu", "igpu"):
                continue                    # accelerators such as BLAS hold no layers of their own
            # ggml's device name (CUDA0): what a load's device list takes
            gpus.append(Gpu(str(d.get("name") or d.get("description")), int(d.get("memory_free", 0)),
                            int(d.get("memory_total", 0))))
        if self.workers is not None:
            from pyollama.rpc import label

            gpus += [Gpu(label(w.endpoint, d.index), d.free, d.total)
                     for w in self.workers.available() for d in w.devices]
        if not total:
            total = total_ram()
            free = free or total
        return Memory(free=free, total=total, gpus=tuple(gpus))


def _backends() -> list[dict]:
    import pyollama

    return list(pyollama.backends(workers=False))


probe = Probe()
