"""Samplers: built-ins, chains and ownership, Python callback samplers, fast paths vs full chains."""
from __future__ import annotations

import numpy as np
import pytest

from pyollama import _native
from pyollama.engine import LLM, SamplingParams, TokenSampler
from pyollama.errors import SamplerError


@pytest.fixture(scope="module")
def llm(tiny_model_path):
    with LLM(tiny_model_path, num_ctx=512) as m:
        yield m


def _decode_prompt(llm, text="Once upon a time"):
    llm._prefill(llm.tokenize(text), cache=False)
    return llm.ctx


def test_every_builtin_constructs(llm):
    v = llm.vocab
    samplers = [
        _native.Sampler.greedy(), _native.Sampler.dist(7), _native.Sampler.top_k(40),
        _native.Sampler.top_p(0.9), _native.Sampler.min_p(0.05), _native.Sampler.typical(0.95),
        _native.Sampler.temp(0.7), _native.Sampler.temp_ext(0.7, 0.2, 1.0), _native.Sampler.xtc(0.5, 0.1),
        _native.Sampler.top_n_sigma(1.5), _native.Sampler.mirostat(v.n_tokens, 1), _native.Sampler.mirostat_v2(1),
        _native.Sampler.penalties(64, 1.1, 0.1, 0.1), _native.Sampler.dry(v, 0.8),
        _native.Sampler.logit_bias(v.n_tokens, {5: -10.0}), _native.Sampler.infill(v),
        _native.Sampler.grammar(v, 'root ::= "yes" | "no"'), _native.Sampler.adaptive_p(0.5, 0.9, 3),
        _native.Sampler.grammar_lazy(v, 'root ::= "{" [a-z]* "}"', trigger_patterns=[r"[\s\S]*\{"]),
    ]
    names = [s.name for s in samplers]
    assert "greedy" in names and "top-k" in names and "grammar" in names
    assert samplers[1].seed == 7


def test_chain_takes_ownership(llm):
    tk = _native.Sampler.top_k(10)
    chain = _native.SamplerChain([tk, _native.Sampler.greedy()])
    assert len(chain) == 2 and chain.names == ["top-k", "greedy"]
    with pytest.raises(ValueError, match="empty"):
        tk.name                                         # handed over: the chain owns it now
    removed = chain.remove(0)
    assert removed.name == "top-k" and len(chain) == 1


def test_bad_grammar_is_a_clear_error(llm):
    with pytest.raises(SamplerError, match="grammar"):
        _native.Sampler.grammar(llm.vocab, "root ::= (unclosed")


def test_seed_range():
    with pytest.raises(SamplerError, match="32 bits"):
        _native.Sampler.dist(2**40)


def test_python_sampler_bans_a_token(llm):
    ctx = _decode_prompt(llm)
    favourite = _native.argmax(ctx, -1)

    def ban(cand):
        cand.logits[cand.ids == favourite] = -np.inf

    chain = _native.SamplerChain([_native.python_sampler(ban), _native.Sampler.greedy()])
    assert chain.sample(ctx, -1) != favourite
    # and over a whole generation: the banned token never appears
    gen_tokens = []
    llm._prefill(llm.tokenize("Once upon a time"), cache=False)
    pos = len(llm._cached)
    chain2 = _native.SamplerChain([_native.python_sampler(ban), _native.Sampler.temp(1.5),
                                   _native.Sampler.dist(1)])
    b = _native.Batch(1)
    for _ in range(48):
        t = chain2.sample(llm.ctx, -1)
        gen_tokens.append(t)
        b.reset()
        b.add(t, pos, 0, True)
        llm.ctx.decode(b)
        pos += 1
    assert favourite not in gen_tokens and len(set(gen_tokens)) > 5


def test_python_sampler_can_select_and_shrink(llm):
    ctx = _decode_prompt(llm)

    class PickSmallestId:
        def __init__(self):
            self.accepted = []

        def apply(self, cand):
            order = np.argsort(cand.ids)
            cand.selected = int(order[0])

        def accept(self, token):
            self.accepted.append(token)

    obj = PickSmallestId()
    s = _native.python_sampler(obj)
    assert s.sample(ctx, -1) == 0 and obj.accepted == [0]


