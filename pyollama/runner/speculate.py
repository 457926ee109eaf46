"""Speculative decoding policy: when a sequence drafts, and how long.

Drafts come from upstream's n-gram drafters (``_native.Drafter``: the tokens that followed the last
earlier occurrence of the sequence's most recent tokens, in its own prompt and output), or from a
smaller model sharing the target's vocabulary (``draftmodel.ModelDrafter``, Ollama's DRAFT). The batcher
feeds ``[pending] + draft`` in one step, samples every position with the sequence's own sampler and
keeps the tokens up to the first one that differs from the draft: each kept token was sampled from
the target model exactly as without speculation, so greedy output is unchanged token for token (and a
seeded sampler draws the same random numbers).

Only a sequence decoding alone drafts (see BatchLoop.step: several streams with unequal feeds cost
extra micro-batches); beside others, batching is what pays. A draft pays when it is accepted: verifying k tokens costs about what a prompt chunk of k tokens costs
(far less than k single steps), and a wrong draft is work thrown away. So each sequence adapts: its
draft limit doubles after a draft accepted whole and halves after one accepted less than half, and a
sequence whose drafts keep failing stops drafting for a while. Text with nothing to copy yields no
drafts at all (no n-gram match), so it costs nothing.

With several drafters (n-gram drafts and a draft model), they are asked in order and the first draft
long enough is used: n-gram drafts cost nothing to make, a draft model's cost a decode per token, so
the model drafts where the text has nothing to copy. Each drafter adapts on its own acceptance.
"""
from __future__ import annotations

from dataclasses import dataclass

from pyollama import _native

PAUSE_STEPS = 16           # steps without drafting after a run of failed drafts


@dataclass
class Source:
    """One drafter's adaptive state for one sequence."""

    limit: int
    misses: int = 0        # consecutive drafts accepted less than half
    paused: int = 0        # steps left without drafting


@dataclass
class SpecState:
    """Per sequence: how much of its output the drafters' histories hold, and each drafter's state."""

    sources: list[Source]
    pushed: int = 0        # generated tokens already in the drafters' histories (all but the pending one)
    source: int = -1       # the drafter of the draft being verified
    drafted: int = 0
    accepted: int = 0


class Speculator:
    """One per BatchLoop. ``drafters``: (drafter, longest draft) pairs, asked in order; a drafter is
    anything with ``_native.Drafter``'s methods. None = off."""

    def __init__(self, drafters=(), *, min_draft: int = 2):
        self.drafters = list(drafters)
        self.min_draft = min_draft
        self.drafted = 0           # counters for /metrics
        self.accepted = 0
        self.drafts = 0

    @classmethod
    def ngram(cls, n_seq: int, types: str, *, max_draft: int = 8, size_n: int = 3) -> Speculator:
        """Upstream's n-gram drafters named in ``types`` (comma separated; "" = none)."""
        return cls([(_native.Drafter(types, n_seq=n_seq, size_n=size_n, size_m=max_draft), max_draft)] if types else [])

    @property
    def enabled(self) -> bool:
        return bool(self.drafters)

    def begin(self, slot: int, prompt: list[int]) -> SpecState:
        for d, _ in self.drafters:
            d.begin(slot, prompt)
        return SpecState([Source(limit=mx) for _, mx in self.drafters])

    def draft(self, slot: int, st: SpecState, generated: list[int], room: int) -> list[int]:
        """A draft to follow the sequence's output ``generated`` (its last token is the pending one, not
        decoded yet) of at most ``room`` tokens (what the context, num_predict and the batch leave), or []
        (paused, no match, too short to be worth a step)."""
        st.source = -1
        for i, (d, _) in enumerate(self.drafters):
            src = st.sources[i]
            if src.paused:
                src.paused -= 1
                continue
            n = min(src.limit, room)
            if n < self.min_draft:
                continue
            if st.pushed < len(generated) - 1:
                new = generated[st.pushed:-1]
                for other, _ in self.drafters:
                    other.push(slot, new)
                st.pushed = len(generated) - 1
            out = d.draft(slot, generated[-1], n)
            if len(out) >= self.min_draft:
                st.source = i
                return out
        return []

    def verified(self, slot: int, st: SpecState, draft: list[int], n_ok: int) -> None:
        """``n_ok`` tokens of ``draft`` were accepted: adapt its drafter's limit, tell the drafter."""
        d, max_draft = self.drafters[st.source]
        src = st.sources[st.source]
        d.accept(slot, n_ok)
        st.drafted += len(draft)
        st.accepted += n_ok
        self.drafts += 1
        self.drafted += len(draft)
        self.accepted += n_ok
        if n_ok == len(draft):
            src.limit = min(max_draft, src.limit * 2)
            src.misses = 0
        elif 2 * n_ok < len(draft):
            src.limit = max(self.min_draft, src.limit // 2)
            src.misses += 1
            if src.misses >= 3:
                src.paused, src.misses = PAUSE_STEPS, 0
        else:
            src.misses = 0

    def close(self) -> None:
        for d, _ in self.drafters:
            d.close()
        self.drafters = []

    def stats(self) -> dict:
        return {"drafts": self.drafts, "draft_tokens": self.drafted, "draft_accepted": self.accepted}
