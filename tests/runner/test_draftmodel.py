"""Draft-model speculative decoding (Ollama's DRAFT): the drafter proposes its own greedy continuation,
brings its cache up to date by itself, refuses a model of another vocabulary, and generation with a
draft model gives exactly the tokens it gives without one."""
from __future__ import annotations

import pytest

from pyollama import _native
from pyollama.engine.llm import LLM
from pyollama.errors import ModelLoadError
from pyollama.runner import DoneEvent, Runner, RunnerSpec, SeqRequest
from pyollama.runner.draftmodel import ModelDrafter

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def draft_path(smollm2_path, tmp_path_factory):
    """SmolLM2 requantized to Q4_0: the same vocabulary, weights that differ a little from the target's
    (so its drafts are mostly, not always, accepted)."""
    out = tmp_path_factory.mktemp("draft") / "smollm2-q4_0.gguf"
    _native.quantize(str(smollm2_path), str(out), "Q4_0", allow_requantize=True)
    return out


def _chat(q: str) -> str:
    return f"<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n"


PROMPTS = [_chat("Name three primary colors and say why they are called primary."),
           _chat("Count from 1 to 30, separated by commas."),
           _chat("Write a haiku about the sea.")]


def test_drafts_are_the_draft_models_own_greedy_continuation(smollm2_path, draft_path):
    target = _native.Model(str(smollm2_path))
    draft = _native.Model(str(draft_path))
    d = ModelDrafter(draft, target, n_seq=2, n_ctx_seq=256, n_batch=64, n_threads=2)
    prompt = target.vocab.tokenize(PROMPTS[1], add_special=True, parse_special=True)
    with LLM(str(draft_path), num_ctx=256) as llm:
        greedy = llm.complete(prompt, num_predict=12, temperature=0).tokens
    d.begin(1, prompt[:-1])
    assert d.draft(1, prompt[-1], 6) == greedy[:6]           # the prompt is evaluated in batches of 64
    assert d.cached[1] == prompt + greedy[:5]                # the sixth is drafted, not evaluated
    # Three accepted, the rest rejected: the next draft drops the rejected cells, evaluates what is new.
    d.push(1, [prompt[-1]] + greedy[:3])
    assert d.draft(1, greedy[3], 8) == greedy[4:12]
    # Another conversation in the same slot: only the common prefix is kept.
    other = target.vocab.tokenize(PROMPTS[2], add_special=True, parse_special=True)
    d.begin(1, other[:-1])
    first = d.draft(1, other[-1], 3)
    assert len(first) == 3 and d.cached[1][:len(other)] == other
    assert d.draft(0, other[-1], 0) == []
    assert d.draft(0, prompt[-1], 300) == []                 # no room in the draft's context
    d.close()


def test_a_draft_model_of_another_vocabulary_is_refused(smollm2_path, tiny_model_path):
    target = _native.Model(str(smollm2_path))
    with pytest.raises(ModelLoadError, match="does not share this model's vocabulary: .*differ"):
        ModelDrafter(_native.Model(str(tiny_model_path)), target, n_seq=1, n_ctx_seq=64, n_batch=64, n_threads=1)
    with pytest.raises(ModelLoadError, match="vocabulary"):
        Runner(RunnerSpec(str(smollm2_path), num_ctx=256, draft_model=str(tiny_model_path))).start()


@pytest.mark.parametrize("opts", [{"temperature": 0}, {"temperature": 0.7, "seed": 5, "top_k": 20}],
                         ids=["greedy", "seeded"])
def test_a_draft_model_changes_nothing_but_speed(smollm2_path, draft_path, opts):
    """Short contexts, where this model's kernels for one query and for several agree to the bit on a
    CPU (see PYOLLAMA_SPECULATIVE's help)."""
    out, size = {}, {}
    for draft in ("", str(draft_path)):
        with Runner(RunnerSpec(str(smollm2_path), num_ctx=512, parallel=2, draft_model=draft,
                               draft_num_predict=4)) as r:
            done = []
            for p in PROMPTS:            # one at a time: only a sequence decoding alone drafts
                done.append([e for e in r.submit(SeqRequest(p, {**opts, "num_predict": 48}))
                             if isinstance(e, DoneEvent)][0])
            out[draft] = done
            stats = r.stats()
            size[draft] = r.info.size
    assert [d.tokens for d in out[str(draft_path)]] == [d.tokens for d in out[""]]
    assert 10 <= stats["draft_accepted"] < stats["draft_tokens"]      # mostly accepted, not always
    assert sum(d.draft_tokens for d in out[str(draft_path)]) == stats["draft_tokens"]
    assert all(d.draft_tokens == 0 for d in out[""])
    assert size[str(draft_path)] > size[""] + draft_path.stat().st_size // 2    # the draft model is counted
