"""``POST /api/chat`` (OLLAMA.md §2.2): messages + the model's stored history and SYSTEM, truncation by
whole messages, thinking and tool-call parsing; translation only.

Thread-safety: a Starlette endpoint on the event loop.
"""
from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pyollama.api import body as B
from pyollama.api import prompt as P
from pyollama.api.generate import check_images, check_thinking, dedupe_bos
from pyollama.api.inference import Delta, OutputParser, in_thread
from pyollama.api.inference import generate as run
from pyollama.api.ndjson import Chunks
from pyollama.api.state import ServerState
from pyollama.engine.sampling import SamplingParams
from pyollama.errors import InvalidRequest
from pyollama.runner.types import SeqRequest
from pyollama.scheduler import parse_keep_alive, plan
from pyollama.templates import ThinkingParser

ROLES = ("system", "user", "assistant", "tool")


def messages(b: dict[str, Any]) -> tuple[list[dict[str, Any]], bool]:
    """The request's messages, checked and normalized (roles lower-cased, as Ollama); and whether any
    carries images."""
    raw = B.array(b, "messages") or []
    out = []
    has_images = False
    for i, m in enumerate(raw):
        if not isinstance(m, dict):
            raise InvalidRequest(f"messages[{i}] must be an object")
        role = B.string(m, "role").lower()
        if role not in ROLES:
            raise InvalidRequest(f'messages[{i}]: invalid role "{m.get("role")}" (must be one of system, user, '
                                 'assistant, tool)')
        msg: dict[str, Any] = {"role": role, "content": B.string(m, "content")}
        for key in ("thinking", "tool_name", "tool_call_id"):
            if m.get(key) is not None:
                msg[key] = B.string(m, key)
        calls = B.array(m, "tool_calls")
        if calls:
            if not all(isinstance(c, dict) and isinstance(c.get("function"), dict) for c in calls):
                raise InvalidRequest(f"messages[{i}].tool_calls must be objects with a function")
            msg["tool_calls"] = calls
        if m.get("images") is not None:
            has_images |= bool(B.images(m.get("images"), f"messages[{i}].images"))
        out.append(msg)
    return out, has_images


def tools(b: dict[str, Any]) -> list[dict[str, Any]]:
    ts = B.array(b, "tools") or []
    for i, t in enumerate(ts):
        if not isinstance(t, dict):
            raise InvalidRequest(f"tools[{i}] must be an object")
    return ts


def strip_history_thinking(msgs: list[dict[str, Any]], rec: Any) -> list[dict[str, Any]]:
    """qwen3 and deepseek-r1: drop ``<think>`` blocks from assistant turns before the last user turn
    (Ollama's filterThinkTags)."""
    if rec.config.get("model_family") != "qwen3" and rec.name.parts[2] != "deepseek-r1":
        return msgs
    last_user = max((i for i, m in enumerate(msgs) if m["role"] == "user"), default=-1)
    out = []
    for i, m in enumerate(msgs):
        if m["role"] == "assistant" and i < last_user:
            p = ThinkingParser("<think>", "</think>")
            content = p.feed(m["content"]).content + p.finish().content
            m = {**m, "content": content}
        out.append(m)
    return out


def aggregate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """``stream: false``: the final chunk with the content, thinking, tool calls and logprobs of all."""
    out = dict(items[-1]) if items else {}
    msg = dict(out.get("message") or {"role": "assistant"})
    msg["content"] = "".join(c["message"].get("content", "") for c in items)
    thinking = "".join(c["message"].get("thinking", "") for c in items)
    if thinking:
        msg["thinking"] = thinking
    calls = [tc for c in items for tc in c["message"].get("tool_calls", [])]
    if calls:
        msg["tool_calls"] = calls
    out["message"] = msg
    lps = [lp for c in items for lp in c.get("logprobs") or []]
    if lps:
        out["logprobs"] = lps
    return out


