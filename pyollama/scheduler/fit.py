"""Placement from upstream's own numbers: what a runner needs per device, measured by libllama with a
no_alloc load (``_native.device_memory``, the figures ``llama-server --fit`` works from), and the
decisions made with them:

* does the model fit, on which GPUs, fully or partly (how many layers), beside what is loaded;
* the KV cache type: when all layers would fit with a q8_0 (or q4_0) KV cache but not with f16, and
  flash attention is allowed, the quantized cache is chosen before layers are pushed to the CPU —
  unless the user set ``OLLAMA_KV_CACHE_TYPE``;
* a partial offload leaves the exact layer split to upstream's planner in the runner
  (``_native.fit_params`` with the same margins), which sees the memory free at load time.

``measure`` is injectable (tests pass devices and figures they choose); by default it is the native
measurement, cached per (file, options). :func:`memory.place` (the header-based estimate) remains the
fallback where the measurement cannot run (no native build, an unreadable file).

Thread-safety: :func:`measure_native` serializes itself (upstream swaps its global logger while it
measures); :func:`plan` is pure given ``measure``.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

from pyollama.scheduler.memory import GIB, MIB, Memory, Placement

log = logging.getLogger("pyollama.scheduler")

# Kept free on every GPU beyond OLLAMA_GPU_OVERHEAD: the CUDA context and cuBLAS workspaces live
# outside the measured buffers, and allocations fragment.
GPU_MARGIN = 512 * MIB
KV_FALLBACKS = ("q8_0", "q4_0")
# Device types whose bytes count as VRAM; the rest (the host, CPU buffers such as repacked weights)
# is system memory.
GPU_TYPES = ("gpu", "igpu")


@dataclass(frozen=True)
class Usage:
    """Bytes one device holds for a runner."""

    device: str
    type: str              # "gpu", "igpu", "accel", "cpu" …, or "host" (system memory)
    model: int
    context: int
    compute: int

    @property
    def total(self) -> int:
        return self.model + self.context + self.compute


@dataclass(frozen=True)
class Measured:
    """Per-device figures for one configuration; ``devices`` are the offload devices, then "host"."""

    devices: tuple[Usage, ...]
    n_layer: int

    @property
    def vram(self) -> int:
        return sum(u.total for u in self.devices if u.type in GPU_TYPES)

    @property
    def ram(self) -> int:
        return sum(u.total for u in self.devices if u.type not in GPU_TYPES)

    @property
    def total(self) -> int:
        return self.vram + self.ram

    @property
    def seen_gpus(self) -> bool:
        """Measured where the GPUs were visible (else: figures for devices this process cannot see)."""
        return any(u.type in GPU_TYPES for u in self.devices)

    @property
    def gpu_need(self) -> int:
        """GPU bytes of a full offload: upstream's own split where the GPUs were seen, else everything."""
        return self.vram if self.seen_gpus else self.total


# What to measure: a RunnerSpec's memory-relevant fields, plus the offload asked for.
@dataclass(frozen=True)
class Config:
    model_path: str
    num_ctx: int              # per slot
    parallel: int
    num_batch: int
    kv_cache_type: str
    flash_attn: str | bool      # as RunnerSpec and _native take it: auto/on/off (or a bool)
    embedding: bool
    n_gpu_layers: int = -1
    devices: tuple[str, ...] = ()


Measure = Callable[[Config], Measured]

_lock = threading.Lock()


@functools.lru_cache(maxsize=128)
def _measure_cached(cfg: Config, mtime_ns: int) -> Measured:
    from pyollama import _native

    with _lock:
        r = _native.device_memory(
            cfg.model_path, n_gpu_layers=cfg.n_gpu_layers, n_ctx=cfg.num_ctx * cfg.parallel,
            n_seq_max=cfg.parallel, n_batch=cfg.num_batch, n_ubatch=cfg.num_batch, type_k=cfg.kv_cache_type,
            type_v=cfg.kv_cache_type, flash_attn=cfg.flash_attn, embeddings=cfg.embedding,
            devices=list(cfg.devices) or None)
    return Measured(tuple(Usage(d["device"], d["type"], d["model"], d["context"], d["compute"])
                          for d in r["devices"]), int(r["n_layer"]))


def measure_native(cfg: Config) -> Measured:
    """Upstream's no_alloc measurement (0.3–1 s for small models), cached per file and options."""
    return _measure_cached(cfg, os.stat(cfg.model_path).st_mtime_ns)


def config_of(spec, **changes) -> Config:
    """The measurement config of a RunnerSpec."""
    cfg = Config(model_path=spec.model_path, num_ctx=spec.num_ctx, parallel=spec.parallel,
                 num_batch=spec.num_batch, kv_cache_type=spec.kv_cache_type, flash_attn=spec.flash_attn,
                 embedding=spec.embedding, n_gpu_layers=spec.num_gpu)
    return dataclasses.replace(cfg, **changes)


