"""Prompt cache: the RAM store's bookkeeping, and real models restoring / copying KV with greedy output
equal to a cold run's."""
from __future__ import annotations

import numpy as np
import pytest

from pyollama.runner import DoneEvent, Runner, RunnerSpec, SeqRequest
from pyollama.runner.promptcache import PromptCache, shared_prefix

GREEDY = {"temperature": 0, "num_predict": 16}


def _arr(*toks):
    return np.asarray(toks, dtype=np.int32)


# --- the store -------------------------------------------------------------------------------------
def test_shared_prefix():
    assert shared_prefix(_arr(1, 2, 3), _arr(1, 2, 4)) == 2
    assert shared_prefix(_arr(1, 2), _arr(1, 2, 3)) == 2
    assert shared_prefix(_arr(), _arr(1)) == 0
    assert shared_prefix(_arr(5), _arr(1)) == 0


def test_longer_save_replaces_its_prefix_and_best_match():
    c = PromptCache(10_000)
    assert c.put(_arr(1, 2, 3), b"x" * 100)
    assert c.put(_arr(1, 2, 3, 4, 5), b"y" * 100)       # the same conversation, further on
    assert len(c) == 1 and c.used == 100 + 5 * 4
    assert c.covers(_arr(1, 2, 3)) and c.covers(_arr(1, 2, 3, 4, 5)) and not c.covers(_arr(1, 2, 9))
    assert c.put(_arr(7, 8), b"z" * 10)
    entry, n = c.best(_arr(1, 2, 3, 9))
    assert n == 3 and entry.state == b"y" * 100
    assert c.best(_arr(9))[1] == 0


def test_lru_eviction_within_budget():
    c = PromptCache(1000)
    for i in range(3):
        assert c.put(_arr(i, i, i), bytes(300))
    first, _ = c.best(_arr(0, 0, 0))
    c.used_as(first, 3)                                  # the oldest becomes the most recent
    assert c.put(_arr(9, 9, 9), bytes(300))              # over budget: the least recently used goes
    assert c.best(_arr(1, 1, 1))[1] == 0 and c.best(_arr(0, 0, 0))[1] == 3
    assert c.used <= 1000 and c.evictions == 1 and c.hits == 1
    assert not c.put(_arr(4), bytes(2000))               # larger than the whole budget: not kept
    assert not PromptCache(0).enabled


# --- real models -------------------------------------------------------------------------------------
def _done(stream) -> DoneEvent:
    return [ev for ev in stream if isinstance(ev, DoneEvent)][0]


def _chat(system: str, *turns: str) -> str:
    text = f"<|im_start|>system\n{system}<|im_end|>\n"
    for i, t in enumerate(turns):
        text += f"<|im_start|>{'user' if i % 2 == 0 else 'assistant'}\n{t}<|im_end|>\n"
    return text + "<|im_start|>assistant\n"


FACTS = " ".join(f"Fact {i}: item {i} weighs {i * 7 % 13} kg." for i in range(40))


def _cold(path, prompt, opts=GREEDY) -> DoneEvent:
    with Runner(RunnerSpec(str(path), num_ctx=2048, parallel=1, cache_ram=0)) as r:
        return _done(r.submit(SeqRequest(prompt, opts)))


@pytest.mark.model
def test_returning_conversation_restored_from_ram_equals_cold(smollm2_path):
    """One slot, two users: the second evicts the first from the slot; the first user's next turn is
    restored from RAM instead of evaluated again, and answers exactly as a cold run."""
    a1 = _chat("You answer questions about the facts. " + FACTS, "How much does item 5 weigh?")
    b1 = _chat("You are a poet.", "Write about the sea, " + FACTS[::-1])
    with Runner(RunnerSpec(str(smollm2_path), num_ctx=2048, parallel=1, cache_ram=1 << 30)) as r:
        d1 = _done(r.submit(SeqRequest(a1, GREEDY)))
        _done(r.submit(SeqRequest(b1, GREEDY)))
        a2 = _chat("You answer questions about the facts. " + FACTS, "How much does item 5 weigh?",
                   r.detokenize(d1.tokens), "And item 7?")
        d2 = _done(r.submit(SeqRequest(a2, GREEDY)))
        stats = r.loop.cache.stats()
    assert d2.prompt_cached >= d1.prompt_eval_count          # the whole first turn came back from RAM
    assert stats["hits"] == 1 and stats["saves"] == 2 and stats["entries"] == 2
    cold = _cold(smollm2_path, a2)
    assert cold.prompt_cached == 0 and d2.tokens == cold.tokens
    assert d2.prompt_eval_duration < cold.prompt_eval_duration / 3


