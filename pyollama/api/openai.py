"""OpenAI-compatible endpoints (docs/contract.md §11): ``POST /v1/chat/completions``, ``/v1/completions``,
``POST /v1/embeddings``, ``GET /v1/models``, ``GET /v1/models/{id}``. ``/v1/responses`` is in
``pyollama.api.responses``.

Each request is translated into a native chat turn (``pyollama.api.conversation``) and its events back
into OpenAI's objects; nothing here generates or parses model output itself. Differences from the
native API, as Ollama has them: responses do not stream unless ``stream: true``; an absent
``temperature`` / ``top_p`` means 1.0 (overriding the Modelfile); thinking is ``reasoning`` (and
``reasoning_content``, which many clients read); tool-call arguments are JSON strings. Beyond Ollama:
``tool_choice`` is honoured (``pyollama.api.toolchoice``) and ``n`` > 1 is refused rather than ignored.

Streams are SSE: ``data: <chunk>\\n\\n``; the first chunk's delta carries the role, a separate chunk
carries ``finish_reason`` with an empty delta, ``stream_options.include_usage`` adds a chunk with
``choices: []`` and ``usage``, and ``data: [DONE]`` ends it.

Thread-safety: Starlette endpoints on the event loop.
"""
from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pyollama.api import body as B
from pyollama.api import compat as X
from pyollama.api import toolchoice
from pyollama.api.conversation import ChatJob, ChatTurn
from pyollama.api.embed import compute as embed_compute
from pyollama.api.errors import OPENAI, message_of, shaped_body, status_of
from pyollama.api.inference import Delta, Final
from pyollama.api.sse import Event, EventStream
from pyollama.api.state import ServerState
from pyollama.errors import InvalidRequest, ModelNotFound, StoreError
from pyollama.store.model import load as load_model

log = logging.getLogger("pyollama.api")

FINGERPRINT = "fp_ollama"


# --- requests → native ---------------------------------------------------------------------------
def sampling(b: dict[str, Any], *, max_keys: tuple[str, ...] = ("max_tokens",)) -> dict[str, Any]:
    """OpenAI sampling fields → native options. Absent temperature / top_p are 1.0, as Ollama sends."""
    opts: dict[str, Any] = {"temperature": X.number(b, "temperature", 0, 2), "top_p": X.number(b, "top_p", 0, 1)}
    opts = {k: 1.0 if v is None else v for k, v in opts.items()}
    for key in max_keys:
        n = X.count(b, key, 1)
        if n is not None:
            opts["num_predict"] = n
    seed = X.count(b, "seed", -(2 ** 63))
    if seed is not None:
        opts["seed"] = seed & 0xFFFFFFFF               # OpenAI seeds are 64-bit; the sampler takes 32
    for key in ("frequency_penalty", "presence_penalty"):
        v = X.number(b, key, -2, 2)
        if v is not None:
            opts[key] = v
    stops = X.stop_list(b.get("stop"))
    if stops:
        opts["stop"] = stops
    n = X.count(b, "n", 1)
    if n is not None and n > 1:
        raise InvalidRequest("n > 1 is not supported: ask for one choice per request")
    return opts


def chat_messages(raw: Any) -> list[dict[str, Any]]:
    """OpenAI messages → native messages (``image_url`` parts become the message's images)."""
    if not isinstance(raw, list):
        raise InvalidRequest('"messages" must be an array')
    if not raw:
        raise InvalidRequest("[] is too short - 'messages'")
    out: list[dict[str, Any]] = []
    names: dict[str, str] = {}                # tool_call_id → function name, from earlier assistant turns
    for i, m in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise InvalidRequest(f"{where} must be an object")
        role = B.string(m, "role").lower()
        if role == "developer":
            role = "system"
        if role not in ("system", "user", "assistant", "tool"):
            raise InvalidRequest(f'{where}: invalid role "{m.get("role")}"')
        text, images = content_parts(m.get("content"), where)
        msg: dict[str, Any] = {"role": role, "content": text}
        if images:
            msg["images"] = images
        thinking = m.get("reasoning") or m.get("reasoning_content")
        if isinstance(thinking, str) and thinking:
            msg["thinking"] = thinking
        calls = m.get("tool_calls")
        if calls:
            if not isinstance(calls, list):
                raise InvalidRequest(f"{where}.tool_calls must be an array")
            msg["tool_calls"] = []
            for k, c in enumerate(calls):
                fn = c.get("function") if isinstance(c, dict) else None
                if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                    raise InvalidRequest(f"{where}.tool_calls[{k}] must be a function call with a name")
                args = X.parse_arguments(fn.get("arguments"), f"{where}.tool_calls[{k}]")
                call_id = c.get("id") if isinstance(c.get("id"), str) else ""
                if call_id:
                    names[call_id] = fn["name"]
                msg["tool_calls"].append({"id": call_id, "function": {"index": k, "name": fn["name"],
                                                                        "arguments": args}})
        if role == "tool":
            call_id = m.get("tool_call_id") or ""
            if not isinstance(call_id, str):
                raise InvalidRequest(f"{where}.tool_call_id must be a string")
            if call_id:
                msg["tool_call_id"] = call_id
            name = m.get("name") if isinstance(m.get("name"), str) else names.get(call_id, "")
            if name:
                msg["tool_name"] = name
        out.append(msg)
    return out


