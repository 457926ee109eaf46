"""Anthropic's Messages API (docs/contract.md §12): ``POST /v1/messages`` and ``/v1/messages/count_tokens``
(which Ollama lacks).

The request becomes a native chat turn (``pyollama.api.conversation``): ``system`` (a string or text
blocks) is the first system message; content blocks map to native message fields — ``text`` to content,
``image`` (base64 source) to the message's images, ``tool_use`` to ``tool_calls``,
``tool_result`` to a ``tool`` message named after its ``tool_use``, ``thinking`` to ``thinking``.
``max_tokens`` is required (→ ``num_predict``); ``stop_sequences``, ``temperature``, ``top_p``, ``top_k``,
``tools`` (``input_schema``), ``tool_choice`` (enforced: ``pyollama.api.toolchoice``), ``thinking``
(anything but ``disabled`` turns it on; the budget is not enforced), ``output_config.effort`` and
``output_config.format`` (a JSON schema, as structured output) are translated. The current SDK no longer
sends ``temperature`` / ``top_p`` / ``top_k``; they are still read when a client does (``extra_body``).
As in Ollama, thinking asked of a model without it is dropped rather than refused.

The response's content blocks come in the order the model produced them (thinking, text, tool_use);
``stop_reason`` is ``tool_use`` when a tool was called, ``max_tokens`` at the limit, ``stop_sequence``
(with ``stop_sequence`` set) when one of the request's stop sequences ended it, else ``end_turn``.
Streams are SSE in Anthropic's order: ``message_start``, ``ping``, then per block
``content_block_start`` → ``content_block_delta`` (``text_delta`` / ``thinking_delta`` /
``input_json_delta``) → ``content_block_stop``, then ``message_delta`` (stop_reason, usage) and
``message_stop``; an error after the stream began is an ``error`` event. Errors have Anthropic's shape.

Thread-safety: Starlette endpoints on the event loop.
"""
from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pyollama.api import body as B
from pyollama.api import compat as X
from pyollama.api import toolchoice
from pyollama.api.conversation import ChatJob, ChatTurn
from pyollama.api.errors import ANTHROPIC, message_of, shaped_body, status_of
from pyollama.api.inference import Final
from pyollama.api.sse import Event, EventStream
from pyollama.api.state import ServerState
from pyollama.errors import InvalidRequest

# output_config.effort → native think level; every thinking type but "disabled" turns thinking on.
EFFORTS: dict[str, str] = {"low": "low", "medium": "medium", "high": "high", "xhigh": "max", "max": "max"}
THINKING_TYPES = ("enabled", "disabled", "adaptive", "between_tools")


# --- request → native ----------------------------------------------------------------------------
def system_text(v: Any) -> str:
    if v is None or isinstance(v, str):
        return v or ""
    if isinstance(v, list):
        texts = []
        for i, blk in enumerate(v):
            if not isinstance(blk, dict) or blk.get("type") != "text" or not isinstance(blk.get("text"), str):
                raise InvalidRequest(f"system[{i}]: system blocks must be text blocks")
            texts.append(blk["text"])
        return "\n\n".join(texts)
    raise InvalidRequest("system: must be a string or an array of text blocks")


def convert_messages(raw: Any, system: str) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        raise InvalidRequest("messages: Field required" if raw is None else "messages: must be an array")
    msgs: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    names: dict[str, str] = {}               # tool_use id → tool name, for the tool_result blocks after it
    for i, m in enumerate(raw):
        where = f"messages.{i}"
        if not isinstance(m, dict):
            raise InvalidRequest(f"{where}: must be an object")
        role = m.get("role")
        if role not in ("user", "assistant"):
            raise InvalidRequest(f'{where}.role: must be "user" or "assistant", not {role!r}')
        content = m.get("content")
        if isinstance(content, str):
            msgs.append({"role": role, "content": content})
            continue
        if not isinstance(content, list):
            raise InvalidRequest(f"{where}.content: must be a string or an array of content blocks")
        texts: list[str] = []
        thinking: list[str] = []
        calls: list[dict[str, Any]] = []
        images: list[bytes] = []
        results: list[dict[str, Any]] = []
        for k, blk in enumerate(content):
            w = f"{where}.content.{k}"
            kind = blk.get("type") if isinstance(blk, dict) else None
            if kind == "text":
                texts.append(B.string(blk, "text"))
            elif kind == "image":
                images.append(image_block(blk, w))
            elif kind == "tool_use" and role == "assistant":
                tid, name = B.string(blk, "id"), B.string(blk, "name")
                args = blk.get("input")
                if not name or not isinstance(args if args is not None else {}, dict):
                    raise InvalidRequest(f"{w}: tool_use needs a name and an input object")
                names[tid] = name
                calls.append({"id": tid, "function": {"index": len(calls), "name": name, "arguments": args or {}}})
            elif kind == "tool_result" and role == "user":
                tid = B.string(blk, "tool_use_id")
                text, imgs = result_content(blk.get("content"), w)
                images += imgs
                result = {"role": "tool", "content": text, "tool_call_id": tid}
                if names.get(tid):
                    result["tool_name"] = names[tid]
                results.append(result)
            elif kind == "thinking" and role == "assistant":
                thinking.append(B.string(blk, "thinking"))
            elif kind == "redacted_thinking":
                continue                      # encrypted by another provider: nothing a local model can read
            else:
                raise InvalidRequest(f"{w}: content blocks of type {kind!r} are not supported in {role} messages")
        msgs += results                       # tool results answer the previous turn: they come first
        if texts or calls or thinking or images or not results:
            msg: dict[str, Any] = {"role": role, "content": "\n\n".join(texts)}
            if images:                        # a tool result's images too: the message after the results
                msg["images"] = images
            if thinking:
                msg["thinking"] = "".join(thinking)
            if calls:
                msg["tool_calls"] = calls
            msgs.append(msg)
    return msgs


