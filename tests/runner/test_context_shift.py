"""Context shift (Ollama's ``shift``): a generation longer than the context goes on by dropping half of
what follows the kept head; a prompt longer than the context is cut as Ollama cuts it. Greedy output
equals upstream's ``llama-server --context-shift`` from the same pin, token for token."""
from __future__ import annotations

import pytest

from pyollama.errors import InvalidRequest
from pyollama.runner import DoneEvent, Runner, RunnerSpec, SeqRequest, Stream
from tests.llama_server import llama_server

GREEDY = {"temperature": 0, "repeat_penalty": 1.0}
N = 256


def _done(stream) -> DoneEvent:
    done = None
    for ev in stream:
        if isinstance(ev, DoneEvent):
            done = ev
    assert done is not None
    return done


@pytest.fixture(scope="module")
def small(tiny_model_path):
    """Slots of 256 tokens (llama.cpp's smallest per-sequence context): a few hundred tokens fill one."""
    with Runner(RunnerSpec(str(tiny_model_path), num_ctx=N, parallel=2, num_batch=128)) as r:
        assert r.loop.n_ctx_slot == N and r.loop.can_shift
        yield r


def test_generation_goes_past_the_context(small):
    d = _done(small.submit(SeqRequest("The cat sat on", {**GREEDY, "num_predict": 400})))
    assert d.done_reason == "length" and d.eval_count == 400 and d.context_shifts >= 2


def test_open_ended_generation_is_bounded(small):
    """num_predict -1 (or more) means ten context windows, as Ollama bounds it for llama-server."""
    for n in (-1, -2, 10**9):
        seq = small.loop.prepare(SeqRequest("The cat", {"num_predict": n}), Stream(0))
        assert seq.num_predict == 10 * N
    assert small.loop.prepare(SeqRequest("The cat", {"num_predict": 7}), Stream(0)).num_predict == 7


def test_without_shift_it_stops_at_the_context(small):
    prompt = small.tokenize("The cat sat on")
    d = _done(small.submit(SeqRequest(prompt, {**GREEDY, "num_predict": 400}, shift=False)))
    assert d.done_reason == "length" and d.context_shifts == 0
    assert d.eval_count == N - len(prompt) + 1           # every cell used; the last token is never decoded


def test_long_prompt_is_cut_as_ollama_cuts_it(small):
    words = small.tokenize(" ".join(f"w{i}" for i in range(300)))
    assert len(words) > N
    d = _done(small.submit(SeqRequest(words, {**GREEDY, "num_predict": 8})))
    keep = 4 + 1                                          # num_keep 4, plus BOS (llama-spm adds one)
    limit = N - (N - keep) // 2
    assert d.prompt_truncated == len(words) - limit and d.prompt_eval_count == limit
    cut = words[:keep] + words[keep + d.prompt_truncated:]
    assert _done(small.submit(SeqRequest(cut, {**GREEDY, "num_predict": 8}))).tokens == d.tokens
    with pytest.raises(InvalidRequest, match="does not fit the context"):
        small.submit(SeqRequest(words, GREEDY, shift=False))


def test_a_shifted_slot_is_not_reused_as_a_prefix(small, tiny_model_path):
    """After a shift the slot's KV no longer matches any token list past the kept head: a later prompt
    that shares the old prefix must be evaluated afresh and give what a fresh runner gives."""
    prompt = "In the beginning there was"
    assert _done(small.submit(SeqRequest(prompt, {**GREEDY, "num_predict": 300}))).context_shifts
    again = _done(small.submit(SeqRequest(prompt + " a", {**GREEDY, "num_predict": 16})))
    with Runner(RunnerSpec(str(tiny_model_path), num_ctx=N, parallel=2, num_batch=128)) as fresh:
        assert _done(fresh.submit(SeqRequest(prompt + " a", {**GREEDY, "num_predict": 16}))).tokens == again.tokens


@pytest.mark.model
@pytest.mark.tools
@pytest.mark.slow
def test_identical_to_llama_server_context_shift(smollm2_path, tmp_path):
    n_ctx, n_predict = 256, 300
    args = ["-c", str(n_ctx), "-np", "1", "-t", "2", "-tb", "2", "-b", "256", "-ub", "256", "--no-warmup",
            "--context-shift", "--keep", "4", "--ctx-checkpoints", "0", "--cache-ram", "0"]
    with llama_server(smollm2_path, args, tmp_path) as c:
        with Runner(RunnerSpec(str(smollm2_path), num_ctx=n_ctx, parallel=1, num_batch=256,
                               num_thread=2)) as ours:
            # a raw continuation that goes on for hundreds of tokens without an end of text
            prompt = ours.tokenize(", ".join(str(i) for i in range(1, 21)) + ",")
            d = _done(ours.submit(SeqRequest(prompt, {**GREEDY, "num_predict": n_predict})))
        r = c.post("/completion", json={"prompt": prompt, "n_predict": n_predict, "temperature": 0,
                                        "cache_prompt": False, "return_tokens": True, "stream": False,
                                        "n_keep": 4, "ignore_eos": False})
        r.raise_for_status()
        theirs = r.json()["tokens"]
    assert d.context_shifts >= 1, "the run never filled the context"
    assert d.tokens == theirs[:len(d.tokens)] and len(d.tokens) == len(theirs)
