"""The scheduler's pure parts: keep_alive parsing, reload decisions, eviction choice, memory estimate and
placement, and the runner spec built from a model and options."""
from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from pyollama.config import Config
from pyollama.errors import InvalidRequest
from pyollama.runner.types import RunnerSpec
from pyollama.scheduler import (
    Estimate,
    Gpu,
    Memory,
    estimate,
    needs_reload,
    parse_keep_alive,
    pick_victim,
    place,
    plan,
)

GIB = 1 << 30


# --- keep_alive ------------------------------------------------------------------------------------
@pytest.mark.parametrize("value, seconds", [
    ("5m", 300.0), ("1h30m", 5400.0), ("1.5s", 1.5), ("300ms", 0.3), ("0", 0.0), ("0s", 0.0),
    (10, 10.0), (2.5, 2.5), (0, 0.0), (None, None),
    ("-1m", math.inf), (-1, math.inf), ("-1", None),
])
def test_keep_alive_forms(value, seconds):
    if value == "-1":
        with pytest.raises(InvalidRequest, match="missing unit"):
            parse_keep_alive(value)
        return
    assert parse_keep_alive(value) == seconds


@pytest.mark.parametrize("value", ["10", "abc", "5x", "", True, [1], {"a": 1}])
def test_keep_alive_rejects(value):
    with pytest.raises(InvalidRequest):
        parse_keep_alive(value)


def test_bare_number_string_names_the_missing_unit():
    with pytest.raises(InvalidRequest, match=r'time: missing unit in duration "10"'):
        parse_keep_alive("10")


# --- reload ----------------------------------------------------------------------------------------
def test_needs_reload_on_runner_options_only():
    base = RunnerSpec("/m.gguf", num_ctx=4096)
    assert not needs_reload(base, RunnerSpec("/m.gguf", num_ctx=4096))
    for change in ({"num_ctx": 8192}, {"num_batch": 256}, {"num_thread": 2}, {"use_mmap": False},
                   {"main_gpu": 1}, {"adapters": (("/a.gguf", 1.0),)}, {"parallel": 2}, {"num_gpu": 0}):
        assert needs_reload(base, RunnerSpec("/m.gguf", **{"num_ctx": 4096, **change})), change
    # num_gpu -1 (automatic) is satisfied by any placement
    assert not needs_reload(RunnerSpec("/m.gguf", num_gpu=20), RunnerSpec("/m.gguf", num_gpu=-1))


@dataclass
class S:
    key: str
    refcount: int
    keep_alive: float
    expires_at: float | None


def test_victim_is_idle_runner_expiring_first():
    a, b, c = S("a", 0, 600, 2000.0), S("b", 0, 60, 1100.0), S("c", 1, 5, None)
    assert pick_victim([a, b, c]) == (b, True)
    forever = S("f", 0, math.inf, None)
    assert pick_victim([forever, a]) == (a, True)


def test_victim_when_all_busy_is_the_shortest_keep_alive():
    a, b = S("a", 2, 600, None), S("b", 1, 60, None)
    assert pick_victim([a, b]) == (b, False)
    assert pick_victim([]) is None


# --- memory ----------------------------------------------------------------------------------------
def test_estimate_counts_kv_for_every_slot(smollm2_path):
    kv = plan.header(smollm2_path).kv
    one = estimate(kv, file_size=100, num_ctx=4096, parallel=1, num_batch=512)
    four = estimate(kv, file_size=100, num_ctx=4096, parallel=4, num_batch=512)
    # SmolLM2-135M: 30 layers, 3 KV heads of 64 dims, f16 → 30·4096·3·(64+64)·2 bytes per slot
    assert one.kv == 30 * 4096 * 3 * 128 * 2
    assert four.kv == 4 * one.kv
    assert one.layers == 31 and one.weights == 100
    q8 = estimate(kv, file_size=100, num_ctx=4096, parallel=1, num_batch=512, kv_cache_type="q8_0")
    assert q8.kv < one.kv


def test_place_cpu_only_fits_or_says_why():
    est = Estimate(weights=3 * GIB, kv=GIB, graph=0, layers=10)
    ok = place(est, Memory(free=8 * GIB, total=16 * GIB))
    assert ok.fits and ok.gpu_layers == 0 and ok.vram == 0 and ok.ram == 4 * GIB
    # what loaded runners booked counts even when the probe still shows it free
    booked = place(est, Memory(free=8 * GIB, total=8 * GIB), reserved_ram=6 * GIB)
    assert not booked.fits and "4.0 GiB" in booked.reason and "2.0 GiB" in booked.reason


