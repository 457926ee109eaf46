"""Placement from upstream's measured figures (pyollama.scheduler.fit, _native.device_memory/fit_params).

The figures are real: libllama measures the model file with a no_alloc load. The GPUs are injected
(this machine has none): their free memory is set relative to the measured need, so each case lands
where it should whatever the exact byte counts are."""
from __future__ import annotations

import dataclasses

import pytest

from pyollama import _native
from pyollama.runner.types import RunnerSpec
from pyollama.scheduler import fit
from pyollama.scheduler.memory import GIB, MIB, Gpu, Memory

RAM = Memory(free=64 * GIB, total=64 * GIB)


@pytest.fixture(scope="module")
def tiny_model_path(tmp_path_factory, vocab_dir):
    """A small random llama whose head size (64) the quantized KV types divide."""
    from tests.tiny_gguf import write_random_llama

    return write_random_llama(tmp_path_factory.mktemp("fit") / "fit-llama.gguf", vocab_dir / "ggml-vocab-llama-spm.gguf",
                              n_embd=256, n_layer=4, n_head=4, n_head_kv=2, n_ff=512, n_ctx=32768)


def _spec(path, **kw) -> RunnerSpec:
    kw.setdefault("num_ctx", 4096)
    kw.setdefault("kv_adapt", True)
    return RunnerSpec(model_path=str(path), **kw)


def _gpus(*free: int) -> Memory:
    return dataclasses.replace(RAM, gpus=tuple(Gpu(f"GPU{i}", f, f + GIB) for i, f in enumerate(free)))


def _need(spec, **changes) -> int:
    """Bytes of a full offload as the planner counts them (measured here without GPUs: everything)."""
    return fit.measure_native(fit.config_of(spec, n_gpu_layers=-1, **changes)).total


M = fit.GPU_MARGIN


def test_measurement_equals_what_a_real_load_allocates(tiny_model_path):
    """Upstream's no_alloc figures are what the context really allocates (the CPU backend here)."""
    measured = _native.device_memory(tiny_model_path, n_ctx=2048, n_seq_max=2, n_batch=256, n_ubatch=256)
    host = measured["devices"][-1]
    assert host["device"] == "host" and measured["n_layer"] > 0
    model = _native.Model(tiny_model_path)
    ctx = _native.Context(model, n_ctx=2048, n_seq_max=2, n_batch=256, n_ubatch=256)
    real = ctx.allocated()[-1]
    assert real["device"] == "host"
    assert (real["model"], real["context"], real["compute"]) == (host["model"], host["context"], host["compute"])
    assert host["context"] > 0 and host["compute"] > 0 and host["model"] > 0


def test_quantized_kv_measures_smaller(tiny_model_path):
    s = _spec(tiny_model_path, num_ctx=8192)
    f16 = fit.measure_native(fit.config_of(s))
    q8 = fit.measure_native(fit.config_of(s, kv_cache_type="q8_0", flash_attn="on"))
    q4 = fit.measure_native(fit.config_of(s, kv_cache_type="q4_0", flash_attn="on"))
    ctx = [sum(u.context for u in m.devices) for m in (f16, q8, q4)]
    # ggml block sizes: q8_0 = 34 bytes per 32 values, q4_0 = 18 (f16: 64)
    assert ctx[1] == ctx[0] * 34 // 64 and ctx[2] == ctx[0] * 18 // 64


def test_cpu_only_books_the_measured_total(tiny_model_path):
    s = _spec(tiny_model_path)
    p, loaded = fit.plan(s, RAM)
    assert p.fits and p.gpu_layers == 0 and p.vram == 0 and p.ram == _need(s) and loaded == s
    small = dataclasses.replace(RAM, free=_need(s) - 1)
    p, _ = fit.plan(s, small)
    assert not p.fits and "more system memory" in p.reason


def test_one_gpu_with_room_takes_every_layer(tiny_model_path):
    s = _spec(tiny_model_path)
    p, loaded = fit.plan(s, _gpus(_need(s) + M + MIB))
    layers = fit.measure_native(fit.config_of(s)).n_layer + 1
    assert p.fits and p.gpu_layers == layers and p.vram == _need(s) and p.kv_cache_type == "f16"
    assert loaded.kv_cache_type == "f16" and loaded.fit_margin == 0 and loaded.devices == ()


def test_too_small_for_f16_kv_but_fine_with_q8_0(tiny_model_path):
    s = _spec(tiny_model_path, num_ctx=16384)          # the KV cache dominates
    q8 = _need(s, kv_cache_type="q8_0", flash_attn="on")
    assert q8 < _need(s)
    p, loaded = fit.plan(s, _gpus(q8 + M + MIB))
    assert p.fits and p.kv_cache_type == "q8_0" and p.vram == q8
    assert loaded.kv_cache_type == "q8_0" and loaded.flash_attn == "on" and loaded.fit_margin == 0
    # only q4_0 fits: q4_0
    q4 = _need(s, kv_cache_type="q4_0", flash_attn="on")
    p, loaded = fit.plan(s, _gpus(q4 + M + MIB))
    assert p.kv_cache_type == "q4_0" and loaded.kv_cache_type == "q4_0"