def content_parts(content: Any, where: str) -> tuple[str, list[bytes]]:
    """A message's content: a string, or parts (text, image_url as a data URI, refusal)."""
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}.content must be a string or an array of parts")
    texts, images = [], []
    for k, p in enumerate(content):
        kind = p.get("type") if isinstance(p, dict) else None
        if kind in ("text", "input_text", "output_text"):
            texts.append(B.string(p, "text"))
        elif kind == "refusal":
            texts.append(B.string(p, "refusal"))
        elif kind == "image_url":
            url = p.get("image_url")
            images.append(X.image_data(url.get("url") if isinstance(url, dict) else url, f"{where}.content[{k}]"))
        elif kind == "input_audio":
            raise InvalidRequest(f"{where}.content[{k}]: audio input is not supported")
        else:
            raise InvalidRequest(f"{where}.content[{k}]: unknown content part type {kind!r}")
    return "\n\n".join(texts), images


def chat_tools(raw: Any) -> list[dict[str, Any]]:
    def tool(i: int, t: Any) -> dict[str, Any]:
        fn = t.get("function") if isinstance(t, dict) else None
        if not isinstance(t, dict) or t.get("type", "function") != "function" or not isinstance(fn, dict):
            raise InvalidRequest(f"tools[{i}] must be {{\"type\": \"function\", \"function\": {{...}}}}")
        return X.function_tool(fn.get("name"), fn.get("description"), fn.get("parameters"), f"tools[{i}]")
    return X.tool_list(raw, tool)


