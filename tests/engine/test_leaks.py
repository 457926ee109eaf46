"""Creating and freeing native objects many times keeps the process size flat."""
from __future__ import annotations

import gc
import os

import numpy as np
import pytest

from pyollama import _native

PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    gc.collect()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def _churn(model, n):
    for i in range(n):
        ctx = _native.Context(model, n_ctx=256, n_batch=32, n_ubatch=32, n_threads=1)
        b = _native.Batch(32, n_seq_max=2)
        b.add_sequence([1, 450, 4996, 17354], 0, 0)
        ctx.decode(b)
        chain = _native.SamplerChain([_native.Sampler.penalties(64, 1.1), _native.Sampler.top_k(40),
                                      _native.Sampler.temp(0.8), _native.Sampler.dist(i)])
        chain.sample(ctx, -1)
        py = _native.SamplerChain([_native.python_sampler(lambda c: None), _native.Sampler.greedy()])
        py.sample(ctx, -1)
        cand = _native.Candidates.from_logits(ctx.logits(-1))
        view = ctx.logits(-1)
        del view, cand, py, chain, b
        ctx.close()


@pytest.mark.slow
def test_contexts_samplers_batches_do_not_leak(tiny_model_path):
    model = _native.Model(tiny_model_path)
    _churn(model, 30)                     # warm up allocator pools and caches
    before = _rss()
    _churn(model, 200)
    grown = _rss() - before
    assert grown < 16 * 2**20, f"RSS grew by {grown / 2**20:.1f} MiB over 200 cycles"


def test_views_keep_their_owner_alive(tiny_model_path):
    model = _native.Model(tiny_model_path)
    ctx = _native.Context(model, n_ctx=256, n_batch=32)
    b = _native.Batch(32)
    b.add_sequence([1, 450, 4996], 0, 0)
    ctx.decode(b)
    view = ctx.logits(-1)
    expected = view.copy()
    del ctx, b                            # the view still references the context
    gc.collect()
    np.testing.assert_array_equal(view, expected)