async def chat(request: Request) -> Response:
    st: ServerState = request.app.state.server
    t_start = time.perf_counter_ns()
    b = await B.read_json(request)
    model = B.string(b, "model")
    if not model:
        raise InvalidRequest("model is required")
    msgs, has_images = messages(b)
    req_tools = tools(b)
    stream = B.stream_flag(b)
    keep_alive = parse_keep_alive(b.get("keep_alive"))
    think = B.think(b)
    top_logprobs = B.top_logprobs(b)
    logprobs = bool(B.boolean(b, "logprobs"))
    truncate = B.boolean(b, "truncate", True)
    debug = bool(B.boolean(b, "_debug_render_only"))
    fmt = B.format_value(b)
    options = B.options(b)

    rec = await st.record(model)
    if not msgs and keep_alive == 0:
        await st.sched.expire(str(rec.model_path))
        return JSONResponse({"model": model, "created_at": B.now_rfc3339(),
                             "message": {"role": "assistant", "content": ""}, "done": True,
                             "done_reason": "unload"})
    caps = P.capabilities(rec)
    if "completion" not in caps:
        raise InvalidRequest(f'"{model}" does not support chat')
    if req_tools and "tools" not in caps:
        raise InvalidRequest(f"{rec.name.full()} does not support tools")
    think = check_thinking(model, caps, think)
    check_images(model, has_images)
    grammar = B.grammar_for(fmt)
    merged = plan.merged_options(rec.params, options)
    SamplingParams.from_options(merged)
    load = st.load_request(rec, options)

    lease = await st.lease(request, load, keep_alive)
    t_loaded = time.perf_counter_ns()
    try:
        if not msgs:
            lease.release()
            return JSONResponse({"model": model, "created_at": B.now_rfc3339(),
                                 "message": {"role": "assistant", "content": ""}, "done": True,
                                 "done_reason": "load"})
        runner = lease.runner
        n_ctx = st.n_ctx(lease)
        history = list(rec.messages) + msgs
        if msgs[0]["role"] != "system" and rec.system:
            history.insert(0, {"role": "system", "content": rec.system})
        history = strip_history_thinking(history, rec)
        tmpl = P.model_template(rec)
        if tmpl.is_jinja:
            await in_thread(tmpl.jinja)             # compile (and read BOS/EOS texts) off the event loop

        async def tokenize(text: str) -> list[int]:
            return dedupe_bos(await in_thread(runner.tokenize, text, True, True), rec)

        text, tokens = await P.fit_chat(lambda m: tmpl.render_chat(m, req_tools or None, think), tokenize,
                                        history, n_ctx, bool(truncate))
        if debug:
            lease.release()
            return JSONResponse({"model": model, "created_at": B.now_rfc3339(),
                                 "message": {"role": "", "content": ""}, "done": False,
                                 "_debug_info": {"rendered_template": text, "image_count": 0}})
        parser = OutputParser(tmpl.thinking_parser(text, caps) if B.think_on(think) else None,
                              tmpl.tool_parser(req_tools) if req_tools else None)
        seq = SeqRequest(prompt=tokens, options=merged, grammar=grammar, logprobs=logprobs or top_logprobs > 0,
                         top_logprobs=top_logprobs)
        events = run(lease, seq, parser, t_start=t_start, t_loaded=t_loaded)
    except BaseException:
        lease.release()
        raise

    async def chunks():
        try:
            async for ev in events:
                if isinstance(ev, Delta):
                    m: dict[str, Any] = {"role": "assistant", "content": ev.content}
                    if ev.thinking:
                        m["thinking"] = ev.thinking
                    if ev.tool_calls:
                        m["tool_calls"] = ev.tool_calls
                    c: dict[str, Any] = {"model": model, "created_at": B.now_rfc3339(), "message": m, "done": False}
                    if ev.logprobs:
                        c["logprobs"] = ev.logprobs
                    yield c
                else:
                    yield {"model": model, "created_at": B.now_rfc3339(),
                           "message": {"role": "assistant", "content": ""}, "done": True,
                           "done_reason": ev.done.done_reason, **ev.metrics()}
        finally:
            await events.aclose()

    return Chunks(chunks(), stream=stream, aggregate=aggregate, on_close=lease.release)
