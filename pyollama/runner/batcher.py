"""Continuous batching over one llama_context: the runner's step loop, without threads.

Each slot is a KV sequence id with its own KV stream (kv_unified=False) of num_ctx cells, so
slots never shrink each other's context and a sequence's results do not depend on what else is
in the batch (upstream measured identical greedy outputs with per-slot streams, not with one
unified buffer). Every step packs one token for each decoding sequence plus prompt chunks of
prefilling ones, up to n_batch tokens, decodes once, and samples every sequence that produced
logits with its own sampler chain.

Context shift (Ollama's ``shift``, on by default): a generation that fills its slot keeps the first
``num_keep`` tokens (plus BOS), drops half of the rest from the KV cache, moves the tail down and goes
on; a prompt longer than the context is cut the same way before it is evaluated (Ollama's rule for
its llama-server runner). Where the memory cannot shift, or ``shift`` is off, a full slot ends the
generation with ``length`` and a too-long prompt is refused.

Prefix cache: a finished sequence leaves its tokens in its slot's KV; a new request goes to the
free slot sharing the longest prefix with its prompt (least recently used among equals) and only
the rest of the prompt is evaluated. A slot handed to a prompt that does not continue what it holds
first saves that to the RAM prompt cache (`promptcache.py`); a prompt that shares more with a saved
sequence, or with another slot's sequence (busy or not), gets that KV copied into its slot. A prompt
sharing a long prefix with one still being evaluated waits for it rather than computing it twice.
Where the cache cannot drop a partial range (recurrent memory), or a sliding window has already
dropped cells the kept prefix needs, the slot is cleared and the prompt re-evaluated in full.
"""
from __future__ import annotations

import collections
import logging
import time
from dataclasses import dataclass, field

import numpy as np

from pyollama import _native
from pyollama.engine.detok import Detokenizer
from pyollama.engine.logprobs import entries, logprobs
from pyollama.engine.llm import common_prefix, generation_limits, pooling_is_none, trim_kv
from pyollama.engine.sampling import SamplingParams, TokenSampler
from pyollama.engine.stops import StopMatcher
from pyollama.errors import InvalidRequest, PyollamaError
from pyollama.runner import pooled
from pyollama.runner.draftmodel import ModelDrafter
from pyollama.runner.media import Media, Vision
from pyollama.runner.promptcache import PromptCache, Saved, shared_prefix
from pyollama.runner.speculate import SpecState, Speculator
from pyollama.runner.types import DoneEvent, ErrorEvent, SeqRequest, Stream, TokenEvent

log = logging.getLogger("pyollama.runner")

OPEN_ENDED_CONTEXTS = 10     # num_predict -1 (or more than this) = this many context windows, as Ollama


@dataclass
class Sequence:
    stream: Stream
    tokens: list[int]                 # the prompt
    key: np.ndarray                   # the prompt as int32, for prefix comparisons
    sampler: TokenSampler
    detok: Detokenizer
    stops: StopMatcher
    num_predict: int
    logprobs: bool
    top_logprobs: int
    slot: int = -1
    n_past: int = 0                   # tokens of this sequence in the KV cache
    pending: int = -1                 # sampled, not yet decoded
    cached: int = 0                   # prompt tokens reused from the cache
    generated: list[int] = field(default_factory=list)
    out_idx: int = -1                 # batch index of this step's output, -1 = none
    t_start: int = 0
    t_prompt: int = 0
    shift: bool = True
    n_keep: int = 0                   # tokens a context shift keeps at the start (BOS included)
    truncated: int = 0                # prompt tokens dropped before evaluation
    shifted: int = 0                  # tokens dropped from the KV cache by context shifts
    shifts: int = 0
    spec: SpecState | None = None     # speculative decoding state (None: this sequence does not draft)
    draft: list[int] = field(default_factory=list)   # this step's draft, fed after `pending`
    media: Media | None = None        # the prompt's images (their places in `tokens` are negative)

    @property
    def prefilling(self) -> bool:
        return self.n_past + self.shifted < len(self.tokens)


