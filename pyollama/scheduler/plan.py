"""From a stored model and a request's options to a :class:`LoadRequest`: the runner spec (what forces a
reload when it changes) and the memory estimate.

Option precedence is Ollama's: built-in defaults < the model's ``PARAMETER``s < the request's ``options``.
``num_ctx`` defaults to ``OLLAMA_CONTEXT_LENGTH`` or the VRAM tier and is clamped to the model's trained
context; ``num_parallel`` comes from the options/Modelfile or ``OLLAMA_NUM_PARALLEL`` (embedding models
always get 1).

Thread-safety: pure, apart from a cache of GGUF headers (blobs are content-addressed, so a path's header
never changes); safe from any thread.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pyollama.config import Config
from pyollama.errors import InvalidRequest, ModelLoadError
from pyollama.runner.types import RunnerSpec
from pyollama.scheduler.memory import estimate, total_ram
from pyollama.scheduler.scheduler import LoadRequest
from pyollama.store import gguf_meta

MIN_CTX = 4
MIN_CTX_VISION = 2048   # Ollama's floor for a model with a projector
MAX_PARALLEL = 256               # LLAMA_MAX_SEQ at the pin: sequences one context can hold
MAX_CELLS = (1 << 32) - 1        # n_ctx is a uint32_t in llama_context_params
MAX_DEVICES = 16                 # llama_max_devices() at the pin
MAX_DRAFT = 64                   # a longer draft costs more to verify than it can save
THREADS_PER_CPU = 4              # beyond this, more threads only contend; larger values are typos
log = logging.getLogger("pyollama.scheduler")


@functools.lru_cache(maxsize=64)
def _header(path: str, mtime_ns: int) -> gguf_meta.GGUFInfo:
    return gguf_meta.read(path, max_array=0, tensors=False)


def header(path: str | Path) -> gguf_meta.GGUFInfo:
    """The GGUF key/values of a weights file (arrays skipped), cached."""
    p = str(path)
    try:
        return _header(p, os.stat(p).st_mtime_ns)
    except OSError as e:
        raise ModelLoadError(f"cannot read model weights {p}: {e.strerror or e}") from None


def merged_options(model_params: Mapping[str, Any], options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Model ``PARAMETER``s overlaid by the request's (already validated) options."""
    return {**dict(model_params), **dict(options or {})}


def _int_opt(opts: Mapping[str, Any], key: str, default: int) -> int:
    v = opts.get(key)
    return default if v is None else int(v)


def tensor_split(value: Any) -> tuple[float, ...]:
    """The ``tensor_split`` option ("3,1", as llama.cpp's -ts): one non-negative share per device."""
    if value is None or value == "":
        return ()
    parts = [p.strip() for p in str(value).replace("/", ",").split(",")]
    try:
        shares = tuple(float(p) for p in parts)
    except ValueError:
        raise InvalidRequest(f'tensor_split must be numbers separated by commas (e.g. "3,1"), not {value!r}') from None
    if any(not x >= 0 or x == float("inf") for x in shares) or not any(shares):
        raise InvalidRequest(f"tensor_split needs shares that are not negative and not all zero, not {value!r}")
    if len(shares) > MAX_DEVICES:
        raise InvalidRequest(f"tensor_split has {len(shares)} shares; llama.cpp takes at most {MAX_DEVICES}")
    return shares


