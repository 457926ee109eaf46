"""``POST /api/chat`` (docs/contract.md §2.2): messages + the model's stored history and SYSTEM, truncation by
whole messages, thinking and tool-call parsing; translation only.

Thread-safety: a Starlette endpoint on the event loop.
"""
from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from pyollama.api import body as B
from pyollama.api.conversation import ChatJob, ChatTurn
from pyollama.api.inference import Delta, Final
from pyollama.api.ndjson import Chunks, joined
from pyollama.api.state import ServerState
from pyollama.errors import InvalidRequest
from pyollama.scheduler import parse_keep_alive

ROLES = ("system", "user", "assistant", "tool")


def messages(b: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's messages, checked and normalized (roles lower-cased, as Ollama; images decoded)."""
    raw = B.array(b, "messages") or []
    out = []
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
        images = B.images(m.get("images"), f"messages[{i}].images")
        if images:
            msg["images"] = images
        out.append(msg)
    return out


def tools(b: dict[str, Any]) -> list[dict[str, Any]]:
    ts = B.array(b, "tools") or []
    for i, t in enumerate(ts):
        if not isinstance(t, dict):
            raise InvalidRequest(f"tools[{i}] must be an object")
    return ts


def aggregate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """``stream: false``: the final chunk with the content, thinking, tool calls and logprobs of all."""
    return joined(items, "content", inner="message")


async def chat(request: Request) -> Response | Chunks:
    st: ServerState = request.app.state.server
    t_start = time.perf_counter_ns()
    b = await B.read_json(request)
    model = B.string(b, "model")
    if not model:
        raise InvalidRequest("model is required")
    msgs = messages(b)
    job = ChatJob(model=model, messages=msgs, tools=tools(b), think=B.think(b), format=B.format_value(b),
                  top_logprobs=B.top_logprobs(b), logprobs=bool(B.boolean(b, "logprobs")),
                  keep_alive=parse_keep_alive(b.get("keep_alive")),
                  truncate=bool(B.boolean(b, "truncate", True)), shift=B.boolean(b, "shift"))
    stream = B.stream_flag(b)
    debug = bool(B.boolean(b, "_debug_render_only"))
    job.options = B.options(b)

    def chunk(ev: Delta | Final) -> dict[str, Any]:
        if isinstance(ev, Final):
            return {"model": model, "created_at": B.now_rfc3339(), "message": {"role": "assistant", "content": ""},
                    "done": True, "done_reason": ev.done.done_reason, **ev.metrics()}
        m: dict[str, Any] = {"role": "assistant", "content": ev.content}
        if ev.thinking:
            m["thinking"] = ev.thinking
        if ev.tool_calls:
            m["tool_calls"] = ev.tool_calls
        c: dict[str, Any] = {"model": model, "created_at": B.now_rfc3339(), "message": m, "done": False}
        if ev.logprobs:
            c["logprobs"] = ev.logprobs
        return c

    return await ChatTurn(st, job).native(
        request, t_start, empty=not msgs, debug=debug, stream=stream, chunk=chunk, aggregate=aggregate,
        answer=lambda fields: {"model": model, "created_at": B.now_rfc3339(),
                               "message": {"role": "assistant" if fields["done"] else "", "content": ""}, **fields})
