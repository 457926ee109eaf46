"""Drafts from a smaller model that shares the target's vocabulary (Ollama's ``DRAFT``).

The draft model keeps its own KV, one sequence per slot, positioned by the sequence's history (prompt
and accepted output). It is brought up to date lazily, when it is asked for a draft: whatever its
cache holds beyond the common prefix with the history (rejected draft tokens, another request's
prompt) is dropped and the missing tokens are evaluated in one batch, with the pending token last.
Then it decodes greedily, one token at a time, up to the limit. So nothing the target does to its
own cache (prefix reuse, copies between slots, RAM restores, context shifts) has to be mirrored
here; the price is that a draft model evaluates each prompt once, when its sequence first drafts
(llama-server's draft context evaluates every batch the target does, to the same effect).

Its interface is ``_native.Drafter``'s, so the adaptive policy in ``speculate.py`` applies unchanged.
"""
from __future__ import annotations

import logging

import numpy as np

from pyollama import _native
from pyollama.engine.llm import common_prefix, trim_kv
from pyollama.errors import ModelLoadError, PyollamaError

log = logging.getLogger("pyollama.runner")


class ModelDrafter:
    """Greedy drafts from ``model`` for ``n_seq`` sequences. One thread at a time (the step loop's)."""

    def __init__(self, model: _native.Model, target: _native.Model, *, n_seq: int, n_ctx_seq: int,
                 n_batch: int, n_threads: int, flash_attn="auto"):
        why = target.vocab.mismatch(model.vocab)
        if why:
            raise ModelLoadError(f"the draft model does not share this model's vocabulary: {why}")
        if model.is_recurrent or model.is_hybrid:
            # Rejected draft tokens are dropped from the draft's cache: recurrent state cannot drop a range.
            raise ModelLoadError("a recurrent model cannot be a draft model")
        self.model = model
        self.vocab = model.vocab
        self.n_target = target.vocab.n_tokens     # the vocabularies may differ in size by up to 128
        self.ctx = _native.Context(model, n_ctx=n_ctx_seq * n_seq, n_batch=n_batch, n_ubatch=n_batch,
                                   n_seq_max=n_seq, n_threads=n_threads, flash_attn=flash_attn, kv_unified=False)
        self.n_ctx_seq = self.ctx.n_ctx_seq
        self.n_batch = self.ctx.n_batch
        self.n_swa = model.n_swa
        self.batch = _native.Batch(self.n_batch, 1)
        self.history: list[list[int]] = [[] for _ in range(n_seq)]   # prompt + accepted output
        self.cached: list[list[int]] = [[] for _ in range(n_seq)]    # tokens whose KV the draft holds

    def begin(self, seq: int, tokens) -> None:
        self.history[seq] = list(tokens)

    def push(self, seq: int, tokens) -> None:
        self.history[seq].extend(tokens)

    def accept(self, seq: int, n_accepted: int) -> None:
        """Nothing to do: the accepted tokens arrive with the next push, and the rejected ones are
        dropped from the cache when the next draft finds they are not in the history."""

    def draft(self, seq: int, last: int, n_max: int) -> list[int]:
        """Up to ``n_max`` greedy tokens to follow the history and ``last``; [] when the draft's context
        has no room for them (positions follow the history, which a context shift does not shorten)."""
        want = self.history[seq] + [last]
        if n_max <= 0 or len(want) + n_max > self.n_ctx_seq:
            return []
        try:
            idx = self._catch_up(seq, want)
            out: list[int] = []
            pos = len(want)
            cached = self.cached[seq]
            b = self.batch
            while True:
                tok = int(np.argmax(self.ctx.logits(idx)))
                if tok >= self.n_target:          # a token the target does not have ends the draft
                    return out
                out.append(tok)
                if len(out) >= n_max or self.vocab.is_eog(tok):
                    return out
                b.reset()
                idx = b.add(tok, pos, seq, True)
                self.ctx.decode(b)
                cached.append(tok)
                pos += 1
        except PyollamaError as e:
            log.warning("the draft model failed (%s); sequence %d drafts from scratch next time", e, seq)
            self.ctx.memory.seq_rm(seq, -1, -1)
            self.cached[seq] = []
            return []

    def _catch_up(self, seq: int, want: list[int]) -> int:
        """Make the draft's cache for ``seq`` hold ``want``, its last token evaluated now; returns the
        batch index of that token's logits."""
        cached = self.cached[seq]
        keep = min(common_prefix(cached, want), len(want) - 1)
        keep = trim_kv(self.ctx.memory, seq, keep, len(cached), self.n_swa)
        del cached[keep:]
        b = self.batch
        idx = -1
        for start in range(keep, len(want), self.n_batch):
            chunk = want[start:start + self.n_batch]
            b.reset()
            last = start + len(chunk) == len(want)
            first = b.add_sequence(chunk, start, seq, output_last=last)
            self.ctx.decode(b)
            cached.extend(chunk)
            idx = first + len(chunk) - 1
        return idx

    def close(self) -> None:
        self.batch.close()
        self.ctx.close()