def image_block(blk: dict[str, Any], where: str) -> bytes:
    src = blk.get("source")
    if not isinstance(src, dict) or src.get("type") != "base64":
        raise InvalidRequest(f"{where}: only base64 image sources are supported")
    return X.b64(src.get("data"), where)


def result_content(v: Any, where: str) -> tuple[str, list[bytes]]:
    if v is None or isinstance(v, str):
        return v or "", []
    if not isinstance(v, list):
        raise InvalidRequest(f"{where}.content: must be a string or an array of blocks")
    texts, images = [], []
    for blk in v:
        kind = blk.get("type") if isinstance(blk, dict) else None
        if kind == "text":
            texts.append(B.string(blk, "text"))
        elif kind == "image":
            images.append(image_block(blk, where))
        else:
            raise InvalidRequest(f"{where}: tool_result blocks of type {kind!r} are not supported")
    return "\n\n".join(texts), images


def tools_of(raw: Any) -> list[dict[str, Any]]:
    def tool(i: int, t: Any) -> dict[str, Any]:
        if not isinstance(t, dict) or t.get("type", "custom") != "custom":
            kind = t.get("type") if isinstance(t, dict) else None
            raise InvalidRequest(f"tools.{i}: server tools ({kind!r}) are not supported; declare custom tools "
                                 "with an input_schema")
        return X.function_tool(t.get("name"), t.get("description"), t.get("input_schema"), f"tools.{i}")
    return X.tool_list(raw, tool, "tools: must be an array")


def thinking_of(b: dict[str, Any]) -> bool | str | None:
    cfg = B.obj(b, "thinking")
    think: bool | str | None = None
    if cfg is not None:
        kind = cfg.get("type")
        if kind not in THINKING_TYPES:
            raise InvalidRequest(f"thinking.type: must be one of {', '.join(THINKING_TYPES)}")
        think = kind != "disabled"
    effort = (B.obj(b, "output_config") or {}).get("effort")
    if effort is not None and think is not False:
        if not isinstance(effort, str) or effort not in EFFORTS:
            raise InvalidRequest(f"output_config.effort: must be one of {', '.join(EFFORTS)}")
        think = EFFORTS[effort]
    return think


def output_format(b: dict[str, Any]) -> dict[str, Any] | None:
    """``output_config.format`` (structured outputs): ``{"type": "json_schema", "schema": {...}}``."""
    fmt = (B.obj(b, "output_config") or {}).get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
        raise InvalidRequest('output_config.format: must be {"type": "json_schema", "schema": {...}}')
    return fmt["schema"]


def job_of(b: dict[str, Any], *, counting: bool = False) -> ChatJob:
    model = B.string(b, "model")
    if not model:
        raise InvalidRequest("model: Field required")
    msgs = convert_messages(b.get("messages"), system_text(b.get("system")))
    opts: dict[str, Any] = {}
    if not counting:
        n = X.count(b, "max_tokens", 1)
        if n is None:
            raise InvalidRequest("max_tokens: Field required")
        opts["num_predict"] = n
    for key, lo, hi in (("temperature", 0, 1), ("top_p", 0, 1)):
        v = X.number(b, key, lo, hi)
        if v is not None:
            opts[key] = v
    top_k = X.count(b, "top_k", 0)
    if top_k is not None:
        opts["top_k"] = top_k
    stops = X.stop_list(b.get("stop_sequences"), "stop_sequences")
    if stops:
        opts["stop"] = stops
    choice, name = toolchoice.parse(b.get("tool_choice"), anthropic=True)
    return ChatJob(model=model, messages=msgs, tools=tools_of(b.get("tools")), tool_choice=choice,
                   tool_name=name, think=thinking_of(b), drop_think=True, format=output_format(b), options=opts)


