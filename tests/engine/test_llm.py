"""The library API: generate (stops, limits, prefix cache, timings) and embed."""
from __future__ import annotations

import numpy as np
import pytest

from pyollama.engine import LLM
from pyollama.errors import InvalidRequest


@pytest.fixture(scope="module")
def llm(tiny_model_path):
    with LLM(tiny_model_path, num_ctx=512) as m:
        yield m


def test_generate_streams_pieces_and_stats(llm):
    gen = llm.generate("Hello there", num_predict=20, temperature=0)
    pieces = list(gen)
    assert gen.done and gen.done_reason == "length"
    assert gen.eval_count == 20 == len(gen.tokens)
    assert "".join(p.text for p in pieces) == gen.text
    # pieces as they continue the prompt (SPM keeps the word-initial space a fresh detokenize drops)
    assert gen.text == b"".join(llm.vocab.token_to_piece(t) for t in gen.tokens).decode()
    assert gen.prompt_eval_count == len(llm.tokenize("Hello there"))
    assert gen.prompt_eval_duration > 0 and gen.eval_duration > 0
    assert gen.total_duration >= gen.prompt_eval_duration + gen.eval_duration


def test_options_dict_like_ollama(llm):
    a = llm.complete("Hi", options={"num_predict": 5, "temperature": 0})
    b = llm.complete("Hi", num_predict=5, temperature=0)
    assert a.eval_count == 5 and a.tokens == b.tokens


def test_stop_string_cuts_and_never_leaks(llm):
    full = llm.complete("Tell me", num_predict=40, temperature=0, cache=False)
    words = full.text.split()
    stop = words[len(words) // 2]
    cut = full.text.index(stop)
    gen = llm.generate("Tell me", num_predict=40, temperature=0, stop=[stop], cache=False)
    streamed = "".join(p.text for p in gen)
    assert gen.done_reason == "stop"
    assert streamed == gen.text == full.text[:cut]


def test_prefix_cache_equals_fresh_run(llm):
    """Cached prefixes give the same tokens as re-evaluating everything."""
    base = "The history of the city begins"
    llm.complete(base, num_predict=8, temperature=0, cache=False)
    cached = llm.complete(base + " with a river", num_predict=24, temperature=0)
    assert cached.prompt_cached > 0
    fresh = llm.complete(base + " with a river", num_predict=24, temperature=0, cache=False)
    assert fresh.prompt_cached == 0
    assert cached.tokens == fresh.tokens


def test_prompt_longer_than_context(llm):
    with pytest.raises(InvalidRequest, match="more than the context of 512"):
        llm.generate("word " * 600)


def test_empty_prompt(llm):
    with pytest.raises(InvalidRequest, match="empty"):
        llm.generate([])


def test_bad_option_types(llm):
    with pytest.raises(InvalidRequest, match="temperature"):
        llm.generate("x", temperature="hot")
    with pytest.raises(InvalidRequest, match="seed"):
        llm.generate("x", seed=2**40)


def test_context_end_stops_with_length(tiny_model_path):
    with LLM(tiny_model_path, num_ctx=256) as small:
        g = small.complete("a " * 200, num_predict=-1, temperature=0)
        assert g.done_reason == "length"
        assert g.prompt_eval_count + g.eval_count <= 257


def test_early_close_cancels(llm):
    gen = llm.generate("Stream me", num_predict=50, temperature=0)
    next(iter(gen))
    gen.close()
    assert gen.done and gen.done_reason == "cancel" and gen.eval_count == 1
    assert llm.complete("Next one", num_predict=3, temperature=0).eval_count == 3


def test_embeddings_normalized_and_deterministic(tiny_model_path):
    with LLM(tiny_model_path, num_ctx=256, embedding=True) as emb:
        vecs = emb.embed(["first text", "second, different text", "first text"])
        assert vecs.shape == (3, 64) and vecs.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-5)
        np.testing.assert_array_equal(vecs[0], vecs[2])
        assert not np.allclose(vecs[0], vecs[1])
        raw = emb.embed("first text", normalize=False)
        assert abs(np.linalg.norm(raw) - 1.0) > 1e-3
        with pytest.raises(InvalidRequest, match="longer than the context"):
            emb.embed("word " * 400, truncate=False)
        assert emb.embed("word " * 400).shape == (1, 64)


@pytest.mark.model
def test_smollm2_chat_answer(smollm2_path):
    with LLM(smollm2_path) as llm:
        prompt = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
        g = llm.complete(prompt, num_predict=32, temperature=0)
        assert "Paris" in g.text
        assert g.done_reason in ("stop", "length")


def test_generation_limits_reads_ollama_options():
    from pyollama.engine.llm import generation_limits

    assert generation_limits({}) == (-1, [])
    assert generation_limits({"num_predict": None, "stop": "x"}) == (-1, ["x"])
    assert generation_limits({"num_predict": 5, "stop": ["a", "b"]}) == (5, ["a", "b"])