def test_place_offloads_layers_that_fit():
    est = Estimate(weights=9 * GIB, kv=GIB, graph=0, layers=10)        # 1 GiB per layer
    p = place(est, Memory(free=64 * GIB, total=64 * GIB, gpus=(Gpu("g", 5 * GIB, 8 * GIB),)))
    assert p.fits and p.gpu_layers == 4                                  # 4.5 GiB usable → 4 layers
    full = place(est, Memory(free=64 * GIB, total=64 * GIB, gpus=(Gpu("g", 40 * GIB, 40 * GIB),)))
    assert full.gpu_layers == 10 and full.ram == 0
    forced = place(est, Memory(free=64 * GIB, total=64 * GIB, gpus=(Gpu("g", 2 * GIB, 8 * GIB),)), num_gpu=10)
    assert not forced.fits and "num_gpu 10" in forced.reason
    overhead = place(est, Memory(free=64 * GIB, total=64 * GIB, gpus=(Gpu("g", 5 * GIB, 8 * GIB),)),
                     gpu_overhead=2 * GIB)
    assert overhead.gpu_layers == 2


def test_probe_reads_this_machine():
    from pyollama.scheduler.memory import Probe

    m = Probe(devices=lambda: [{"type": "gpu", "name": "X", "description": "X", "memory_free": 5,
                                "memory_total": 8}])()
    assert 0 < m.free <= m.total and m.gpus == (Gpu("X", 5, 8),)


# --- runner spec from a model and options -------------------------------------------------------
def test_runner_spec_defaults_and_precedence(smollm2_path):
    info = plan.header(smollm2_path)
    cfg = Config()
    s = plan.runner_spec(smollm2_path, {}, cfg, info=info)
    assert (s.num_ctx, s.num_batch, s.parallel, s.num_gpu, s.embedding) == (4096, 512, 1, -1, False)
    merged = plan.merged_options({"num_ctx": 2048, "temperature": 0.2}, {"num_ctx": 1024})
    assert plan.runner_spec(smollm2_path, merged, cfg, info=info).num_ctx == 1024
    # clamped to the trained context (8192 for SmolLM2), never below 4
    assert plan.runner_spec(smollm2_path, {"num_ctx": 100000}, cfg, info=info).num_ctx == 8192
    assert plan.runner_spec(smollm2_path, {"num_ctx": 1}, cfg, info=info).num_ctx == 4
    assert plan.runner_spec(smollm2_path, {}, Config(context_length=2048), info=info).num_ctx == 2048
    assert plan.runner_spec(smollm2_path, {}, cfg, info=info, total_vram=30 * GIB).num_ctx == 8192
    assert plan.runner_spec(smollm2_path, {}, Config(num_parallel=3), info=info).parallel == 3
    assert plan.runner_spec(smollm2_path, {"num_parallel": 2}, Config(num_parallel=3), info=info).parallel == 2
    with pytest.raises(InvalidRequest):
        plan.runner_spec(smollm2_path, {"num_batch": 0}, cfg, info=info)


def test_runner_spec_prompt_cache_and_speculation(smollm2_path):
    from pyollama.scheduler.memory import total_ram

    info = plan.header(smollm2_path)
    s = plan.runner_spec(smollm2_path, {}, Config(), info=info)
    assert s.cache_ram == min(8 * GIB, total_ram() // 8) > 0 and s.speculative == ""
    s = plan.runner_spec(smollm2_path, {}, Config(cache_ram=0, speculative="ngram-mod", draft_max=5), info=info)
    assert (s.cache_ram, s.speculative, s.draft_max) == (0, "ngram-mod", 5)


def test_runner_spec_vision_settings(smollm2_path):
    """A projector raises num_ctx to Ollama's vision floor and the image size limit travels from the server's
    Config to the runner (which checks each image's decoded size)."""
    info = plan.header(smollm2_path)
    s = plan.runner_spec(smollm2_path, {"num_ctx": 512}, Config(max_image_pixels=1000), info=info,
                         projector="/m/mmproj.gguf")
    assert (s.projector, s.num_ctx, s.max_image_pixels) == ("/m/mmproj.gguf", plan.MIN_CTX_VISION, 1000)
    assert plan.runner_spec(smollm2_path, {"num_ctx": 512}, Config(), info=info).num_ctx == 512
