"""``POST /api/generate`` (docs/contract.md §2.1): translation between the request, the template, the
scheduler and the runner; nothing more.

Thread-safety: a Starlette endpoint on the event loop.
"""
from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pyollama.api import body as B
from pyollama.api import prompt as P
from pyollama.api.conversation import (check_images, check_thinking, context_shift, dedupe_bos,
                                       grammar_triggers)
from pyollama.api.inference import Delta, OutputParser, in_thread
from pyollama.api.inference import generate as run
from pyollama.api.ndjson import Chunks
from pyollama.api.state import ServerState
from pyollama.engine.sampling import SamplingParams
from pyollama.errors import InvalidRequest
from pyollama.runner.types import SeqRequest
from pyollama.scheduler import parse_keep_alive, plan


def token_ids(value: Any, where: str, n_vocab: int) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in value):
        raise InvalidRequest(f'"{where}" must be an array of token ids')
    bad = [t for t in value if not 0 <= t < n_vocab]
    if bad:
        raise InvalidRequest(f"token {bad[0]} in {where} is out of range for a vocabulary of {n_vocab}")
    return list(value)


def vocab_size(rec: Any) -> int:
    tokens = plan.header(rec.model_path).kv.get("tokenizer.ggml.tokens")
    return len(tokens) if isinstance(tokens, list) else int(getattr(tokens, "count", 0) or 0)


def aggregate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """``stream: false``: the final chunk with the text, thinking and logprobs of all chunks."""
    out = dict(items[-1]) if items else {}
    out["response"] = "".join(c.get("response", "") for c in items)
    thinking = "".join(c.get("thinking", "") for c in items)
    if thinking:
        out["thinking"] = thinking
    calls = [tc for c in items for tc in c.get("tool_calls", [])]
    if calls:
        out["tool_calls"] = calls
    lps = [lp for c in items for lp in c.get("logprobs") or []]
    if lps:
        out["logprobs"] = lps
    return out


async def generate(request: Request) -> Response:
    st: ServerState = request.app.state.server
    t_start = time.perf_counter_ns()
    b = await B.read_json(request)
    model = B.string(b, "model")
    prompt, suffix = B.string(b, "prompt"), B.string(b, "suffix")
    system, template = B.string(b, "system"), B.string(b, "template")
    raw = bool(B.boolean(b, "raw"))
    context = B.array(b, "context")
    stream = B.stream_flag(b)
    keep_alive = parse_keep_alive(b.get("keep_alive"))
    think = B.think(b)
    top_logprobs = B.top_logprobs(b)
    logprobs = bool(B.boolean(b, "logprobs"))
    truncate = B.boolean(b, "truncate", True)
    shift = B.boolean(b, "shift")
    debug = bool(B.boolean(b, "_debug_render_only"))
    images = B.images(b.get("images"))
    fmt = B.format_value(b)
    options = B.options(b)

    rec = await st.record(model)
    if not prompt and keep_alive == 0:
        await st.sched.expire(str(rec.model_path))
        return JSONResponse({"model": model, "created_at": B.now_rfc3339(), "response": "", "done": True,
                             "done_reason": "unload"})
    if raw and (template or system or context):
        raise InvalidRequest("raw mode does not support template, system, or context")
    caps = P.capabilities(rec)
    if "completion" not in caps:
        raise InvalidRequest(f'"{model}" does not support generate')
    if suffix and "insert" not in caps:
        raise InvalidRequest(f'"{model}" does not support insert')
    think = check_thinking(model, caps, think)
    check_images(model, bool(images))
    ctx_tokens = token_ids(context, "context", vocab_size(rec)) if context else []
    grammar = B.grammar_for(fmt)
    merged = plan.merged_options(rec.params, options)
    SamplingParams.from_options(merged)               # a bad sampling value is a 400 before any load
    load = st.load_request(rec, options)

    lease = await st.lease(request, load, keep_alive)
    t_loaded = time.perf_counter_ns()
    try:
        if not prompt:
            lease.release()
            return JSONResponse({"model": model, "created_at": B.now_rfc3339(), "response": "", "done": True,
                                 "done_reason": "load"})
        n_ctx = st.n_ctx(lease)
        tmpl = P.model_template(rec, template)
        await tmpl.prepare()

        async def tokenize(text: str) -> list[int]:
            # A previous response's `context` continues as tokens (exact, unlike Ollama's detokenize +
            # re-tokenize round trip, which loses special tokens); it already starts with any BOS.
            if P.surely_too_long(text, n_ctx):
                raise P.too_many_chars(text, n_ctx)
            toks = await st.vocabs.tokenize(rec.model_path, text, not ctx_tokens, True)
            return ctx_tokens + dedupe_bos(toks, rec)

        if raw:
            text, tokens = prompt, await tokenize(prompt)
        elif suffix:
            text = await in_thread(lambda: tmpl.render_generate(prompt, suffix=suffix, think=think))
            tokens = await tokenize(text)
        else:
            msgs: list[dict[str, Any]] = []
            sys_text = system or rec.system
            if sys_text:
                msgs.append({"role": "system", "content": sys_text})
            if not ctx_tokens:
                msgs += rec.messages
            msgs.append({"role": "user", "content": prompt})
            if template:             # a request template renders as is (Ollama's legacy path)
                text = await in_thread(tmpl.render_chat, msgs, None, think)
                tokens = await tokenize(text)
            else:
                text, tokens = await P.fit_chat(lambda m: tmpl.render_chat(m, None, think), tokenize, msgs,
                                                n_ctx, bool(truncate))
        if ctx_tokens:
            text = await st.vocabs.detokenize(rec.model_path, ctx_tokens) + text
        if debug:
            lease.release()
            return JSONResponse({"model": model, "created_at": B.now_rfc3339(), "response": "", "done": False,
                                 "_debug_info": {"rendered_template": text, "image_count": 0}})
        if len(tokens) >= n_ctx:
            raise P.too_long(len(tokens), n_ctx)
        parser = OutputParser(tmpl.thinking_parser(text, caps) if B.think_on(think) and not raw else None)
        seq = SeqRequest(prompt=tokens, options=merged, grammar=grammar,
                         grammar_triggers=grammar_triggers(grammar, parser),
                         logprobs=logprobs or top_logprobs > 0, top_logprobs=top_logprobs,
                         shift=context_shift(shift, rec.model_path))
        events = run(lease, seq, parser, t_start=t_start, t_loaded=t_loaded, metrics=st.metrics)
    except BaseException:
        lease.release()
        raise

    async def chunks():
        try:
            async for ev in events:
                if isinstance(ev, Delta):
                    c: dict[str, Any] = {"model": model, "created_at": B.now_rfc3339(), "response": ev.content}
                    if ev.thinking:
                        c["thinking"] = ev.thinking
                    c["done"] = False
                    if ev.tool_calls:
                        c["tool_calls"] = ev.tool_calls
                    if ev.logprobs:
                        c["logprobs"] = ev.logprobs
                    yield c
                else:
                    final: dict[str, Any] = {"model": model, "created_at": B.now_rfc3339(), "response": "",
                                             "done": True, "done_reason": ev.done.done_reason}
                    if not raw:
                        final["context"] = list(tokens) + list(ev.done.tokens)
                    final.update(ev.metrics())
                    yield final
        finally:
            await events.aclose()

    return Chunks(chunks(), stream=stream, aggregate=aggregate, on_close=lease.release)
