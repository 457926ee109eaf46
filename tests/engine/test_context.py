"""Context, Batch and KVCache: decoding, errors by return code, zero-copy outputs, state."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from pyollama import _native
from pyollama.errors import BatchFullError, ContextError, InvalidBatchError, NoKVSlotError


@pytest.fixture(scope="module")
def model(tiny_model_path):
    return _native.Model(tiny_model_path)


@pytest.fixture
def ctx(model):
    c = _native.Context(model, n_ctx=512, n_batch=64, n_ubatch=64, n_seq_max=2, n_threads=2)
    yield c
    c.close()


def _prompt(model, text="The quick brown fox"):
    return model.vocab.tokenize(text)


def test_sizes(ctx):
    assert ctx.n_ctx == 512 and ctx.n_batch == 64 and ctx.n_ubatch == 64 and ctx.n_seq_max == 2
    assert ctx.n_ctx_seq == 256                    # split between sequences (not unified)
    assert ctx.n_threads == 2


@pytest.mark.parametrize("n_ctx", [0, -5, 2**40, "4096", 1.5])
def test_bad_n_ctx(model, n_ctx):
    with pytest.raises(ContextError, match="n_ctx"):
        _native.Context(model, n_ctx=n_ctx)


def test_huge_n_ctx_fails_cleanly(model):
    # ~2 GiB of KV per 100k tokens for this model; 2**31 tokens cannot be allocated.
    with pytest.raises(ContextError, match="failed to create a context"):
        _native.Context(model, n_ctx=2**31 - 1)


@pytest.mark.parametrize("kw", [dict(n_seq_max=0), dict(n_seq_max=10_000), dict(type_k="q9"),
                                dict(flash_attn="maybe"), dict(pooling="max"), dict(n_batch=0),
                                dict(n_threads=0)])
def test_bad_params(model, kw):
    with pytest.raises(ContextError):
        _native.Context(model, n_ctx=64, **kw)


def test_decode_and_logits_view(ctx, model):
    toks = _prompt(model)
    b = _native.Batch(64)
    b.add_sequence(toks, 0, 0)
    assert b.n_outputs == 1 and b.output_indices() == [len(toks) - 1]
    ctx.decode(b)
    lg = ctx.logits(-1)
    assert lg.dtype == np.float32 and lg.shape == (32000,) and np.isfinite(lg).all()
    assert np.shares_memory(lg, ctx.logits(-1))        # a view, not a copy
    with pytest.raises(IndexError):
        ctx.logits(0)                                  # no output requested for token 0
    assert ctx.all_logits().shape == (1, 32000)


def test_batch_bigger_than_n_batch(ctx, model):
    b = _native.Batch(200)
    b.add_sequence(list(range(100, 200)), 0, 0)
    with pytest.raises(InvalidBatchError, match="exceeds n_batch"):
        ctx.decode(b)


def test_batch_capacity(model):
    b = _native.Batch(4)
    b.add_sequence([5, 6, 7], 0)
    with pytest.raises(BatchFullError, match="at most 4"):
        b.add_sequence([8, 9], 3)
    b.reset()
    assert len(b) == 0 and b.n_outputs == 0


def test_invalid_tokens_and_sequences(ctx):
    b = _native.Batch(8, n_seq_max=2)
    b.add(999_999, 0)
    with pytest.raises(InvalidBatchError, match="out of range"):
        ctx.decode(b)
    b.reset()
    b.add(5, 0, seq_ids=7)
    with pytest.raises(InvalidBatchError, match="sequence id 7"):
        ctx.decode(b)
    b.reset()
    with pytest.raises(InvalidBatchError, match="empty"):
        ctx.decode(b)
    with pytest.raises(ValueError):
        b.add(5, 0, seq_ids=[0, 1, 1])                 # more ids than n_seq_max


def test_n_ctx_is_padded_like_upstream(model):
    assert _native.Context(model, n_ctx=100).n_ctx == 256


def test_kv_full_raises_no_slot(model):
    c = _native.Context(model, n_ctx=256, n_batch=256, n_ubatch=256)
    b = _native.Batch(256)
    b.add_sequence([100 + i for i in range(256)], 0, 0)
    c.decode(b)
    b.reset()
    b.add(5, 256, 0, True)
    with pytest.raises(NoKVSlotError):
        c.decode(b)


def test_kv_cache_ops(ctx, model):
    toks = _prompt(model)
    n = len(toks)
    b = _native.Batch(64, n_seq_max=2)
    b.add_sequence(toks, 0, 0)
    ctx.decode(b)
    mem = ctx.memory
    assert (mem.seq_pos_min(0), mem.seq_pos_max(0)) == (0, n - 1)
    assert mem.seq_pos_max(1) == -1
    mem.seq_cp(0, 1)
    assert mem.seq_pos_max(1) == n - 1
    assert mem.seq_rm(1, 2, -1) is True
    assert mem.seq_pos_max(1) == 1
    assert mem.can_shift
    mem.seq_add(0, 0, -1, 3)
    assert mem.seq_pos_min(0) == 3
    mem.seq_keep(1)           # with a KV stream per sequence, only seq 1's stream is touched
    assert mem.seq_pos_max(1) == 1
    for bad in (2, -1, 10_000):
        with pytest.raises(ValueError, match="out of range"):
            mem.seq_pos_max(bad)
        with pytest.raises(ValueError, match="out of range"):
            mem.seq_cp(0, bad)
    assert mem.seq_rm(-1, 0, -1) is True      # -1 = every sequence
    mem.clear()
    assert mem.seq_pos_max(1) == -1


def test_continuation_equals_one_shot(model):
    """Logits after decoding a prompt in two chunks equal those of one chunk (same ubatch path)."""
    toks = _prompt(model, "one two three four five six seven eight")
    results = []
    for split in (len(toks), 3):
        c = _native.Context(model, n_ctx=128, n_batch=64, n_threads=1)
        b = _native.Batch(64)
        b.add_sequence(toks[:split], 0, 0, output_last=split == len(toks))
        c.decode(b)
        if split < len(toks):
            b.reset()
            b.add_sequence(toks[split:], split, 0)
            c.decode(b)
        results.append(np.array(c.logits(-1)))
    assert int(np.argmax(results[0])) == int(np.argmax(results[1]))
    np.testing.assert_allclose(results[0], results[1], rtol=1e-3, atol=1e-3)


def test_sequence_state_roundtrip(ctx, model):
    toks = _prompt(model)
    b = _native.Batch(64, n_seq_max=2)
    b.add_sequence(toks, 0, 0)
    ctx.decode(b)
    before = np.array(ctx.logits(-1))
    state = ctx.seq_state(0)
    assert len(state) > 0
    ctx.memory.clear()
    ctx.set_seq_state(state, 1)
    assert ctx.memory.seq_pos_max(1) == len(toks) - 1
    # continuing from the restored sequence gives the same next-token logits as the original
    nxt = int(np.argmax(before))
    for seq in (1,):
        b.reset()
        b.add(nxt, len(toks), seq, True)
        ctx.decode(b)
    restored = np.array(ctx.logits(-1))
    ctx.memory.clear()
    b.reset()
    b.add_sequence(toks + [nxt], 0, 0)
    ctx.decode(b)
    np.testing.assert_allclose(restored, ctx.logits(-1), rtol=1e-3, atol=1e-3)
    with pytest.raises(ContextError):
        ctx.set_seq_state(b"garbage" * 10, 0)


def test_state_file(tmp_path, ctx, model):
    toks = _prompt(model)
    b = _native.Batch(64)
    b.add_sequence(toks, 0, 0)
    ctx.decode(b)
    ctx.save_state(tmp_path / "s.bin", toks)
    ctx.memory.clear()
    assert ctx.load_state(tmp_path / "s.bin") == toks
    assert ctx.memory.seq_pos_max(0) == len(toks) - 1


def test_abort_from_another_thread(model):
    c = _native.Context(model, n_ctx=512, n_batch=512, n_ubatch=512, n_threads=1)
    b = _native.Batch(512)
    b.add_sequence([100 + i % 1000 for i in range(512)], 0, 0)
    hits = []
    for _ in range(20):                               # the race is timing-dependent: try a few
        c.memory.clear()
        t = threading.Timer(0.0005, c.abort)
        t.start()
        try:
            c.decode(b)
        except Exception as e:                        # DecodeAbortedError when the abort landed in time
            hits.append(type(e).__name__)
        t.join()
    assert set(hits) <= {"DecodeAbortedError"}
    c.memory.clear()
    c.decode(b)                                       # the flag is cleared by the next decode


def test_closed_context(model):
    c = _native.Context(model, n_ctx=64)
    c.close()
    c.close()
    with pytest.raises(ValueError, match="closed"):
        c.n_ctx


def test_batch_from_numpy_arrays_equals_per_token(model):
    toks = np.array(model.vocab.tokenize("alpha beta gamma delta"), np.int32)
    n = len(toks)
    results = []
    for bulk in (True, False):
        c = _native.Context(model, n_ctx=512, n_batch=64, n_seq_max=2, n_threads=1)
        b = _native.Batch(64, n_seq_max=2)
        pos = np.concatenate([np.arange(n), np.arange(n)]).astype(np.int32)
        seqs = np.array([0] * n + [1] * n, np.int32)
        outs = np.zeros(2 * n, np.int8)
        outs[[n - 1, 2 * n - 1]] = 1
        if bulk:
            assert b.add_arrays(np.concatenate([toks, toks]), pos, seqs, outs) == 0
        else:
            for i in range(2 * n):
                b.add(int(toks[i % n]), int(pos[i]), int(seqs[i]), bool(outs[i]))
        assert b.output_indices() == [n - 1, 2 * n - 1] and b.n_outputs == 2
        c.decode(b)
        results.append((np.array(c.logits(n - 1)), np.array(c.logits(2 * n - 1))))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][0], results[0][1])   # same tokens in both sequences
    with pytest.raises(ValueError, match="differ in length"):
        _native.Batch(8).add_arrays([1, 2], [0], [0, 0])


def test_flash_attn_values_are_checked_in_one_place(model, tiny_model_path, vision_files):
    """Context, the memory measurement and the projector accept the same flash_attn values (one table)."""
    for ok in ("auto", "on", "off", True, False):
        _native.Context(model, n_ctx=64, flash_attn=ok).close()
    with pytest.raises(ContextError, match="flash_attn must be 'auto', 'on', 'off', True or False, not 'fast'"):
        _native.Context(model, n_ctx=64, flash_attn="fast")
    with pytest.raises(ValueError, match="not 'fast'"):
        _native.device_memory(str(tiny_model_path), flash_attn="fast")
    with pytest.raises(ValueError, match="not 'fast'"):
        _native.Projector(model, vision_files[1], flash_attn="fast")