def response_format(v: Any) -> str | dict[str, Any] | None:
    if v is None:
        return None
    kind = v.get("type") if isinstance(v, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        js = v.get("json_schema")
        schema = js.get("schema") if isinstance(js, dict) else None
        if schema is None:
            return "json"
        if not isinstance(schema, dict):
            raise InvalidRequest("response_format.json_schema.schema must be an object")
        return schema
    raise InvalidRequest('response_format.type must be "text", "json_object" or "json_schema"')


def thinking_request(b: dict[str, Any]) -> bool | str | None:
    effort = b.get("reasoning_effort")
    reasoning = b.get("reasoning")
    if effort is None and isinstance(reasoning, dict):
        return X.effort_think(reasoning.get("effort"), "reasoning.effort")
    return X.effort_think(effort)


# --- native → OpenAI -----------------------------------------------------------------------------
def usage(final: Final | None) -> dict[str, int]:
    p = final.done.prompt_eval_count if final else 0
    c = final.done.eval_count if final else 0
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def finish_reason(final: Final | None, called: bool) -> str:
    if called:
        return "tool_calls"
    return "length" if final is not None and final.done.done_reason == "length" else "stop"


def tool_calls(calls: list[dict[str, Any]], start: int = 0) -> list[dict[str, Any]]:
    return [{"index": start + i, "id": c["id"], "type": "function",
             "function": {"name": c["function"]["name"], "arguments": X.call_arguments(c)}}
            for i, c in enumerate(calls)]


def token_logprobs(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Native logprob items → OpenAI's (``top_logprobs`` always present, as the SDK types expect it)."""
    return [{"token": it["token"], "logprob": it["logprob"], "bytes": it.get("bytes"),
             "top_logprobs": [{"token": t["token"], "logprob": t["logprob"], "bytes": t.get("bytes")}
                              for t in it.get("top_logprobs") or []]} for it in items]


def error_event(e: BaseException) -> Event:
    return None, shaped_body(OPENAI, status_of(e), message_of(e))


# --- /v1/chat/completions ------------------------------------------------------------------------
async def chat_completions(request: Request) -> Response | EventStream:
    st: ServerState = request.app.state.server
    t_start = time.perf_counter_ns()
    b = await B.read_json(request)
    model = B.string(b, "model")
    msgs = chat_messages(b.get("messages"))
    tools = chat_tools(b.get("tools"))
    choice, name = toolchoice.parse(b.get("tool_choice"))
    logprobs = bool(B.boolean(b, "logprobs"))
    stream = bool(B.boolean(b, "stream"))
    opts = B.obj(b, "stream_options") or {}
    include_usage = stream and bool(opts.get("include_usage"))
    job = ChatJob(model=model, messages=msgs, tools=tools, tool_choice=choice, tool_name=name,
                  think=thinking_request(b), format=response_format(b.get("response_format")),
                  options=sampling(b, max_keys=("max_tokens", "max_completion_tokens")), logprobs=logprobs,
                  top_logprobs=B.top_logprobs(b) if logprobs else 0)
    turn = ChatTurn(st, job)
    events = await turn.launch(request, t_start)
    cid, created = X.new_id("chatcmpl-"), int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None, lps: list[dict[str, Any]] | None = None
              ) -> Event:
        c: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                             "system_fingerprint": FINGERPRINT,
                             "choices": [{"index": 0, "delta": delta, "logprobs":
                                          {"content": token_logprobs(lps)} if lps else None,
                                          "finish_reason": finish}]}
        if include_usage:
            c["usage"] = None
        return None, c

    async def sse() -> AsyncIterator[Event]:
        n_calls = 0
        started = False
        try:
            async for ev in events:
                if not started:
                    yield chunk({"role": "assistant", "content": ""})
                    started = True
                if isinstance(ev, Delta):
                    lps = ev.logprobs
                    if ev.thinking:                  # thinking and content go out as separate chunks
                        yield chunk({"reasoning": ev.thinking, "reasoning_content": ev.thinking}, lps=lps)
                        lps = None
                    if ev.content or lps:
                        yield chunk({"content": ev.content}, lps=lps)
                    if ev.tool_calls:
                        yield chunk({"tool_calls": tool_calls(ev.tool_calls, n_calls)})
                        n_calls += len(ev.tool_calls)
                else:
                    yield chunk({}, finish_reason(ev, n_calls > 0))
                    if include_usage:
                        yield None, {"id": cid, "object": "chat.completion.chunk", "created": created,
                                     "model": model, "system_fingerprint": FINGERPRINT, "choices": [],
                                     "usage": usage(ev)}
        finally:
            await events.aclose()

    def aggregate(items: list[Delta | Final]) -> dict[str, Any]:
        deltas = [d for d in items if isinstance(d, Delta)]
        final = next((f for f in items if isinstance(f, Final)), None)
        calls = [c for d in deltas for c in d.tool_calls]
        msg: dict[str, Any] = {"role": "assistant", "content": "".join(d.content for d in deltas)}
        thinking = "".join(d.thinking for d in deltas)
        if thinking:
            msg["reasoning"] = msg["reasoning_content"] = thinking
        if calls:
            msg["tool_calls"] = tool_calls(calls)
        lps = [lp for d in deltas for lp in d.logprobs or []]
        return {"id": cid, "object": "chat.completion", "created": created, "model": model,
                "system_fingerprint": FINGERPRINT,
                "choices": [{"index": 0, "message": msg, "finish_reason": finish_reason(final, bool(calls)),
                             "logprobs": {"content": token_logprobs(lps)} if logprobs else None}],
                "usage": usage(final)}

    if stream:
        return EventStream(sse(), stream=True, surface=OPENAI, error_event=error_event, done_marker=True,
                           on_close=turn.release)
    return EventStream(events, stream=False, surface=OPENAI, error_event=error_event, aggregate=aggregate,
                       on_close=turn.release)


# --- /v1/completions -----------------------------------------------------------------------------
def legacy_logprobs(items: list[dict[str, Any]], offset: int = 0) -> dict[str, Any]:
    """Native logprob items → the completions API's parallel arrays."""
    offsets, pos = [], offset
    for it in items:
        offsets.append(pos)
        pos += len(it["token"])
    return {"tokens": [it["token"] for it in items], "token_logprobs": [it["logprob"] for it in items],
            "top_logprobs": [{t["token"]: t["logprob"] for t in it.get("top_logprobs") or []} for it in items],
            "text_offset": offsets}