def test_kv_type_set_by_the_user_is_kept_and_layers_go_to_the_cpu(tiny_model_path):
    s = _spec(tiny_model_path, num_ctx=16384, kv_adapt=False)
    q8 = _need(s, kv_cache_type="q8_0", flash_attn="on")
    p, loaded = fit.plan(s, _gpus(q8 + M + MIB))
    layers = fit.measure_native(fit.config_of(s)).n_layer + 1
    assert p.fits and p.kv_cache_type == "f16" and 0 <= p.gpu_layers < layers
    assert loaded.kv_cache_type == "f16"
    # flash attention off: no quantized cache either
    s2 = _spec(tiny_model_path, num_ctx=16384, flash_attn="off")
    p, loaded = fit.plan(s2, _gpus(q8 + M + MIB))
    assert p.kv_cache_type == "f16" and loaded.kv_cache_type == "f16"


def test_too_small_for_the_model_offloads_part_through_upstreams_fit(tiny_model_path):
    s = _spec(tiny_model_path, kv_adapt=False)
    need = _need(s)
    m = fit.measure_native(fit.config_of(s))
    compute = sum(u.compute for u in m.devices)         # needed on the GPU whatever the layer count
    p, loaded = fit.plan(s, _gpus(M + compute + (need - compute) // 2))
    layers = m.n_layer + 1
    assert p.fits and 0 < p.gpu_layers < layers and 0 < p.vram < need and p.ram == need - p.vram
    assert loaded.fit_margin == M and loaded.num_gpu == -1      # the runner asks upstream's planner
    p, loaded = fit.plan(s, _gpus(M))                            # no room at all: CPU only
    assert p.fits and p.gpu_layers == 0 and loaded.num_gpu == 0 and loaded.fit_margin == 0


def test_gpu_overhead_and_loaded_runners_shrink_the_room(tiny_model_path):
    s = _spec(tiny_model_path, kv_adapt=False)
    free = _need(s) + M + MIB
    p, _ = fit.plan(s, _gpus(free))
    assert p.gpu_layers == fit.measure_native(fit.config_of(s)).n_layer + 1
    p, loaded = fit.plan(s, _gpus(free), gpu_overhead=2 * MIB)
    assert p.vram < _need(s) and loaded.fit_margin == M + 2 * MIB
    p, _ = fit.plan(s, _gpus(free), reserved_vram=GIB + free)
    assert p.vram < _need(s)


def test_two_gpus_prefer_one_unless_spread(tiny_model_path):
    s = _spec(tiny_model_path)
    need = _need(s)
    mem = _gpus(need + M + MIB, need + M + 2 * MIB)
    p, loaded = fit.plan(s, mem)
    assert p.gpu_layers > 0 and loaded.devices == ("GPU1",)          # the one with more room
    p, loaded = fit.plan(s, mem, spread=True)
    assert loaded.devices == ()                                       # every GPU
    # neither alone holds it, both together do: spread
    half = _gpus(need // 2 + M + MIB, need // 2 + M + MIB)
    p, loaded = fit.plan(s, half)
    assert p.vram == need and loaded.devices == () and p.kv_cache_type == "f16"


def test_num_gpu_set_by_the_user(tiny_model_path):
    s = _spec(tiny_model_path, num_gpu=1)
    p, loaded = fit.plan(s, _gpus(_need(s) + M))
    assert p.fits and p.gpu_layers == 1 and loaded.num_gpu == 1 and loaded.fit_margin == 0
    p, _ = fit.plan(_spec(tiny_model_path, num_gpu=99), _gpus(M + 1))
    assert not p.fits and "num_gpu 99 needs" in p.reason


def test_fit_params_on_cpu_leaves_every_layer_where_it_is(tiny_model_path):
    f = _native.fit_params(tiny_model_path, 1 << 30, n_ctx=2048)
    assert f.status == "fit" and f.n_gpu_layers == -1 and f.n_overrides == 0
    m = _native.Model(tiny_model_path, fit=f)             # loads with upstream's placement
    assert m.n_params > 0
    with pytest.raises(ValueError, match="margins"):
        _native.fit_params(tiny_model_path, [-1])
    with pytest.raises(TypeError, match="unknown planning option"):
        _native.device_memory(tiny_model_path, n_gpu=3)


def test_the_scheduler_loads_what_the_plan_chose(tiny_model_path):
    """Through the scheduler: an injected GPU too small for the f16 cache → the runner gets q8_0."""
    from pyollama.scheduler import Estimate, LoadRequest
    from tests.scheduler.helpers import World, run, started

    s = _spec(tiny_model_path, num_ctx=16384)
    world = World()
    world.memory = _gpus(_need(s, kv_cache_type="q8_0", flash_attn="on") + M + MIB)
    req = LoadRequest(key=s.model_path, name="fit", spec=s, estimate=Estimate(1, 1, 1, 5))

    async def go():
        async with started(world) as sched:
            async with await sched.acquire(req) as lease:
                return lease.entry

    entry = run(go())
    assert world.loads[0].kv_cache_type == "q8_0" and entry.spec.kv_cache_type == "q8_0"
    assert entry.placement.kv_cache_type == "q8_0" and entry.placement.vram > 0