def runner_spec(model_path: str | Path, opts: Mapping[str, Any], cfg: Config, *, info: gguf_meta.GGUFInfo,
                adapters: tuple[str, ...] = (), total_vram: int = 0, draft: str | Path | None = None,
                projector: str | Path | None = None) -> RunnerSpec:
    """The RunnerSpec for ``opts`` (merged options); ``draft`` is the model's draft model and ``projector`` its
    vision projector, if it has them."""
    embedding = info.is_embedding
    num_ctx = _int_opt(opts, "num_ctx", 0)
    if num_ctx < 0:
        raise InvalidRequest(f"num_ctx must be positive (or 0 for the default), not {num_ctx}")
    num_ctx = max(num_ctx or cfg.default_num_ctx(total_vram), MIN_CTX)
    if projector and not embedding:
        num_ctx = max(num_ctx, MIN_CTX_VISION)      # room for an image or two, as Ollama
    trained = info.context_length
    if trained and num_ctx > trained:
        log.info("num_ctx %d is more than the model was trained for; using %d", num_ctx, trained)
        num_ctx = trained
    parallel = 1 if embedding else _int_opt(opts, "num_parallel", cfg.num_parallel)
    if not 1 <= parallel <= MAX_PARALLEL:
        raise InvalidRequest(f"num_parallel must be between 1 and {MAX_PARALLEL} (llama.cpp's sequence limit), "
                             f"not {parallel}")
    if num_ctx * parallel > MAX_CELLS:
        raise InvalidRequest(f"num_ctx {num_ctx} × num_parallel {parallel} is more context than llama.cpp "
                             f"addresses ({MAX_CELLS} cells)")
    # An encoder sees each input in one micro-batch, so its batch defaults to the context (Ollama also
    # gives embedding models a larger batch). A batch larger than the whole context buys nothing: llama.cpp
    # clamps it there too, and leaving it would size compute buffers for tokens that can never come.
    num_batch = _int_opt(opts, "num_batch", num_ctx if embedding else 512)
    if num_batch <= 0:
        raise InvalidRequest(f"num_batch must be positive, not {num_batch}")
    num_batch = min(num_batch, num_ctx * parallel)
    num_thread = _int_opt(opts, "num_thread", 0)
    cpus = os.cpu_count() or 1
    if not 0 <= num_thread <= THREADS_PER_CPU * cpus:
        raise InvalidRequest(f"num_thread must be between 0 (automatic) and {THREADS_PER_CPU * cpus} "
                             f"({THREADS_PER_CPU} per CPU; this machine has {cpus}), not {num_thread}")
    use_mmap = opts.get("use_mmap")
    # Ollama's draft_num_predict: 4 when the model has a draft model; 0 leaves the draft model unloaded.
    draft_n = _int_opt(opts, "draft_num_predict", 4) if draft and not embedding else 0
    if not 0 <= draft_n <= MAX_DRAFT:
        raise InvalidRequest(f"draft_num_predict must be between 0 and {MAX_DRAFT}, not {draft_n}")
    return RunnerSpec(
        model_path=str(model_path), adapters=tuple((str(a), 1.0) for a in adapters), num_ctx=num_ctx,
        num_batch=num_batch, num_gpu=_int_opt(opts, "num_gpu", -1), main_gpu=_int_opt(opts, "main_gpu", 0),
        num_thread=num_thread, use_mmap=True if use_mmap is None else bool(use_mmap), parallel=parallel,
        embedding=embedding, flash_attn=cfg.flash_attention, kv_cache_type=cfg.kv_cache_type or "f16",
        kv_adapt=not cfg.kv_cache_type, cache_ram=0 if embedding else _cache_ram(cfg),
        speculative="" if embedding or cfg.speculative == "off" else cfg.speculative, draft_max=cfg.draft_max,
        draft_model=str(draft) if draft_n else "", draft_num_predict=draft_n,
        tensor_split=tensor_split(opts.get("tensor_split")), projector=str(projector or ""),
        max_image_pixels=cfg.max_image_pixels)


def _cache_ram(cfg: Config) -> int:
    """``PYOLLAMA_CACHE_RAM``, else an eighth of the machine's memory, at most 8 GiB (llama-server's
    default), per loaded model."""
    return cfg.cache_ram if cfg.cache_ram is not None else min(8 << 30, total_ram() // 8)


def load_request(name: str, model_path: str | Path, opts: Mapping[str, Any], cfg: Config, *,
                 adapters: tuple[str, ...] = (), total_vram: int = 0, info: dict | None = None,
                 draft: str | Path | None = None, projector: str | Path | None = None) -> LoadRequest:
    """Everything the scheduler needs for one request. ``name`` is what ``/api/ps`` shows."""
    hdr = header(model_path)
    # The scheduler measures the model natively in this process: refuse the headers llama.cpp aborts on.
    gguf_meta.check_loadable(model_path)
    spec = runner_spec(model_path, opts, cfg, info=hdr, adapters=adapters, total_vram=total_vram, draft=draft,
                       projector=projector)
    # The projector's weights count with the adapters' (its compute buffer is small beside the model's).
    adapters_size = sum(os.path.getsize(a) for a in adapters + ((spec.projector,) if spec.projector else ())
                        if os.path.exists(a))
    est = estimate(hdr.kv, file_size=os.path.getsize(model_path), adapters_size=adapters_size,
                   num_ctx=spec.num_ctx, parallel=spec.parallel, num_batch=spec.num_batch,
                   kv_cache_type=spec.kv_cache_type)
    if spec.draft_model:
        # Loaded beside the target, with a context as large (its KV is in f16, as upstream's draft cache).
        gguf_meta.check_loadable(spec.draft_model)
        d = estimate(header(spec.draft_model).kv, file_size=os.path.getsize(spec.draft_model),
                     num_ctx=spec.num_ctx, parallel=spec.parallel, num_batch=spec.num_batch)
        est = dataclasses.replace(est, weights=est.weights + d.weights, kv=est.kv + d.kv, graph=est.graph + d.graph)
    return LoadRequest(key=str(model_path), name=name, spec=spec, estimate=est, info=dict(info or {}))
