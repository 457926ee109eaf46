"""Runner: continuous batching equals solo runs, prefix cache equals fresh runs, cancellation,
limits, embeddings, and the child-process runner surviving a crash."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from pyollama.errors import InvalidRequest, RunnerDied
from pyollama.runner import DoneEvent, ProcessRunner, Runner, RunnerSpec, SeqRequest, TokenEvent


def _collect(stream):
    text, tokens, done = "", [], None
    for ev in stream:
        if isinstance(ev, TokenEvent):
            text += ev.text
        elif isinstance(ev, DoneEvent):
            done = ev
    return text, done


@pytest.fixture(scope="module")
def tiny_runner(tiny_model_path):
    with Runner(RunnerSpec(str(tiny_model_path), num_ctx=256, parallel=4, num_batch=64)) as r:
        yield r


PROMPTS = ["The cat sat on", "In the beginning there was", "Numbers: one two", "A recipe for bread needs",
           "Long ago, in a galaxy", "My favourite colour is", "The train leaves at", "Dear diary, today"]


def test_batched_equals_solo(tiny_runner):
    greedy = {"temperature": 0, "num_predict": 24}
    solo = [_collect(tiny_runner.submit(SeqRequest(p, greedy))) for p in PROMPTS]
    streams = [tiny_runner.submit(SeqRequest(p, greedy)) for p in PROMPTS]   # 8 requests, 4 slots
    together = [_collect(s) for s in streams]
    for (a, da), (b, db) in zip(solo, together):
        assert a == b and da.tokens == db.tokens and db.done_reason == "length"


def test_seeded_sampling_equals_solo(tiny_runner):
    opts = {"temperature": 0.9, "seed": 42, "num_predict": 20}
    solo = _collect(tiny_runner.submit(SeqRequest(PROMPTS[0], opts)))[1].tokens
    streams = [tiny_runner.submit(SeqRequest(PROMPTS[0] if i == 2 else PROMPTS[i], opts)) for i in range(4)]
    assert _collect(streams[2])[1].tokens == solo
    for i in (0, 1, 3):
        _collect(streams[i])


def test_prefix_cache_reuses_and_matches_fresh(tiny_model_path):
    with Runner(RunnerSpec(str(tiny_model_path), num_ctx=256, parallel=1, num_batch=64)) as r:
        first = "System: be brief.\nUser: hello\nAssistant:"
        _, d1 = _collect(r.submit(SeqRequest(first, {"temperature": 0, "num_predict": 8})))
        turn2 = first + " hi\nUser: and then?\nAssistant:"
        _, d2 = _collect(r.submit(SeqRequest(turn2, {"temperature": 0, "num_predict": 16})))
        assert d2.prompt_cached >= d1.prompt_eval_count - 1
        assert d2.prompt_eval_count == len(r.tokenize(turn2, add_special=True, parse_special=True))
    with Runner(RunnerSpec(str(tiny_model_path), num_ctx=256, parallel=1, num_batch=64)) as fresh:
        _, d3 = _collect(fresh.submit(SeqRequest(turn2, {"temperature": 0, "num_predict": 16})))
        assert d3.prompt_cached == 0
    assert d2.tokens == d3.tokens


def test_stop_and_limits(tiny_runner):
    full, d = _collect(tiny_runner.submit(SeqRequest(PROMPTS[3], {"temperature": 0, "num_predict": 30})))
    word = full.split()[3]
    cut, d2 = _collect(tiny_runner.submit(SeqRequest(PROMPTS[3], {"temperature": 0, "num_predict": 30,
                                                                  "stop": [word]})))
    assert d2.done_reason == "stop" and cut == full[: full.index(word)]
    assert d2.stop == word and d.stop is None        # the matched stop string travels with the ending
    with pytest.raises(InvalidRequest, match="does not fit the context of 256"):
        tiny_runner.submit(SeqRequest("word " * 300, {}, shift=False))
    _, d3 = _collect(tiny_runner.submit(SeqRequest("a " * 200, {"temperature": 0, "num_predict": -1}, shift=False)))
    assert d3.done_reason == "length" and d3.prompt_eval_count + d3.eval_count <= 257


def test_cancel_frees_the_slot(tiny_model_path):
    with Runner(RunnerSpec(str(tiny_model_path), num_ctx=256, parallel=1, num_batch=64)) as r:
        long = r.submit(SeqRequest(PROMPTS[0], {"temperature": 0, "num_predict": -1}))
        first = next(iter(long))
        assert isinstance(first, TokenEvent)
        queued = r.submit(SeqRequest(PROMPTS[1], {"temperature": 0, "num_predict": 4}))
        long.cancel()
        t0 = time.monotonic()
        _, d = _collect(queued)
        assert d.done_reason == "length" and time.monotonic() - t0 < 5


def test_async_iteration(tiny_runner):
    import asyncio

    async def main():
        s = tiny_runner.submit(SeqRequest(PROMPTS[5], {"temperature": 0, "num_predict": 6}))
        return [ev async for ev in s]

    evs = asyncio.run(main())
    assert isinstance(evs[-1], DoneEvent) and evs[-1].eval_count == 6


def test_logprobs(tiny_runner):
    s = tiny_runner.submit(SeqRequest(PROMPTS[6], {"temperature": 0, "num_predict": 3}, logprobs=True,
                                      top_logprobs=3))
    evs = [e for e in s if isinstance(e, TokenEvent)]
    lp = evs[0].logprobs[0]
    assert lp["logprob"] <= 0 and len(lp["top_logprobs"]) == 3
    assert lp["top_logprobs"][0]["logprob"] >= lp["top_logprobs"][1]["logprob"]
    assert lp["top_logprobs"][0]["token"] == lp["token"]          # greedy picks the top one


def test_embeddings_between_generations(tiny_runner):
    gen = tiny_runner.submit(SeqRequest(PROMPTS[7], {"temperature": 0, "num_predict": 16}))
    vecs, n = tiny_runner.embed(["alpha beta", "alpha beta", "gamma"])
    assert vecs.shape == (3, 64) and n > 0
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(vecs[0], vecs[1])
    assert _collect(gen)[1].eval_count == 16


def test_many_threads_submit(tiny_runner):
    results = {}

    def worker(i):
        results[i] = _collect(tiny_runner.submit(SeqRequest(PROMPTS[i % 8], {"temperature": 0, "num_predict": 5})))[1]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(d.eval_count == 5 for d in results.values()) and len(results) == 12


@pytest.mark.slow
def test_process_runner_survives_a_kill(tiny_model_path):
    spec = RunnerSpec(str(tiny_model_path), num_ctx=256, parallel=2, num_batch=64)
    with ProcessRunner(spec) as pr:
        text, d = _collect(pr.submit(SeqRequest(PROMPTS[0], {"temperature": 0, "num_predict": 8})))
        with Runner(spec) as local:
            assert _collect(local.submit(SeqRequest(PROMPTS[0], {"temperature": 0, "num_predict": 8})))[1].tokens == d.tokens
            hello = local.tokenize("hello")
        assert pr.tokenize("hello") == hello and hello and pr.info.parallel == 2
        with pytest.raises(InvalidRequest):
            pr.submit(SeqRequest("word " * 300, {}, shift=False))
        s = pr.submit(SeqRequest(PROMPTS[1], {"temperature": 0, "num_predict": -1}))
        next(iter(s))
        pr.kill()
        with pytest.raises(RunnerDied, match="signal 9"):
            for _ in s:
                pass
        assert not pr.alive
        with pytest.raises(RunnerDied):
            pr.submit(SeqRequest(PROMPTS[1], {}))


@pytest.mark.slow
def test_process_runner_async_submit_batches_events_per_step(tiny_model_path):
    """asubmit awaits the child's answer on the event loop; a step's events for all its streams come as one
    message, and each stream still sees its own events, in order, equal to a solo run."""
    import asyncio

    spec = RunnerSpec(str(tiny_model_path), num_ctx=256, parallel=3, num_batch=64)
    opts = {"temperature": 0, "num_predict": 8}
    with Runner(spec) as local:
        solo = [_collect(local.submit(SeqRequest(p, opts)))[1].tokens for p in PROMPTS[:3]]
    with ProcessRunner(spec) as pr:
        messages: list = []
        handle = pr._handle
        pr._handle = lambda msg: (messages.append(msg) if msg[0] == "evs" else None, handle(msg))[1]

        async def one(prompt: str) -> DoneEvent:
            s = await pr.asubmit(SeqRequest(prompt, opts))
            return [ev async for ev in s][-1]

        async def main():
            with pytest.raises(InvalidRequest):
                await pr.asubmit(SeqRequest("word " * 300, {}, shift=False))
            return await asyncio.gather(*(one(p) for p in PROMPTS[:3]))

        dones = asyncio.run(main())
    assert [d.tokens for d in dones] == solo
    events = [ev for m in messages for _, ev in m[1]]
    assert sum(isinstance(ev, DoneEvent) for ev in events) == 3 and len(messages) < len(events)
    assert any(len({rid for rid, _ in m[1]}) > 1 for m in messages)    # several streams in one message


@pytest.mark.model
@pytest.mark.slow
def test_smollm2_eight_concurrent_equal_solo(smollm2_path):
    """Issue 6's exactness criterion: 8 concurrent greedy requests = each alone (SmolLM2)."""
    qs = ["What is the capital of France?", "Name three colors.", "What is 2+2?", "Say hello in Spanish.",
          "Who wrote Hamlet?", "What is the boiling point of water?", "List two fruits.", "What day follows Monday?"]
    prompts = [f"<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n" for q in qs]
    greedy = {"temperature": 0, "num_predict": 32}
    with Runner(RunnerSpec(str(smollm2_path), num_ctx=1024, parallel=8)) as r:
        together = [_collect(s)[1].tokens for s in [r.submit(SeqRequest(p, greedy)) for p in prompts]]
    with Runner(RunnerSpec(str(smollm2_path), num_ctx=1024, parallel=1)) as solo_r:
        solo = [_collect(solo_r.submit(SeqRequest(p, dict(greedy))))[1].tokens for p in prompts]
    assert together == solo


def test_embeddings_unnormalized_and_info(tiny_runner):
    raw, _ = tiny_runner.embed(["alpha beta"], normalize=False)
    unit, _ = tiny_runner.embed(["alpha beta"])
    np.testing.assert_allclose(raw[0] / np.linalg.norm(raw[0]), unit[0], rtol=1e-5)
    assert abs(np.linalg.norm(raw[0]) - 1.0) > 1e-3
    info = tiny_runner.info
    assert info.bos_token == "<s>" and info.eos_token == "</s>" and info.n_ctx == 256