@pytest.mark.model
def test_prefix_copied_from_a_busy_slot_and_shared_prompt_evaluated_once(smollm2_path):
    """A prompt sharing a long prefix with another slot's sequence copies that KV (the other is still
    generating); prompts arriving together with one long shared prefix evaluate it once."""
    system = "You answer questions about the facts. " + FACTS
    qs = ["How much does item 3 weigh?", "Which item weighs 5 kg?", "Name the lightest item."]
    with Runner(RunnerSpec(str(smollm2_path), num_ctx=2048, parallel=3, cache_ram=0)) as r:
        long_run = r.submit(SeqRequest(_chat(system, qs[0]), {"temperature": 0, "num_predict": 48}))
        first = next(iter(long_run))                            # generating now
        d = _done(r.submit(SeqRequest(_chat(system, qs[1]), GREEDY)))
        _done(long_run)
        assert first is not None and r.loop.copies == 1
        n_system = len(r.tokenize(_chat(system, ""), add_special=True, parse_special=True)) - 8
        assert d.prompt_cached >= n_system
    with Runner(RunnerSpec(str(smollm2_path), num_ctx=2048, parallel=3, cache_ram=0)) as r:
        together = [_done(s) for s in [r.submit(SeqRequest(_chat(system, q), GREEDY)) for q in qs]]
        assert sorted(t.prompt_cached >= n_system for t in together) == [False, True, True]
    for q, t in zip(qs, together):
        assert t.tokens == _cold(smollm2_path, _chat(system, q)).tokens
    assert d.tokens == together[1].tokens


@pytest.mark.model
def test_sliding_window_model_restored_within_its_window(gemma3_path):
    """Gemma 3 (sliding-window layers): a restored conversation shorter than the window cache answers as
    a cold run. (Past it, the restored cells sit in another order than a cold run's, so sums over them
    may differ in the last bit: reuse stays on, exactness is not promised there.)"""
    a1 = "You answer questions about the facts. " + FACTS + "\nQuestion: How much does item 5 weigh?\nAnswer:"
    with Runner(RunnerSpec(str(gemma3_path), num_ctx=2048, parallel=1, cache_ram=1 << 30)) as r:
        d1 = _done(r.submit(SeqRequest(a1, GREEDY)))
        _done(r.submit(SeqRequest("Poem: " + FACTS[::-1], GREEDY)))
        a2 = a1 + r.detokenize(d1.tokens) + "\nQuestion: And item 7?\nAnswer:"
        d2 = _done(r.submit(SeqRequest(a2, GREEDY)))
    assert d1.prompt_eval_count > 512 > 0 and d2.prompt_cached >= d1.prompt_eval_count
    assert d2.tokens == _cold(gemma3_path, a2).tokens


def test_tiny_shared_prefix_is_not_restored(tiny_model_path):
    """Prompts sharing only their first tokens (a BOS) are not worth a restore, and the cache is off for
    requests that share nothing."""
    with Runner(RunnerSpec(str(tiny_model_path), num_ctx=256, parallel=1, num_batch=64, cache_ram=1 << 26)) as r:
        p1 = "alpha " * 40
        _done(r.submit(SeqRequest(p1, GREEDY)))
        _done(r.submit(SeqRequest("beta " * 40, GREEDY)))          # p1 saved
        d = _done(r.submit(SeqRequest("alpha gamma " * 20, GREEDY)))
        assert r.loop.cache.hits == 0 and d.prompt_cached <= 2
        d = _done(r.submit(SeqRequest(p1 + "delta", GREEDY)))
        assert r.loop.cache.hits == 1 and d.prompt_cached >= 40


def test_restoring_an_entry_survives_the_save_before_it():
    """A slot's own content is saved just before a saved entry is restored into it; that save must not
    evict the entry being restored (it is made most recent first), and a restore of an entry evicted
    anyway is still counted without error."""
    c = PromptCache(700)                               # room for two entries of 312 bytes
    assert c.put(_arr(1, 1, 1), bytes(300)) and c.put(_arr(2, 2, 2), bytes(300))
    donor, _ = c.best(_arr(1, 1, 1, 5))
    c.touch(donor)
    assert c.put(_arr(3, 3, 3), bytes(300))          # evicts (2 2 2), the oldest, not the donor
    assert c.best(_arr(1, 1, 1))[1] == 3 and c.best(_arr(2, 2, 2))[1] == 0
    assert c.put(_arr(4, 4, 4), bytes(680))          # evicts everything else, donor included
    c.used_as(donor, 3)
    assert c.hits == 1


@pytest.mark.model
def test_sliding_window_prefix_older_than_the_window_is_not_kept(gemma3_path):
    """Gemma 3's window cache holds the last ~1k positions: after a 2k-token sequence, a prompt sharing only
    its first few hundred tokens finds no window cell left for them (the window would be empty after
    removing the rest) and must be evaluated in full, answering as a cold run."""
    head = "You answer questions about the facts. " + FACTS
    long_doc = head + " " + " ".join(f"Note {i}: shelf {i % 17} holds box {i * 3 % 29}." for i in range(160))
    with Runner(RunnerSpec(str(gemma3_path), num_ctx=4096, parallel=1, cache_ram=0)) as r:
        d1 = _done(r.submit(SeqRequest(long_doc, {"temperature": 0, "num_predict": 4})))
        other = head + "\nQuestion: Which item weighs the most?\nAnswer:"
        d2 = _done(r.submit(SeqRequest(other, GREEDY)))
    assert d1.prompt_eval_count > 2000 and d2.prompt_cached == 0
    assert d2.tokens == _cold(gemma3_path, other).tokens
