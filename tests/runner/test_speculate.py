"""Self-speculative decoding: upstream's n-gram drafter through the shim, the adaptive policy, and
generation with drafts equal to generation without, token for token (greedy and seeded)."""
from __future__ import annotations

import pytest

from pyollama import _native
from pyollama.config import Config
from pyollama.errors import NativeError
from pyollama.runner import DoneEvent, Runner, RunnerSpec, SeqRequest
from pyollama.runner.speculate import PAUSE_STEPS, Speculator


def test_drafter_continues_an_earlier_occurrence():
    d = _native.Drafter("ngram-simple", n_seq=2, size_n=3, size_m=8)
    history = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 1, 2]
    d.begin(1, history)
    assert d.draft(1, 3, 8) == [4, 5, 6, 7, 8, 9, 10, 11]     # ... 1 2 [3] continues as it did before
    assert d.draft(1, 3, 2) == [4, 5]                          # the limit of this call
    with pytest.raises(NativeError):
        d.accept(1, 3)                                         # more than the last draft held
    d.accept(1, 2)
    with pytest.raises(NativeError):
        d.accept(1, 1)                                         # no draft since
    d.push(1, [3, 4, 5])
    assert d.draft(1, 99, 8) == []                             # never seen: no draft
    assert d.draft(0, 3, 8) == []                              # another sequence's history is its own
    with pytest.raises(ValueError, match="out of range"):
        d.draft(2, 3, 8)
    with pytest.raises(ValueError, match="not an n-gram drafter: draft-simple"):
        _native.Drafter("draft-simple")
    d.close()
    with pytest.raises(ValueError, match="closed"):
        d.draft(0, 1, 4)


def test_adaptive_limit():
    s = Speculator.ngram(1, "ngram-simple", max_draft=8, size_n=3)
    st = s.begin(0, list(range(40)) * 2)           # the history repeats itself: every draft matches
    src = st.sources[0]

    def verify(n_ok):
        draft = s.draft(0, st, [0], 64)        # history ... 38 39, then 0 (pending): as before
        assert draft
        s.verified(0, st, draft, min(n_ok, len(draft)))
        return draft

    src.limit = 4
    assert len(verify(99)) == 4 and src.limit == 8  # accepted whole: the limit doubles
    assert len(verify(99)) == 8 and src.limit == 8  # capped at max_draft
    for _ in range(3):
        verify(0)                                  # rejected: halves, then pauses
    assert src.limit == 2 and src.paused == PAUSE_STEPS
    assert s.draft(0, st, [0], 8) == [] and src.paused == PAUSE_STEPS - 1
    assert s.stats()["drafts"] == 5


def _chat(q: str) -> str:
    return f"<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n"


PROMPTS = [_chat("Repeat this line three times: red green blue yellow purple orange."),
           _chat("Count from 1 to 30, separated by commas."),
           _chat("Write the alphabet in capital letters, separated by spaces, twice.")]


@pytest.mark.model
@pytest.mark.parametrize("opts", [{"temperature": 0}, {"temperature": 0.7, "seed": 11, "top_k": 20}],
                         ids=["greedy", "seeded"])
def test_drafts_change_nothing_but_speed(smollm2_path, opts):
    """Answers that repeat themselves draft a lot; with drafts on, every request gets exactly the tokens
    it gets without. Short contexts: there the attention kernels for
    one query and for several agree to the bit on this CPU (past ~128 cells they may not, see
    PYOLLAMA_SPECULATIVE's help)."""
    out = {}
    for types in ("", "ngram-simple"):
        with Runner(RunnerSpec(str(smollm2_path), num_ctx=512, parallel=1, speculative=types)) as r:
            streams = [r.submit(SeqRequest(p, {**opts, "num_predict": 64})) for p in PROMPTS]
            out[types] = [[e for e in s if isinstance(e, DoneEvent)][0] for s in streams]
            stats = r.stats()
    assert [d.tokens for d in out["ngram-simple"]] == [d.tokens for d in out[""]]
    assert stats["draft_accepted"] >= 5 and stats["draft_tokens"] >= stats["draft_accepted"]
    assert sum(d.draft_accepted for d in out["ngram-simple"]) == stats["draft_accepted"]
    assert all(d.draft_tokens == 0 for d in out[""])


def test_speculative_setting():
    assert Config.from_env({}).speculative == "off"
    c = Config.from_env({"PYOLLAMA_SPECULATIVE": "ngram-mod, ngram-simple", "PYOLLAMA_DRAFT_MAX": "12"})
    assert (c.speculative, c.draft_max) == ("ngram-mod,ngram-simple", 12)
    bad = Config.from_env({"PYOLLAMA_SPECULATIVE": "draft-simple"})
    assert bad.speculative == "off" and "PYOLLAMA_SPECULATIVE" in bad.warnings[0]