def test_python_sampler_exception_surfaces(llm):
    ctx = _decode_prompt(llm)

    calls = []

    def broken_once(cand):
        calls.append(1)
        if len(calls) == 1:
            raise KeyError("inside the sampler")

    chain = _native.SamplerChain([_native.python_sampler(broken_once), _native.Sampler.greedy()])
    with pytest.raises(KeyError, match="inside the sampler"):
        chain.sample(ctx, -1)
    assert chain.sample(ctx, -1) == _native.argmax(ctx, -1)    # the chain stays usable


def test_seeded_dist_is_reproducible(llm):
    a = llm.complete("The weather today", num_predict=24, temperature=0.9, seed=1234, cache=False)
    b = llm.complete("The weather today", num_predict=24, temperature=0.9, seed=1234, cache=False)
    c = llm.complete("The weather today", num_predict=24, temperature=0.9, seed=99, cache=False)
    assert a.tokens == b.tokens and a.text == b.text
    assert a.tokens != c.tokens


@pytest.mark.parametrize("opts", [
    dict(temperature=0.0),
    dict(temperature=0.8, top_k=40, top_p=0.9, seed=5),
    dict(temperature=1.2, top_k=7, min_p=0.05, seed=11),
    dict(temperature=0.7, top_k=20, typical_p=0.9, seed=3),
])
def test_fast_path_equals_full_chain(llm, opts):
    """The top-k/argmax fast paths choose exactly what upstream's full chain chooses."""
    params = SamplingParams.from_options(opts)
    fast = TokenSampler(params, llm.model, llm.n_ctx)
    assert fast.mode in ("argmax", "top_k")
    full = _full_chain(params)
    tokens = llm.tokenize("In a village far away")
    llm._prefill(tokens, cache=False)
    pos, b = len(tokens), _native.Batch(1)
    for _ in range(40):
        t_fast = fast.sample(llm.ctx, -1)
        t_full = full.sample(llm.ctx, -1)
        assert t_fast == t_full
        b.reset()
        b.add(t_fast, pos, 0, True)
        llm.ctx.decode(b)
        pos += 1


def _full_chain(p: SamplingParams):
    """The chain llama.cpp's common sampler builds for these options (temp<=0 → greedy)."""
    if p.temperature <= 0:
        return _native.SamplerChain([_native.Sampler.greedy()])
    s = [_native.Sampler.top_k(p.top_k)]
    if p.typical_p < 1:
        s.append(_native.Sampler.typical(p.typical_p))
    if p.top_p < 1:
        s.append(_native.Sampler.top_p(p.top_p))
    if p.min_p > 0:
        s.append(_native.Sampler.min_p(p.min_p))
    s += [_native.Sampler.temp(p.temperature), _native.Sampler.dist(p.seed)]
    return _native.SamplerChain(s)


def test_penalties_use_full_chain_and_prevent_repeats(llm):
    prompt = "la la la la la"
    base = llm.complete(prompt, num_predict=128, temperature=0, cache=False)
    assert len(set(base.tokens)) < len(base.tokens)            # greedy repeats itself
    pen = llm.complete(prompt, num_predict=128, temperature=0, presence_penalty=100.0,
                       repeat_last_n=-1, cache=False)
    assert len(set(pen.tokens)) == len(pen.tokens)             # a big presence penalty forbids that
    assert not set(pen.tokens) & set(llm.tokenize(prompt))     # and the prompt counts as history
    assert TokenSampler(SamplingParams(repeat_penalty=1.5), llm.model, 512).mode == "chain"


def test_grammar_constrains_generation(llm):
    gbnf = 'root ::= "{" ws "\\"a\\"" ws ":" ws [0-9]+ ws "}"\nws ::= [ \\t\\n]?'
    g = llm.complete("Output:", num_predict=24, temperature=0, grammar=gbnf, cache=False)
    import re
    # 24 tokens may end before the closing brace: the text is a prefix of the grammar's language
    assert re.fullmatch(r'\{\s?"a"\s?:\s?[0-9]+(\s?\})?', g.text), g.text


def test_logit_bias_ban(llm):
    ctx = _decode_prompt(llm)
    top = _native.argmax(ctx, -1)
    g = llm.complete("Once upon a time", num_predict=16, temperature=0, logit_bias={top: float("-inf")},
                     cache=False)
    assert top not in g.tokens


def test_candidates_views():
    c = _native.Candidates.from_logits(np.array([0.5, 2.0, -1.0], np.float32))
    assert list(c.ids) == [0, 1, 2] and c.logits[1] == 2.0
    _native.Sampler.greedy().apply(c)
    assert c.selected_token == 1
    c.size = 1
    assert len(c) == 1
    with pytest.raises(ValueError):
        c.size = 5