@dataclass
class Slot:
    id: int
    cached: list[int] = field(default_factory=list)   # tokens whose KV is in this slot
    stale: bool = False               # the KV holds cells past `cached` (left by a context shift)
    last_used: float = 0.0
    seq: Sequence | None = None


class BatchLoop:
    """Owns the context and the slots; `add` requests, call `step` while `busy`. One thread."""

    def __init__(self, model: _native.Model, *, num_ctx: int, parallel: int, num_batch: int,
                 num_thread: int, flash_attn="auto", kv_cache_type: str = "f16", embedding: bool = False,
                 adapters=(), cache_ram: int = 0, speculative: str = "", draft_max: int = 8,
                 draft_model: _native.Model | None = None, draft_num_predict: int = 4,
                 vision: Vision | None = None):
        self.model = model
        self.vision = vision
        self.vocab = model.vocab
        self.parallel = parallel
        self.embedding_only = embedding
        pooling = None
        if not embedding and pooling_is_none(model):
            pooling = "mean"            # lets a generative model also answer embedding requests
        self.ctx = _native.Context(
            model, n_ctx=num_ctx * parallel, n_batch=num_batch, n_ubatch=num_batch, n_seq_max=parallel,
            n_threads=num_thread, flash_attn=flash_attn, type_k=kv_cache_type, type_v=kv_cache_type,
            kv_unified=False, embeddings=embedding, pooling=pooling)
        if adapters:
            self.ctx.set_adapters(adapters)
        self.n_ctx_slot = self.ctx.n_ctx_seq
        self.can_shift = self.ctx.memory.can_shift
        self.n_swa = model.n_swa
        self.cache = PromptCache(cache_ram)
        # Drafts need rejected cells removed again: not for recurrent state, which cannot drop a range.
        can_draft = not (model.is_recurrent or model.is_hybrid) and not embedding
        self.spec = Speculator.ngram(parallel, speculative if can_draft else "", max_draft=draft_max)
        if can_draft and draft_model is not None:
            try:
                self.spec.drafters.append((ModelDrafter(
                    draft_model, model, n_seq=parallel, n_ctx_seq=self.n_ctx_slot, n_batch=num_batch,
                    n_threads=num_thread, flash_attn=flash_attn), draft_num_predict))
            except BaseException:
                self.spec.close()               # the model is closed next: nothing may hold it
                self.ctx.close()
                raise
        self.copies = 0                 # prompts that took another slot's KV
        self.copy_tokens = 0
        self.n_batch = self.ctx.n_batch
        self.batch = _native.Batch(self.n_batch, 1)
        self.slots = [Slot(i) for i in range(parallel)]
        self.waiting: collections.deque[Sequence] = collections.deque()
        self.active: list[Sequence] = []
        self._pieces: dict[int, bytes] = {}        # token → bytes, shared by every sequence

    # --- admission -------------------------------------------------------------------------------
    def prepare(self, req: SeqRequest, stream: Stream) -> Sequence:
        """Validate and tokenize a request (any thread: touches only the vocabulary)."""
        if self.embedding_only:
            raise InvalidRequest("this model only supports embeddings")
        opts = dict(req.options or {})
        media = None
        if req.images:
            if self.vision is None:
                raise InvalidRequest("this model does not support images (it has no vision projector)")
            if not isinstance(req.prompt, str):
                raise InvalidRequest("a prompt with images must be text, with a media marker per image")
            tokens, media = self.vision.tokenize(req.prompt, list(req.images), req.add_special)
        else:
            tokens = (list(req.prompt) if not isinstance(req.prompt, str)
                      else self.vocab.tokenize(req.prompt, add_special=req.add_special, parse_special=True))
            self.checked(tokens, "prompt token")
        if not tokens:
            raise InvalidRequest("the prompt is empty")
        shift = req.shift and self.can_shift and media is None     # as llama-server: no shift with media
        n_keep = self._n_keep(opts, len(tokens))
        truncated = 0
        if len(tokens) >= self.n_ctx_slot:
            if not shift:
                why = ("; a prompt with images is never cut" if media is not None else
                       "" if self.can_shift else "; this model's memory cannot shift")
                raise InvalidRequest(f"the prompt is {len(tokens)} tokens, which does not fit the context "
                                     f"of {self.n_ctx_slot} tokens (num_ctx){why}")
            tokens, truncated = self._truncate(tokens, n_keep)
        params = SamplingParams.from_options(opts, grammar=req.grammar,
                                             grammar_triggers=tuple(req.grammar_triggers or ()))
        num_predict, stop = generation_limits(opts)
        # Ollama bounds open-ended generation (num_predict -1) at several context windows: with context
        # shift a model that never emits an end token would otherwise run for ever.
        bound = OPEN_ENDED_CONTEXTS * self.n_ctx_slot
        if num_predict < 0 or num_predict > bound:
            num_predict = bound
        return Sequence(stream=stream, tokens=tokens, key=np.asarray(tokens, dtype=np.int32),
                        sampler=TokenSampler(params, self.model, self.n_ctx_slot),
                        detok=Detokenizer(self.vocab.token_to_piece, self._pieces), stops=StopMatcher(stop),
                        num_predict=num_predict,
                        logprobs=req.logprobs or req.top_logprobs > 0, top_logprobs=max(0, req.top_logprobs),
                        shift=shift, n_keep=n_keep, truncated=truncated, media=media)

    def _n_keep(self, opts: dict, n_prompt: int) -> int:
        """llama-server's n_keep: ``num_keep`` (default 4; < 0 = the whole prompt) plus the BOS token."""
        n = opts.get("num_keep")
        n = 4 if n is None else int(n)
        if n < 0:
            n = n_prompt
        if self.vocab.add_bos:
            n += 1
        return max(0, n)

    def _truncate(self, tokens: list[int], n_keep: int) -> tuple[list[int], int]:
        """Ollama's cut for a prompt longer than the context: keep ``n_keep`` tokens, drop from just after
        them so that the first context shift's worth of room is left for the answer."""
        n_keep = min(n_keep, self.n_ctx_slot - 1)
        limit = self.n_ctx_slot - max((self.n_ctx_slot - n_keep) // 2, 1)
        discard = len(tokens) - limit
        log.warning("truncating input prompt: %d tokens for a context of %d (keep %d, new %d)",
                    len(tokens), self.n_ctx_slot, n_keep, limit)
        return tokens[:n_keep] + tokens[n_keep + discard:], discard

    def add(self, seq: Sequence) -> None:
        self.waiting.append(seq)

    @property
    def busy(self) -> bool:
        return bool(self.active or self.waiting)

    def _admit(self) -> None:
        held: list[Sequence] = []
        while self.waiting:
            free = [s for s in self.slots if s.seq is None]
            if not free:
                break
            seq = self.waiting.popleft()
            if seq.stream.cancelled:
                self._finish(seq, "cancel", release=False)
                continue
            if self._prefix_coming(seq):
                held.append(seq)
                continue
            slot = self._choose_slot(free, seq.tokens)
            keep = min(self._reuse(slot, seq), len(seq.tokens) - 1)
            if seq.media is not None:
                keep = seq.media.snap(keep)
            keep = trim_kv(self.ctx.memory, slot.id, keep, len(slot.cached), self.n_swa, stale=slot.stale)
            del slot.cached[keep:]
            slot.stale = False
            slot.seq = seq
            seq.slot = slot.id
            seq.n_past = seq.cached = keep
            seq.t_start = time.perf_counter_ns()
            seq.sampler.accept_prompt([t for t in seq.tokens if t >= 0] if seq.media else seq.tokens)
            if self.spec.enabled and seq.media is None:     # drafters take real tokens only
                seq.spec = self.spec.begin(slot.id, seq.tokens)
            self.active.append(seq)
        self.waiting.extendleft(reversed(held))

    # Worth giving up a low slot id for: a cached prefix this long (tokens) or this share of the prompt.
    PREFIX_MIN, PREFIX_SHARE = 32, 0.5

    def _choose_slot(self, free: list[Slot], tokens: list[int]) -> Slot:
        """The free slot with the longest cached prefix when that saves real work (a conversation's
        history), else the lowest free id. Low ids matter: with a KV stream per slot, upstream puts
        only consecutive sequence ids in one micro-batch (split_equal, sequential), so a step over
        slots {0,1,2} is one graph computation while {0,2,5} is three."""
        best = max(free, key=lambda s: (common_prefix(s.cached, tokens), -s.id))
        gain = common_prefix(best.cached, tokens)
        if gain >= self.PREFIX_MIN or gain >= self.PREFIX_SHARE * len(tokens):
            return best
        return min(free, key=lambda s: s.id)

    def _prefix_coming(self, seq: Sequence) -> bool:
        """Whether a sequence being evaluated shares a long prefix with this prompt and has not computed
        it yet: then this one waits a step or two and copies it (a shared system prompt or document is
        evaluated once, not once per concurrent request)."""
        coming = 0
        for other in self.active:
            if other.prefilling and not other.shifts:
                n = min(shared_prefix(other.key, seq.key), len(seq.tokens) - 1)
                if other.n_past < n:
                    coming = max(coming, n)
        if coming < self.PREFIX_MIN:
            return False
        _, have = self._donor(None, seq)
        return coming - have >= self.PREFIX_MIN

    def _reuse(self, slot: Slot, seq: Sequence) -> int:
        """Bring the longest prefix of the prompt that is anywhere in memory into ``slot``: its own KV,
        another slot's (copied), or a saved sequence (restored). What the slot held is saved first when
        it is about to be lost. Returns how many prompt tokens the slot now holds."""
        own = common_prefix(slot.cached, seq.tokens)
        donor, gain = self._donor(slot, seq)
        if donor is None or gain < own + self.PREFIX_MIN:
            if len(slot.cached) - own >= self.PREFIX_MIN:
                self.save_slot(slot)
            return own
        if isinstance(donor, Saved):
            self.cache.touch(donor)           # the save below must not evict what is about to be restored
        self.save_slot(slot)
        try:
            if isinstance(donor, Saved):
                self.ctx.set_seq_state(donor.state, slot.id)
                slot.cached = donor.tokens.tolist()
                self.cache.used_as(donor, gain)
            else:
                self.ctx.set_seq_state(self.ctx.seq_state(donor.id), slot.id)
                slot.cached = list(donor.cached)
                self.copies += 1
                self.copy_tokens += gain
        except PyollamaError as e:
            log.warning("could not reuse a cached prefix (%s); evaluating the prompt in full", e)
            self.ctx.memory.seq_rm(slot.id, -1, -1)
            slot.cached.clear()
            return 0
        slot.stale = False
        return gain

    def _donor(self, slot: Slot | None, seq: Sequence) -> tuple[Slot | Saved | None, int]:
        """Where the longest prefix of the prompt is held, other than ``slot``: another slot (its KV
        lines up with its token list unless a context shift moved it) or the RAM cache."""
        donor, gain = self.cache.best(seq.key) if self.cache.enabled else (None, 0)
        for other in self.slots:
            if other is not slot and not other.stale and len(other.cached) > gain:
                n = common_prefix(other.cached, seq.tokens)
                if n > gain:
                    donor, gain = other, n
        return donor, gain

    def save_slot(self, slot: Slot) -> None:
        """Keep what ``slot`` holds in the RAM cache (when it is worth keeping and not kept already)."""
        if not self.cache.enabled or slot.stale or len(slot.cached) < self.PREFIX_MIN:
            return
        key = np.asarray(slot.cached, dtype=np.int32)
        if self.cache.covers(key) or self.ctx.seq_state_size(slot.id) + key.nbytes > self.cache.budget:
            return                                # already kept, or could never be (no copy made)
        self.cache.put(key, self.ctx.seq_state(slot.id))

    def allocated(self) -> list[dict]:
        """Bytes per device (``Context.allocated``'s entries) of the context and a draft model's, summed
        by device."""
        out: dict[str, dict] = {}
        ctxs = [self.ctx] + [d.ctx for d, _ in self.spec.drafters if isinstance(d, ModelDrafter)]
        for ctx in ctxs:
            for u in ctx.allocated():
                e = out.setdefault(u["device"], {**u, "model": 0, "context": 0, "compute": 0})
                for k in ("model", "context", "compute"):
                    e[k] += u[k]
        return list(out.values())

    def stats(self) -> dict:
        """Figures for /metrics: slots, KV cells, prompt cache. Read from any thread (a snapshot that
        may be a step old; the loop thread owns the state)."""
        busy = used = 0
        for s in self.slots:
            seq = s.seq
            busy += seq is not None
            used += seq.n_past if seq is not None else len(s.cached)
        return {"slots": len(self.slots), "slots_busy": busy, "waiting": len(self.waiting),
                "kv_cells": self.n_ctx_slot * len(self.slots), "kv_cells_used": used,
                "slot_copies": self.copies, "slot_copy_tokens": self.copy_tokens, **self.spec.stats(),
                "prompt_cache": self.cache.stats()}

    # --- the step --------------------------------------------------------------------------------
    def step(self) -> None:
        """Admit, pack one batch, decode, sample (verifying drafts). Finished sequences get their
        DoneEvent."""
        for seq in [s for s in self.active if s.stream.cancelled]:
            self._finish(seq, "cancel")
        self._admit()
        if self.vision is not None:
            self._eval_media()
        if not self.active:
            return
        b = self.batch
        b.reset()
        # What each sequence feeds this step: one token when decoding (plus a draft, when it has one),
        # then prompt chunks (in admission order) with the budget that is left.
        fed: list[tuple[Sequence, list[int]]] = []
        for seq in self.active:
            seq.out_idx = -1
        decoding = [s for s in self.active if not s.prefilling]
        budget = self.n_batch - len(decoding)
        if len(decoding) < len(self.active):
            budget -= self.n_batch // 4          # drafts must not starve prompts being evaluated
        # Drafts only for a lone decoding sequence: with a KV stream per slot, upstream splits a batch
        # into micro-batches of equal tokens per sequence, so one sequence's draft beside others' single
        # tokens costs extra passes over the weights (measured: slower at 4 streams, not faster).
        lone = len(decoding) == 1
        for seq in decoding:
            seq.draft = self._draft(seq, budget) if seq.spec is not None and lone else []
            budget -= len(seq.draft)
            fed.append((seq, [seq.pending] + seq.draft))
        budget = self.n_batch - sum(len(t) for _, t in fed)
        for seq in self.active:
            if budget <= 0:
                break
            if seq.prefilling:
                end = seq.n_past + budget
                if seq.media is not None:               # text up to the next image
                    end = min(end, seq.media.next_start(seq.n_past, end))
                chunk = seq.tokens[seq.n_past: end]
                if not chunk:
                    continue
                fed.append((seq, chunk))
                budget -= len(chunk)
        # Tokens in slot order: upstream splits a multi-stream batch into micro-batches of
        # consecutive sequence ids taken in batch order.
        fed.sort(key=lambda f: f[0].slot)
        for seq, toks in fed:
            if seq.draft:
                seq.out_idx = b.add_sequence(toks, seq.n_past, seq.slot, output_all=True)
            elif not seq.prefilling:
                seq.out_idx = b.add(toks[0], seq.n_past, seq.slot, True)
            else:
                last = seq.n_past + len(toks) == len(seq.tokens)
                start = b.add_sequence(toks, seq.n_past, seq.slot, output_last=last)
                if last:
                    seq.out_idx = start + len(toks) - 1
        try:
            self.ctx.decode(b)
        except PyollamaError as e:
            for seq, _ in fed:
                self._fail(seq, e)
            return
        for seq, toks in fed:
            if seq.draft:
                continue                        # its bookkeeping waits for the verification
            seq.n_past += len(toks)
            if not seq.shifts:              # after a shift the KV no longer lines up with a token list
                self.slots[seq.slot].cached.extend(toks)
        for seq, toks in fed:
            if seq.draft:
                self._verify(seq, toks)
            elif seq.out_idx >= 0:
                self._sample(seq)

    def _eval_media(self) -> None:
        """Evaluate the images that come next in prompts being evaluated, each in its own decode before
        the step's batch (their embeddings cannot share a batch with tokens)."""
        for seq in list(self.active):
            span = seq.media.at(seq.n_past) if seq.media is not None and seq.prefilling else None
            while span is not None:
                try:
                    self.vision.eval(self.ctx, seq.media, span, seq.n_past, seq.slot, self.n_batch)
                except PyollamaError as e:
                    self._fail(seq, e)
                    break
                seq.n_past = span.end
                self.slots[seq.slot].cached.extend(seq.tokens[span.start:span.end])
                span = seq.media.at(seq.n_past)

    def _draft(self, seq: Sequence, budget: int) -> list[int]:
        """A draft for a decoding sequence, within the context (one spare cell, as _room keeps), what is
        left of num_predict, and the step's batch."""
        room = min(budget, self.n_ctx_slot - seq.n_past - 2)
        if seq.num_predict >= 0:
            room = min(room, seq.num_predict - len(seq.generated) - 1)
        return self.spec.draft(seq.slot, seq.spec, seq.generated, room) if room > 0 else []

    def _verify(self, seq: Sequence, toks: list[int]) -> None:
        """Sample every fed position with the sequence's sampler and keep the tokens up to the first that
        differs from the draft (each kept token is what sampling alone would have produced); drop the
        KV cells of the rest, then emit the kept tokens as if they had come one step at a time."""
        draft, seq.draft = seq.draft, []
        self._prompt_done(seq)
        picked: list[tuple[int, list | None]] = []
        try:
            for i in range(len(draft) + 1):
                lp = logprobs(self.ctx.logits(seq.out_idx + i)) if seq.logprobs else None
                token = seq.sampler.sample(self.ctx, seq.out_idx + i)
                picked.append((token, lp))
                if i == len(draft) or token != draft[i] or self.vocab.is_eog(token):
                    break
        except PyollamaError as e:
            self._fail(seq, e)
            return
        n_ok = len(picked) - 1
        kept = toks[:1 + n_ok]
        seq.n_past += len(kept)
        if n_ok < len(draft):
            self.ctx.memory.seq_rm(seq.slot, seq.n_past, -1)
        if not seq.shifts:
            self.slots[seq.slot].cached.extend(kept)
        self.spec.verified(seq.slot, seq.spec, draft, n_ok)
        for i, (token, lp) in enumerate(picked):
            if not self._emit(seq, token, lp, last=i == n_ok):
                return

    def _prompt_done(self, seq: Sequence) -> None:
        """Mark the end of ``seq``'s prompt evaluation at its first sampling. Backends may compute
        asynchronously (a GPU, an RPC worker): wait for them first, or the prompt's compute time would be
        counted as the first generated token's."""
        if not seq.t_prompt:
            self.ctx.synchronize()
            seq.t_prompt = time.perf_counter_ns()

    def _sample(self, seq: Sequence) -> None:
        self._prompt_done(seq)
        try:
            lps = logprobs(self.ctx.logits(seq.out_idx)) if seq.logprobs else None
            token = seq.sampler.sample(self.ctx, seq.out_idx)
        except PyollamaError as e:
            self._fail(seq, e)
            return
        self._emit(seq, token, lps, last=True)

    def _emit(self, seq: Sequence, token: int, lps, *, last: bool) -> bool:
        """One sampled token to the stream; False when it ended the sequence. Only the ``last`` token of a
        step still has to be decoded (it becomes ``pending``): the others are in the KV already."""
        lp_entries = entries(seq.detok.token_bytes, token, *lps, seq.top_logprobs) if lps is not None else None
        if self.vocab.is_eog(token):
            self._finish(seq, "stop")
            return False
        seq.generated.append(token)
        text, matched = seq.stops.feed(seq.detok.feed(token))
        if text or lp_entries:
            seq.stream.put(TokenEvent(text, token, lp_entries))
        if matched is not None:
            self._finish(seq, "stop", flush=False, stop=matched)
            return False
        if 0 <= seq.num_predict <= len(seq.generated) or (last and not self._room(seq)):
            self._finish(seq, "length")
            return False
        if last:
            seq.pending = token
        return True

    def _room(self, seq: Sequence) -> bool:
        """Whether the sampled token can be decoded: a free cell (with shift on, llama-server keeps one
        spare), else a context shift that makes room."""
        if not seq.shift:
            return seq.n_past < self.n_ctx_slot
        return seq.n_past + 1 < self.n_ctx_slot or self._shift(seq)

    def _shift(self, seq: Sequence) -> bool:
        """Make room in a full slot: keep ``n_keep`` tokens, drop half of the rest, move the tail down.
        As llama-server does it at the pin (one cell before the slot is full, n_keep ≤ n_ctx - 4), so
        greedy output equals ``llama-server --context-shift --keep num_keep``."""
        keep = min(seq.n_keep, self.n_ctx_slot - 4)
        left = seq.n_past - keep
        discard = max(0, min(left // 2, left - 1))
        if discard <= 0:
            return False
        mem = self.ctx.memory
        if not mem.seq_rm(seq.slot, keep, keep + discard):
            return False
        mem.seq_add(seq.slot, keep + discard, seq.n_past, -discard)
        seq.n_past -= discard
        seq.shifted += discard
        seq.shifts += 1
        # What stays after the kept head was computed beside tokens that are gone: not a prefix any
        # later prompt can reuse as is.
        slot = self.slots[seq.slot]
        del slot.cached[keep:]
        slot.stale = True
        return True

    # --- endings ---------------------------------------------------------------------------------
    def _finish(self, seq: Sequence, reason: str, *, flush: bool = True, release: bool = True,
                stop: str | None = None) -> None:
        if flush and reason != "cancel":
            tail = seq.stops.flush() + seq.detok.flush()
            if tail:
                seq.stream.put(TokenEvent(tail, -1))
        now = time.perf_counter_ns()
        t_prompt = seq.t_prompt or now
        seq.stream.put(DoneEvent(
            done_reason=reason, prompt_eval_count=len(seq.tokens),
            prompt_eval_duration=max(0, t_prompt - seq.t_start) if seq.t_start else 0,
            eval_count=len(seq.generated), eval_duration=max(0, now - t_prompt) if seq.t_start else 0,
            prompt_cached=seq.cached, tokens=list(seq.generated), prompt_truncated=seq.truncated,
            context_shifts=seq.shifts, draft_tokens=seq.spec.drafted if seq.spec else 0,
            draft_accepted=seq.spec.accepted if seq.spec else 0, stop=stop))
        if release:
            self._release(seq)

    def _fail(self, seq: Sequence, error: BaseException) -> None:
        seq.stream.put(ErrorEvent(error))
        if seq.slot >= 0:
            self.ctx.memory.seq_rm(seq.slot, -1, -1)      # its KV state is unknown now
            self.slots[seq.slot].cached.clear()
        self._release(seq)

    def _release(self, seq: Sequence) -> None:
        if seq in self.active:
            self.active.remove(seq)
        if seq.slot >= 0:
            slot = self.slots[seq.slot]
            slot.seq = None
            slot.last_used = time.monotonic()

    def fail_all(self, error: BaseException) -> None:
        for seq in list(self.active) + list(self.waiting):
            seq.stream.put(ErrorEvent(error))
        self.active.clear()
        self.waiting.clear()

    # --- embeddings ------------------------------------------------------------------------------
    def embed(self, inputs: list[str | list[int]], truncate: bool = True,
              normalize: bool = True) -> tuple[np.ndarray, int]:
        """Pooled embeddings between generation steps, on a free slot (``pooled.embed``)."""
        return pooled.embed(self, inputs, truncate, normalize)

    def checked(self, tokens: list[int], what: str = "token") -> list[int]:
        bad = [t for t in tokens if not 0 <= t < self.vocab.n_tokens]
        if bad:
            raise InvalidRequest(f"{what} {bad[0]} is out of range for a vocabulary of {self.vocab.n_tokens}")
        return tokens

    def close(self) -> None:
        self.spec.close()
        self.batch.close()
        self.ctx.close()
