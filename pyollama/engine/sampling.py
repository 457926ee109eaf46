"""Sampling: Ollama's options → a libllama sampler chain, with fast paths that skip the
full-vocabulary candidate array when the options allow it.

Order follows llama.cpp's default chain: penalties → DRY → top-n-sigma → top-k → typical →
top-p → min-p → XTC → temperature → dist. temperature <= 0 is greedy (as in Ollama).

Fast paths (equal results, measured in tests/engine/test_sampling.py):
- greedy without penalties/bias: argmax over the raw logits;
- top_k > 0 without penalties/bias/DRY: the k best logits are selected in C and only the rest of
  the chain runs, over k candidates instead of the whole vocabulary.
A grammar is checked against the chosen token first and only applied to the full vocabulary when
it rejects it (llama.cpp's common sampler does the same).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from pyollama import _native
from pyollama.errors import InvalidRequest


@dataclass
class SamplingParams:
    """Sampling options under Ollama's names (defaults as Ollama's)."""

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.9
    min_p: float = 0.0
    typical_p: float = 1.0
    repeat_last_n: int = 64
    repeat_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int = -1
    # llama.cpp samplers Ollama no longer exposes; kept for power users.
    mirostat: int = 0
    mirostat_tau: float = 5.0
    mirostat_eta: float = 0.1
    top_n_sigma: float = -1.0
    xtc_probability: float = 0.0
    xtc_threshold: float = 0.1
    dry_multiplier: float = 0.0
    dry_base: float = 1.75
    dry_allowed_length: int = 2
    dry_penalty_last_n: int = -1
    logit_bias: dict[int, float] = field(default_factory=dict)
    grammar: str | None = None          # GBNF
    # Lazy grammar: regexes over the output so far; the grammar starts constraining at the first
    # match, from the match's first group on (llama.cpp semantics) — e.g. after "</think>".
    grammar_triggers: tuple[str, ...] = ()

    @classmethod
    def from_options(cls, options: dict | None = None, **overrides) -> SamplingParams:
        """Take the sampling keys out of an Ollama `options` dict (others are ignored)."""
        merged = {**(options or {}), **overrides}
        known = {f.name: f for f in fields(cls)}
        kw = {}
        for key, value in merged.items():
            if key not in known or value is None:
                continue
            kw[key] = _coerce(key, value, known[key].type)
        p = cls(**kw)
        p.validate()
        return p

    def validate(self) -> None:
        if self.repeat_penalty <= 0:
            raise InvalidRequest(f"repeat_penalty must be > 0, not {self.repeat_penalty}")
        if self.mirostat not in (0, 1, 2):
            raise InvalidRequest(f"mirostat must be 0, 1 or 2, not {self.mirostat}")
        if not -1 <= self.seed <= 0xFFFFFFFF:
            raise InvalidRequest(f"seed must be -1 (random) or fit in 32 bits, not {self.seed}")

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0 and self.mirostat == 0

    @property
    def penalizes(self) -> bool:
        return self.repeat_last_n != 0 and (self.repeat_penalty != 1.0 or self.presence_penalty != 0.0
                                            or self.frequency_penalty != 0.0)


def _coerce(key: str, value, typ: str):
    try:
        if typ == "float":
            return float(value)
        if typ == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if key == "logit_bias":
            return {int(k): float(v) for k, v in dict(value).items()}
        if key == "grammar":
            return str(value)
        if key == "grammar_triggers":
            return tuple(str(v) for v in value)
    except (TypeError, ValueError):
        raise InvalidRequest(f"option {key} must be {typ}, not {value!r}") from None
    return value


class TokenSampler:
    """Per-sequence sampler built from SamplingParams. `sample(ctx, idx)` returns the chosen token
    and records it (penalty history, grammar state). One thread at a time."""

    def __init__(self, params: SamplingParams, model: _native.Model, n_ctx: int):
        self.params = params
        vocab = model.vocab
        self.n_vocab = n_vocab = vocab.n_tokens
        p = params
        self.grammar = None
        if p.grammar and p.grammar_triggers:
            self.grammar = _native.Sampler.grammar_lazy(vocab, p.grammar, trigger_patterns=p.grammar_triggers)
        elif p.grammar:
            self.grammar = _native.Sampler.grammar(vocab, p.grammar)

        head = []           # samplers that must see the whole vocabulary
        if p.penalizes:
            last_n = n_ctx if p.repeat_last_n < 0 else p.repeat_last_n
            head.append(_native.Sampler.penalties(last_n, p.repeat_penalty, p.frequency_penalty,
                                                  p.presence_penalty))
        if p.dry_multiplier > 0:
            head.append(_native.Sampler.dry(vocab, p.dry_multiplier, p.dry_base, p.dry_allowed_length,
                                            p.dry_penalty_last_n))
        if p.logit_bias:
            head.append(_native.Sampler.logit_bias(n_vocab, p.logit_bias))
        self._full_vocab = bool(head) or p.top_n_sigma > 0 or (p.top_k <= 0 and not p.greedy)

        tail = []           # samplers that run after top-k
        if p.greedy:
            tail.append(_native.Sampler.greedy())
        elif p.mirostat == 1:
            tail += [_native.Sampler.temp(p.temperature),
                     _native.Sampler.mirostat(n_vocab, p.seed, p.mirostat_tau, p.mirostat_eta)]
        elif p.mirostat == 2:
            tail += [_native.Sampler.temp(p.temperature),
                     _native.Sampler.mirostat_v2(p.seed, p.mirostat_tau, p.mirostat_eta)]
        else:
            if p.typical_p < 1.0:
                tail.append(_native.Sampler.typical(p.typical_p))
            if p.top_p < 1.0:
                tail.append(_native.Sampler.top_p(p.top_p))
            if p.min_p > 0.0:
                tail.append(_native.Sampler.min_p(p.min_p))
            if p.xtc_probability > 0.0:
                tail.append(_native.Sampler.xtc(p.xtc_probability, p.xtc_threshold, 1, p.seed))
            tail += [_native.Sampler.temp(p.temperature), _native.Sampler.dist(p.seed)]

        # Mirostat chooses from the whole distribution: no top-k in front of it. A k past the vocabulary
        # means the whole vocabulary (llama.cpp's top-k clamps it too); unclamped, the C top-k pass would
        # read past the logits and the scratch buffer would be sized by k.
        self._top_k = min(p.top_k, n_vocab) if p.top_k > 0 and p.mirostat == 0 and not p.greedy else 0
        if self._full_vocab or p.mirostat:
            mid = []
            if p.top_n_sigma > 0:
                mid.append(_native.Sampler.top_n_sigma(p.top_n_sigma))
            if self._top_k:
                mid.append(_native.Sampler.top_k(self._top_k))
            self.chain = _native.SamplerChain([*head, *mid, *tail])
            self._mode = "chain"
        elif p.greedy:
            self.chain = None
            self._mode = "argmax"
        else:
            self.chain = _native.SamplerChain(tail)
            self._mode = "top_k"
        self._scratch = _native.Candidates.from_logits(np.zeros(max(self._top_k, 1), np.float32))
        if self.grammar is not None:
            self._one = _native.Candidates.from_logits(np.zeros(1, np.float32))
            self._gscratch = _native.Candidates.from_logits(np.zeros(1, np.float32))
            self._top_k_sampler = _native.Sampler.top_k(self._top_k) if self._top_k else None

    @property
    def mode(self) -> str:
        """'argmax', 'top_k' or 'chain' (the full-vocabulary path)."""
        return self._mode

    def accept_prompt(self, tokens) -> None:
        """Let the penalty history see (the tail of) the prompt, as llama-server does."""
        if self._mode == "chain" and self.params.penalizes:
            for t in tokens[-max(self.params.repeat_last_n, 0) or None:]:
                self.chain.accept(t)

    def sample(self, ctx: _native.Context, idx: int = -1) -> int:
        if self.grammar is None:
            return self._pick(ctx, idx)                  # the chain accepts the token itself
        # With a grammar the chain accepts only the token finally chosen, as upstream's common
        # sampler does: a rejected first pick must not enter the penalty/DRY history.
        token = self._pick(ctx, idx, accept=False)
        if not self._grammar_allows(token):
            token = self._pick_with_grammar(ctx, idx)
        if self.chain is not None:
            self.chain.accept(token)
        self.grammar.accept(token)
        return token

    def _pick(self, ctx: _native.Context, idx: int, accept: bool = True) -> int:
        if self._mode == "argmax":
            return _native.argmax(ctx, idx)
        if self._mode == "top_k":
            return _native.sample_top_k(ctx, idx, self._top_k, self.chain, self._scratch, accept)
        if accept:
            return self.chain.sample(ctx, idx)
        cand = _native.Candidates.from_logits(ctx.logits(idx))
        self.chain.apply(cand)
        return cand.selected_token

    def _grammar_allows(self, token: int) -> bool:
        # One reused candidate; its logit value is irrelevant, the grammar only writes -inf.
        one = self._one
        one.ids[0] = token
        one.logits[0] = 0.0
        self.grammar.apply(one)
        return bool(np.isfinite(one.logits[0]))

    # Rejections are common under a schema; the grammar is first run over the top candidates
    # only. Exact: if at least `need` of the top-M raw candidates are allowed, they are the `need`
    # best allowed tokens of the whole vocabulary (every other token has a lower logit).
    grammar_top = 256               # 0: always the full vocabulary (tests compare the two)

    def _pick_with_grammar(self, ctx: _native.Context, idx: int) -> int:
        if self._mode in ("argmax", "top_k") and self.grammar_top:
            need = 1 if self._mode == "argmax" else self._top_k
            cand = _native.top_candidates(ctx, idx, max(self.grammar_top, 4 * need), self._gscratch)
            self.grammar.apply(cand)
            logits = cand.logits
            ok = np.isfinite(logits)
            if int(ok.sum()) >= need:
                ids = cand.ids[ok][:need]
                if self._mode == "argmax":
                    return int(ids[0])
                best = _native.Candidates.from_logits(logits[ok][:need], ids)
                best.sorted = True
                return self._choose(best)
        cand = _native.Candidates.from_logits(ctx.logits(idx))
        self.grammar.apply(cand)
        if self._mode == "argmax":
            lg = cand.logits
            if not np.isfinite(lg).any():
                raise InvalidRequest("the grammar allows no token here")
            return int(cand.ids[int(np.argmax(lg))])
        if self._mode == "top_k":
            self._top_k_sampler.apply(cand)
        return self._choose(cand)

    def _choose(self, cand: _native.Candidates) -> int:
        """The chain's choice among grammar-allowed candidates (accepted by the caller)."""
        self.chain.apply(cand)
        return cand.selected_token

    def reset(self) -> None:
        if self.chain is not None:
            self.chain.reset()
        if self.grammar is not None:
            self.grammar.reset()