@pytest.mark.parametrize("opts", [dict(temperature=0), dict(temperature=0.9, top_k=40, top_p=0.95, seed=7)])
def test_grammar_top_candidates_equal_full_vocabulary(llm, opts):
    """Running the grammar over the top-256 candidates picks what the full-vocabulary pass picks."""
    from pyollama.engine.grammar import format_to_gbnf
    gbnf = format_to_gbnf({"type": "object", "properties": {"n": {"type": "integer"}, "s": {"type": "string"}},
                           "required": ["n", "s"]})
    runs = []
    for top in (256, 0):
        ts = TokenSampler(SamplingParams.from_options(opts, grammar=gbnf), llm.model, llm.n_ctx)
        ts.grammar_top = top
        tokens = llm.tokenize("Data:")
        llm._prefill(tokens, cache=False)
        pos, b, out = len(tokens), _native.Batch(1), []
        for _ in range(40):
            t = ts.sample(llm.ctx, -1)
            if llm.vocab.is_eog(t):
                break
            out.append(t)
            b.reset()
            b.add(t, pos, 0, True)
            llm.ctx.decode(b)
            pos += 1
        runs.append(out)
    assert runs[0] == runs[1] and len(runs[0]) > 5


class _RecordingChain:
    """The real chain, with a record of what enters its history (sample() accepts, too)."""

    def __init__(self, chain):
        self.chain, self.history, self.applies = chain, [], 0

    def sample(self, ctx, idx):
        t = self.chain.sample(ctx, idx)
        self.history.append(t)
        return t

    def apply(self, cand):
        self.applies += 1
        self.chain.apply(cand)

    def accept(self, t):
        self.history.append(t)
        self.chain.accept(t)


def test_grammar_rejected_pick_stays_out_of_the_penalty_history(llm):
    """Penalties see only the tokens finally chosen, as in upstream's common sampler: a first
    pick the grammar rejects is not accepted into the chain."""
    from pyollama.engine.grammar import format_to_gbnf
    gbnf = format_to_gbnf({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]})
    ts = TokenSampler(SamplingParams.from_options({"temperature": 0.8, "seed": 3, "repeat_penalty": 1.3},
                                                  grammar=gbnf), llm.model, llm.n_ctx)
    assert ts.mode == "chain"
    ts.chain = rec = _RecordingChain(ts.chain)
    tokens = llm.tokenize("Data:")
    llm._prefill(tokens, cache=False)
    pos, b, out = len(tokens), _native.Batch(1), []
    for _ in range(20):
        t = ts.sample(llm.ctx, -1)
        out.append(t)
        if llm.vocab.is_eog(t):
            break
        b.reset()
        b.add(t, pos, 0, True)
        llm.ctx.decode(b)
        pos += 1
    assert rec.applies > len(out)              # the grammar rejected some first picks
    assert rec.history == out


def test_lazy_grammar_starts_after_trigger(llm):
    """Free text until the trigger matches, then only what the grammar allows."""
    gbnf = 'root ::= "42" [.]'
    free = llm.complete("Numbers:", num_predict=12, temperature=0, cache=False)
    never = llm.complete("Numbers:", num_predict=12, temperature=0, cache=False, grammar=gbnf,
                         grammar_triggers=[r"[\s\S]*?(QQQ-never[\s\S]*)"])
    assert never.tokens == free.tokens                      # not triggered: unconstrained
    eager = llm.complete("Numbers:", num_predict=12, temperature=0, cache=False, grammar=gbnf)
    assert eager.text == "42." and eager.done_reason == "stop"


def test_grammar_violation_is_an_error_not_a_crash(llm):
    """A trigger firing inside a token whose remaining text the grammar rejects: upstream throws a
    C++ exception through its C API; it must surface as SamplerError, not abort the process."""
    free = llm.complete("Numbers:", num_predict=40, temperature=0, cache=False).text
    letter = next(ch for ch in free if ch.isalpha() and ch not in "42.")
    with pytest.raises(SamplerError, match="grammar"):
        llm.complete("Numbers:", num_predict=40, temperature=0, cache=False, grammar='root ::= "42" [.]',
                     grammar_triggers=[rf"[\s\S]*?({letter}[\s\S]*)"])
    assert llm.complete("Numbers:", num_predict=3, temperature=0, cache=False).eval_count == 3