def plan(spec, mem: Memory, *, measure: Measure = measure_native, reserved_ram: int = 0, reserved_vram: int = 0, gpu_overhead: int = 0,
         spread: bool = False) -> tuple[Placement, object]:
    """Where a runner for ``spec`` goes given free memory ``mem`` and what loaded runners have booked
    but may not have touched yet. Returns the placement and the spec to load (KV type, GPU choice and
    the fit margin filled in). The KV type adapts only where ``spec.kv_adapt``."""
    ram_free = max(0, min(mem.free, mem.total - reserved_ram))
    base = measure(config_of(spec, n_gpu_layers=-1 if spec.num_gpu < 0 else spec.num_gpu))
    layers = base.n_layer + 1                       # repeating blocks + the output layer, as num_gpu counts
    if not mem.gpus:
        return _check_ram(Placement(0, 0, base.total, True, "", spec.kv_cache_type), ram_free), spec

    margin = gpu_overhead + GPU_MARGIN
    usable = {g.name: max(0, g.free - margin) for g in mem.gpus}
    cap = max(0, sum(max(0, g.total - margin) for g in mem.gpus) - reserved_vram)
    room = min(sum(usable.values()), cap)

    if spec.num_gpu >= 0:                           # the user chose the layer count
        n = min(spec.num_gpu, layers)
        vram = base.vram if base.seen_gpus else base.total * n // layers
        if n and vram > room:
            return Placement(n, vram, base.total - vram, False,
                             f"num_gpu {spec.num_gpu} needs {vram / GIB:.1f} GiB of GPU memory, "
                             f"{room / GIB:.1f} GiB is free", spec.kv_cache_type), spec
        return _check_ram(Placement(n, vram, base.total - vram, True, "", spec.kv_cache_type), ram_free), spec

    kv_types = [spec.kv_cache_type]
    if spec.kv_adapt and str(spec.flash_attn).lower() not in ("off", "false"):
        kv_types += [k for k in KV_FALLBACKS if k != spec.kv_cache_type]
    for kv in kv_types:
        try:
            m = base if kv == spec.kv_cache_type else measure(config_of(spec, n_gpu_layers=-1, kv_cache_type=kv,
                                                                           flash_attn="on"))
        except Exception as e:  # noqa: BLE001 - e.g. a head size the quantized type cannot divide
            log.debug("KV cache %s not possible for %s: %s", kv, spec.model_path, e)
            continue
        # a tensor_split spreads the layers over the GPUs it names, as llama.cpp's -ts does
        chosen = _full_offload(m, mem, usable, room, spread or bool(spec.tensor_split))
        if chosen is None:
            continue
        devices, vram = chosen
        new = dataclasses.replace(spec, kv_cache_type=kv, devices=devices,
                                  flash_attn="on" if kv != spec.kv_cache_type else spec.flash_attn)
        if kv != spec.kv_cache_type:
            log.info("KV cache %s instead of %s: every layer fits on the GPU with it (%.2f GiB needed, "
                     "%.2f GiB free)", kv, spec.kv_cache_type, vram / GIB, room / GIB)
        return _check_ram(Placement(layers, vram, m.total - vram, True, "", kv), ram_free), new

    # Partial offload: layers by the measured per-layer cost; the runner lets upstream's planner
    # place them exactly with the same margin.
    gpu = base.gpu_need
    if base.seen_gpus:
        fixed = sum(u.compute for u in base.devices if u.type in GPU_TYPES)
    else:
        fixed = max(u.compute for u in base.devices)
    per_layer = max(1, (gpu - fixed) // layers)
    n = max(0, min(layers - 1, (room - fixed) // per_layer)) if room > fixed else 0
    vram = n * per_layer + (fixed if n else 0)
    new = dataclasses.replace(spec, fit_margin=margin) if n else dataclasses.replace(spec, num_gpu=0)
    return _check_ram(Placement(n, vram, base.total - vram, True, "", spec.kv_cache_type), ram_free), new


def with_workers(spec, mem: Memory):
    """``spec`` with the RPC workers its runner must register: those whose devices it may use (named in
    ``devices``, or all of ``mem``'s when it offloads to every GPU), none when it stays on the CPU."""
    from pyollama.rpc import endpoint_of

    names = spec.devices or tuple(g.name for g in mem.gpus)
    eps = [] if spec.num_gpu == 0 else [endpoint_of(n) for n in names if endpoint_of(n)]
    return dataclasses.replace(spec, rpc_servers=tuple(dict.fromkeys(eps)))


def _full_offload(m: Measured, mem: Memory, usable: dict[str, int], room: int,
                  spread: bool) -> tuple[tuple[str, ...], int] | None:
    """(devices, bytes) of a full offload that fits, preferring one GPU unless ``spread``."""
    if not spread and len(mem.gpus) > 1:
        # One GPU if it can hold everything (the one with most room), as Ollama does.
        for g in sorted(mem.gpus, key=lambda g: -usable[g.name]):
            if m.gpu_need <= min(usable[g.name], room):
                return (g.name,), m.gpu_need
    if m.seen_gpus:
        if all(u.total <= usable.get(u.device, room) for u in m.devices if u.type in GPU_TYPES) and m.vram <= room:
            return (), m.vram
        return None
    return ((), m.total) if m.total <= room else None


def _check_ram(p: Placement, ram_free: int) -> Placement:
    if p.ram > ram_free:
        return dataclasses.replace(
            p, fits=False, reason=f"model requires more system memory ({p.ram / GIB:.1f} GiB) than is "
                                  f"available ({ram_free / GIB:.1f} GiB)")
    return p