async def completions(request: Request) -> Response | EventStream:
    st: ServerState = request.app.state.server
    t_start = time.perf_counter_ns()
    b = await B.read_json(request)
    model = B.string(b, "model")
    prompt = b.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise InvalidRequest('"prompt" must be a string (token arrays and batches are not supported)')
    suffix = B.string(b, "suffix")
    n_logprobs = X.count(b, "logprobs", 0)
    if n_logprobs is not None and n_logprobs > 20:
        raise InvalidRequest("logprobs must be between 0 and 20")
    stream = bool(B.boolean(b, "stream"))
    include_usage = stream and bool((B.obj(b, "stream_options") or {}).get("include_usage"))
    job = ChatJob(model=model, messages=[], prompt=prompt, suffix=suffix,
                  options=sampling(b), logprobs=n_logprobs is not None, top_logprobs=n_logprobs or 0)
    turn = ChatTurn(st, job)
    events = await turn.launch(request, t_start)
    cid, created = X.new_id("cmpl-"), int(time.time())

    def choice(text: str, finish: str | None, lps: list[dict[str, Any]] | None, offset: int = 0) -> dict[str, Any]:
        return {"text": text, "index": 0, "logprobs": legacy_logprobs(lps or [], offset) if job.logprobs else None,
                "finish_reason": finish}

    def obj(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {"id": cid, "object": "text_completion", "created": created, "model": model,
                "system_fingerprint": FINGERPRINT, "choices": choices, **extra}

    async def sse() -> AsyncIterator[Event]:
        offset = 0
        try:
            async for ev in events:
                if isinstance(ev, Delta):
                    if ev.content or ev.logprobs:
                        yield None, obj([choice(ev.content, None, ev.logprobs, offset)])
                        offset += len(ev.content)
                else:
                    yield None, obj([choice("", finish_reason(ev, False), None)])
                    if include_usage:
                        yield None, obj([], usage=usage(ev))
        finally:
            await events.aclose()

    def aggregate(items: list[Delta | Final]) -> dict[str, Any]:
        deltas = [d for d in items if isinstance(d, Delta)]
        final = next((f for f in items if isinstance(f, Final)), None)
        lps = [lp for d in deltas for lp in d.logprobs or []]
        return obj([choice("".join(d.content for d in deltas), finish_reason(final, False), lps)],
                   usage=usage(final))

    if stream:
        return EventStream(sse(), stream=True, surface=OPENAI, error_event=error_event, done_marker=True,
                           on_close=turn.release)
    return EventStream(events, stream=False, surface=OPENAI, error_event=error_event, aggregate=aggregate,
                       on_close=turn.release)


# --- /v1/embeddings ------------------------------------------------------------------------------
async def embeddings(request: Request) -> Response:
    st: ServerState = request.app.state.server
    b = await B.read_json(request)
    model = B.string(b, "model")
    raw = b.get("input")
    if isinstance(raw, str):
        inputs = [raw]
    elif isinstance(raw, list) and raw and all(isinstance(s, str) for s in raw):
        inputs = list(raw)
    else:
        raise InvalidRequest("invalid input: must be a string or a non-empty array of strings")
    if any(not s for s in inputs):
        raise InvalidRequest("invalid input: empty strings cannot be embedded")
    fmt = B.string(b, "encoding_format", "float")
    if fmt not in ("float", "base64"):
        raise InvalidRequest(f'invalid encoding_format "{fmt}" (must be "float" or "base64")')
    dimensions = X.count(b, "dimensions", 1) or 0
    out = await embed_compute(request, st, model, inputs, dimensions=dimensions)
    assert out is not None
    vectors, n_tokens, _ = out
    data = []
    for i, v in enumerate(vectors):
        emb: Any = base64.b64encode(np.ascontiguousarray(v, dtype="<f4").tobytes()).decode() \
            if fmt == "base64" else v.tolist()
        data.append({"object": "embedding", "embedding": emb, "index": i})
    return JSONResponse({"object": "list", "data": data, "model": model,
                         "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens}})


# --- /v1/models ----------------------------------------------------------------------------------
def model_object(rec: Any) -> dict[str, Any]:
    ns = rec.name.parts[1]
    return {"id": rec.name.display(), "object": "model", "created": int(rec.modified_ns // 1_000_000_000),
            "owned_by": ns or "library"}


async def list_models(request: Request) -> Response:
    st: ServerState = request.app.state.server

    def work() -> list[dict[str, Any]]:
        out = []
        for name in st.store.names():
            try:
                rec = load_model(st.store, name)
            except (OSError, ValueError, StoreError) as e:   # one broken model must not hide the others
                log.warning("skipping %s: %s", name.display(), e)
                continue
            out.append((rec.modified_ns, model_object(rec)))
        return [m for _, m in sorted(out, key=lambda e: -e[0])]
    # Ollama answers ``data: null`` for an empty store; an empty list is what OpenAI clients can iterate.
    return JSONResponse({"object": "list", "data": await asyncio.to_thread(work)})


async def retrieve_model(request: Request) -> Response:
    st: ServerState = request.app.state.server
    name = request.path_params["model"]
    try:
        rec = await st.record(name)
    except ModelNotFound:
        raise ModelNotFound(f"The model '{name}' does not exist") from None
    return JSONResponse(model_object(rec))
