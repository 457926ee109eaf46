"""Self-speculative decoding policy: when a sequence drafts, and how long.

Drafts come from upstream's n-gram drafters (``_native.Drafter``: the tokens that followed the last
earlier occurrence of the sequence's most recent tokens, in its own prompt and output). The batcher
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
"""
from __future__ import annotations

from dataclasses import dataclass

from pyollama import _native

PAUSE_STEPS = 16           # steps without drafting after a run of failed drafts


@dataclass
class SpecState:
    """Per sequence: how much of its output the drafter's history holds, and the adaptive limit."""

    limit: int
    pushed: int = 0        # generated tokens already in the drafter's history (all but the pending one)
    misses: int = 0        # consecutive drafts accepted less than half
    paused: int = 0        # steps left without drafting
    drafted: int = 0
    accepted: int = 0


class Speculator:
    """One per BatchLoop; ``types`` "" = off."""

    def __init__(self, n_seq: int, *, types: str = "", max_draft: int = 8, size_n: int = 3, min_draft: int = 2):
        self.max_draft = max_draft
        self.min_draft = min_draft
        self.drafter = _native.Drafter(types, n_seq=n_seq, size_n=size_n, size_m=max_draft) if types else None
        self.drafted = 0           # counters for /metrics
        self.accepted = 0
        self.drafts = 0

    @property
    def enabled(self) -> bool:
        return self.drafter is not None

    def begin(self, slot: int, prompt: list[int]) -> SpecState:
        self.drafter.begin(slot, prompt)
        return SpecState(limit=self.max_draft)

    def draft(self, slot: int, st: SpecState, generated: list[int], room: int) -> list[int]:
        """A draft to follow the sequence's output ``generated`` (its last token is the pending one, not
        decoded yet) of at most ``room`` tokens (what the context, num_predict and the batch leave), or []
        (paused, no match, too short to be worth a step)."""
        if st.paused:
            st.paused -= 1
            return []
        n = min(st.limit, room)
        if n < self.min_draft:
            return []
        if st.pushed < len(generated) - 1:
            self.drafter.push(slot, generated[st.pushed:-1])
            st.pushed = len(generated) - 1
        d = self.drafter.draft(slot, generated[-1], n)
        return d if len(d) >= self.min_draft else []

    def verified(self, slot: int, st: SpecState, draft: list[int], n_ok: int) -> None:
        """``n_ok`` tokens of ``draft`` were accepted: adapt the limit, tell the drafter."""
        self.drafter.accept(slot, n_ok)
        st.drafted += len(draft)
        st.accepted += n_ok
        self.drafts += 1
        self.drafted += len(draft)
        self.accepted += n_ok
        if n_ok == len(draft):
            st.limit = min(self.max_draft, st.limit * 2)
            st.misses = 0
        elif 2 * n_ok < len(draft):
            st.limit = max(self.min_draft, st.limit // 2)
            st.misses += 1
            if st.misses >= 3:
                st.paused, st.misses = PAUSE_STEPS, 0
        else:
            st.misses = 0

    def close(self) -> None:
        if self.drafter is not None:
            self.drafter.close()

    def stats(self) -> dict:
        return {"drafts": self.drafts, "draft_tokens": self.drafted, "draft_accepted": self.accepted}
