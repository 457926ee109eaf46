"""``POST /api/generate`` (docs/contract.md §2.1): the request as a ChatTurn with a prompt (the same path as
every chat surface), and the native chunks back; plus the two answers without a generation (load, unload).

Thread-safety: a Starlette endpoint on the event loop.
"""
from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pyollama.api import body as B
from pyollama.api.conversation import ChatJob, ChatTurn
from pyollama.api.inference import Delta
from pyollama.api.ndjson import Chunks
from pyollama.api.state import ServerState
from pyollama.scheduler import parse_keep_alive


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
    await turn.find()
    events = await turn.native(request, t_start, empty=not prompt, debug=debug, answer=lambda fields: {
        "model": model, "created_at": B.now_rfc3339(), "response": "", **fields})
    if isinstance(events, dict):
        return JSONResponse(events)

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
                    if not job.raw:
                        # (an image's places are left out: a context carries text only, as Ollama's)
                        final["context"] = [t for t in turn.tokens if t >= 0] + list(ev.done.tokens)
                    final.update(ev.metrics())
                    yield final
        finally:
            await events.aclose()

    return Chunks(chunks(), stream=stream, aggregate=aggregate, on_close=turn.release)
