"""``POST /api/generate`` (docs/contract.md §2.1): the request as a ChatTurn with a prompt (the same path as
every chat surface), and the native chunks back; plus the two answers without a generation (load, unload).

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
from pyollama.scheduler import parse_keep_alive


def aggregate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """``stream: false``: the final chunk with the text, thinking, tool calls and logprobs of all."""
    return joined(items, "response")


async def generate(request: Request) -> Response | Chunks:
    st: ServerState = request.app.state.server
    t_start = time.perf_counter_ns()
    b = await B.read_json(request)
    model = B.string(b, "model")
    prompt = B.string(b, "prompt")
    context = B.array(b, "context")          # checked as token ids once the model is known
    stream = B.stream_flag(b)
    keep_alive = parse_keep_alive(b.get("keep_alive"))
    top_logprobs = B.top_logprobs(b)
    debug = bool(B.boolean(b, "_debug_render_only"))
    job = ChatJob(model=model, messages=[], prompt=prompt, suffix=B.string(b, "suffix"),
                  system=B.string(b, "system"), template=B.string(b, "template"), raw=bool(B.boolean(b, "raw")),
                  think=B.think(b), format=B.format_value(b), options=B.options(b),
                  logprobs=bool(B.boolean(b, "logprobs")), top_logprobs=top_logprobs, keep_alive=keep_alive,
                  truncate=bool(B.boolean(b, "truncate", True)), shift=B.boolean(b, "shift"),
                  images=B.images(b.get("images")), context=list(context or []))
    turn = ChatTurn(st, job)

    def chunk(ev: Delta | Final) -> dict[str, Any]:
        if isinstance(ev, Final):
            final: dict[str, Any] = {"model": model, "created_at": B.now_rfc3339(), "response": "",
                                     "done": True, "done_reason": ev.done.done_reason}
            if not job.raw:
                # (an image's places are left out: a context carries text only, as Ollama's)
                final["context"] = [t for t in turn.tokens if t >= 0] + list(ev.done.tokens)
            final.update(ev.metrics())
            return final
        c: dict[str, Any] = {"model": model, "created_at": B.now_rfc3339(), "response": ev.content}
        if ev.thinking:
            c["thinking"] = ev.thinking
        c["done"] = False
        if ev.tool_calls:
            c["tool_calls"] = ev.tool_calls
        if ev.logprobs:
            c["logprobs"] = ev.logprobs
        return c

    return await turn.native(request, t_start, empty=not prompt, debug=debug, stream=stream, chunk=chunk,
                             aggregate=aggregate, answer=lambda fields: {
                                 "model": model, "created_at": B.now_rfc3339(), "response": "", **fields})