# --- native → Anthropic --------------------------------------------------------------------------
def block_json(blk: X.Block, *, empty: bool = False) -> dict[str, Any]:
    if blk.kind == "thinking":
        return {"type": "thinking", "thinking": "" if empty else blk.text, "signature": ""}
    if blk.kind == "text":
        return {"type": "text", "text": "" if empty else blk.text}
    assert blk.call is not None
    fn = blk.call["function"]
    return {"type": "tool_use", "id": blk.call["id"], "name": fn["name"],
            "input": {} if empty else (fn.get("arguments") or {})}


def stop_reason(final: Final | None, called: bool, stop_seq: str | None) -> str:
    if called:
        return "tool_use"
    if final is not None and final.done.done_reason == "length":
        return "max_tokens"
    return "stop_sequence" if stop_seq else "end_turn"


def error_event(e: BaseException) -> Event:
    body = shaped_body(ANTHROPIC, status_of(e), message_of(e))
    body.pop("request_id", None)
    return "error", body


async def messages(request: Request) -> Response | EventStream:
    st: ServerState = request.app.state.server
    t_start = time.perf_counter_ns()
    b = await B.read_json(request)
    job = job_of(b)
    stream = bool(B.boolean(b, "stream"))
    stops = job.options.get("stop", [])
    turn = ChatTurn(st, job)
    events = await turn.launch(request, t_start)
    mid = X.new_id("msg_")

    def client_stop(final: Final | None) -> str | None:
        """The request's own stop sequence that ended the output (not a Modelfile stop)."""
        seq = final.done.stop if final is not None else None
        return seq if seq in stops else None

    def message(content: list[dict[str, Any]], reason: str | None, stop_seq: str | None,
                usage: dict[str, int]) -> dict[str, Any]:
        return {"id": mid, "type": "message", "role": "assistant", "model": job.model, "content": content,
                "stop_reason": reason, "stop_sequence": stop_seq, "usage": usage}

    def usage(inp: int, out: int) -> dict[str, int]:
        return {"input_tokens": inp, "output_tokens": out, "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0}

    def to_events(steps: list[tuple[str, X.Block, str]]) -> list[Event]:
        out: list[Event] = []
        for action, blk, piece in steps:
            if action == "start":
                out.append(("content_block_start", {"type": "content_block_start", "index": blk.index,
                                                    "content_block": block_json(blk, empty=True)}))
                if blk.kind == "tool":
                    assert blk.call is not None
                    out.append(("content_block_delta", {"type": "content_block_delta", "index": blk.index,
                                                        "delta": {"type": "input_json_delta",
                                                                  "partial_json": X.call_arguments(blk.call)}}))
            elif action == "delta":
                delta = ({"type": "thinking_delta", "thinking": piece} if blk.kind == "thinking"
                         else {"type": "text_delta", "text": piece})
                out.append(("content_block_delta", {"type": "content_block_delta", "index": blk.index,
                                                    "delta": delta}))
            else:
                if blk.kind == "thinking":        # clients replaying thinking expect a signature field
                    out.append(("content_block_delta", {"type": "content_block_delta", "index": blk.index,
                                                        "delta": {"type": "signature_delta", "signature": ""}}))
                out.append(("content_block_stop", {"type": "content_block_stop", "index": blk.index}))
        return out

    def head() -> list[Event]:
        return [("message_start", {"type": "message_start",
                                   "message": message([], None, None, usage(len(turn.tokens), 0))}),
                ("ping", {"type": "ping"})]

    def tail(final: Final, blocks: X.Blocks) -> list[Event]:
        seq = client_stop(final)
        called = any(blk.kind == "tool" for blk in blocks.blocks)
        return [("message_delta", {"type": "message_delta",
                                   "delta": {"stop_reason": stop_reason(final, called, seq), "stop_sequence": seq},
                                   "usage": {"input_tokens": final.done.prompt_eval_count,
                                             "output_tokens": final.done.eval_count}}),
                ("message_stop", {"type": "message_stop"})]

    def aggregate(items: list[Any]) -> dict[str, Any]:
        blocks, final = X.collected(items)
        seq = client_stop(final)
        called = any(blk.kind == "tool" for blk in blocks.blocks)
        d = final.done if final else None
        return message([block_json(blk) for blk in blocks.blocks], stop_reason(final, called, seq), seq,
                       usage(d.prompt_eval_count if d else 0, d.eval_count if d else 0))

    if stream:
        return EventStream(X.block_stream(events, to_events, head, tail), stream=True, surface=ANTHROPIC, error_event=error_event, on_close=turn.release)
    return EventStream(events, stream=False, surface=ANTHROPIC, error_event=error_event,
                       aggregate=aggregate, on_close=turn.release)


async def count_tokens(request: Request) -> Response:
    """The prompt's token count as this model's template renders it (tokenizing needs the model loaded)."""
    st: ServerState = request.app.state.server
    b = await B.read_json(request)
    turn = ChatTurn(st, job_of(b, counting=True))
    await turn.find()
    turn.check()
    await turn.acquire(request)
    try:
        _, tokens = await turn.render()
    finally:
        turn.release()
    return JSONResponse({"input_tokens": len(tokens)})
