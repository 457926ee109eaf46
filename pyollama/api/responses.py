"""OpenAI's Responses API, stateless (docs/contract.md §11.6): ``POST /v1/responses``.

``input`` (a string, or items: messages with ``input_text`` / ``input_image`` parts, ``function_call``,
``function_call_output``, ``reasoning``) plus ``instructions`` become native chat messages; ``tools``
(flat ``{"type": "function", "name", "parameters"}``) and ``tool_choice`` (enforced, see
``pyollama.api.toolchoice``), ``text.format``, ``reasoning.effort``, ``max_output_tokens`` are
translated; ``previous_response_id`` / ``conversation`` need server-side state and are refused.

The output is a list of items — ``reasoning`` (thinking as ``summary_text``), ``message`` (one
``output_text`` part), ``function_call`` — in the order the model produced them. Streams are named SSE
events (``event: <type>`` + ``data``), each with a ``sequence_number``: ``response.created``,
``response.in_progress``, then per item ``output_item.added`` → its part/text/arguments events →
``output_item.done``, and ``response.completed`` (``response.incomplete`` when ``max_output_tokens``
cut it short; ``response.failed`` on an error after the stream began).

Thread-safety: a Starlette endpoint on the event loop.
"""
from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from pyollama.api import body as B
from pyollama.api import compat as X
from pyollama.api import toolchoice
from pyollama.api.conversation import ChatJob, ChatTurn
from pyollama.api.errors import OPENAI, message_of
from pyollama.api.inference import Delta, Final
from pyollama.api.openai import content_parts, sampling
from pyollama.api.sse import Event, EventStream
from pyollama.api.state import ServerState
from pyollama.errors import InvalidRequest


# --- request → native ----------------------------------------------------------------------------
def input_messages(raw: Any, instructions: str) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = [{"role": "system", "content": instructions}] if instructions else []
    if isinstance(raw, str):
        return msgs + [{"role": "user", "content": raw}]
    if not isinstance(raw, list) or not raw:
        raise InvalidRequest('"input" must be a string or a non-empty array of items')
    names: dict[str, str] = {}
    thinking = ""                               # a reasoning item belongs to the assistant turn after it
    for i, item in enumerate(raw):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise InvalidRequest(f"{where} must be an object")
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "message":
            role = B.string(item, "role")
            role = "system" if role == "developer" else role
            if role not in ("system", "user", "assistant"):
                raise InvalidRequest(f'{where}: invalid role "{role}"')
            text, images = content_parts(_parts(item.get("content")), where)
            msg: dict[str, Any] = {"role": role, "content": text}
            if images:
                msg["images"] = images
            if role == "assistant" and thinking:
                msg["thinking"], thinking = thinking, ""
            msgs.append(msg)
        elif kind == "function_call":
            name, call_id = B.string(item, "name"), B.string(item, "call_id")
            if not name:
                raise InvalidRequest(f"{where}: a function_call needs a name")
            names[call_id] = name
            if not msgs or msgs[-1]["role"] != "assistant":
                msgs.append({"role": "assistant", "content": ""})
            last = msgs[-1]
            if thinking:
                last["thinking"], thinking = last.get("thinking", "") + thinking, ""
            calls = last.setdefault("tool_calls", [])
            calls.append({"id": call_id, "function": {"index": len(calls), "name": name,
                                                      "arguments": X.parse_arguments(item.get("arguments"), where)}})
        elif kind == "function_call_output":
            call_id = B.string(item, "call_id")
            out = item.get("output")
            text = out if isinstance(out, str) else content_parts(_parts(out), where)[0]
            msg = {"role": "tool", "content": text, "tool_call_id": call_id}
            if names.get(call_id):
                msg["tool_name"] = names[call_id]
            msgs.append(msg)
        elif kind == "reasoning":
            for key in ("summary", "content"):
                if item.get(key) is not None and not isinstance(item[key], list):
                    raise InvalidRequest(f"{where}.{key} must be an array of text parts")
            parts = [p.get("text", "") for key in ("summary", "content") for p in item.get(key) or []
                     if isinstance(p, dict) and isinstance(p.get("text"), str)]
            thinking += "".join(parts)
        else:
            raise InvalidRequest(f"{where}: input items of type {kind!r} are not supported")
    return msgs


def _parts(content: Any) -> Any:
    """Responses content parts → chat-style parts (``input_image`` → ``image_url``)."""
    if not isinstance(content, list):
        return content
    out = []
    for p in content:
        if isinstance(p, dict) and p.get("type") == "input_image":
            if p.get("image_url") is None:
                raise InvalidRequest("input_image needs an image_url (file ids are not supported)")
            out.append({"type": "image_url", "image_url": {"url": p.get("image_url")}})
        elif isinstance(p, dict) and p.get("type") == "input_file":
            raise InvalidRequest("input_file parts are not supported")
        else:
            out.append(p)
    return out


def tools_of(raw: Any) -> list[dict[str, Any]]:
    def tool(i: int, t: Any) -> dict[str, Any]:
        if not isinstance(t, dict) or t.get("type") != "function":
            kind = t.get("type") if isinstance(t, dict) else None
            raise InvalidRequest(f"tools[{i}]: only function tools are supported, not {kind!r}")
        return X.function_tool(t.get("name"), t.get("description"), t.get("parameters"), f"tools[{i}]")
    return X.tool_list(raw, tool)


def text_format(text: Any) -> tuple[str | dict[str, Any] | None, dict[str, Any]]:
    fmt = text.get("format") if isinstance(text, dict) else None
    if fmt is None:
        return None, {"type": "text"}
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return None, fmt
    if kind == "json_object":
        return "json", fmt
    if kind == "json_schema":
        schema = fmt.get("schema")
        if not isinstance(schema, dict):
            raise InvalidRequest("text.format.schema must be an object")
        return schema, fmt
    raise InvalidRequest('text.format.type must be "text", "json_object" or "json_schema"')


# --- native → Responses --------------------------------------------------------------------------
def item_of(b: X.Block, item_id: str, status: str) -> dict[str, Any]:
    if b.kind == "thinking":
        return {"id": item_id, "type": "reasoning", "status": status,
                "summary": [{"type": "summary_text", "text": b.text}] if b.text or status != "in_progress" else []}
    if b.kind == "text":
        content = [] if status == "in_progress" else [text_part(b.text)]
        return {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": content}
    assert b.call is not None
    return {"id": item_id, "type": "function_call", "status": status, "call_id": b.call["id"],
            "name": b.call["function"]["name"],
            "arguments": "" if status == "in_progress" else X.call_arguments(b.call)}


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def usage_of(final: Final | None) -> dict[str, Any]:
    d = final.done if final else None
    i, o = (d.prompt_eval_count, d.eval_count) if d else (0, 0)
    return {"input_tokens": i, "input_tokens_details": {"cached_tokens": d.prompt_cached if d else 0},
            "output_tokens": o, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": i + o}


async def create_response(request: Request) -> Response | EventStream:
    st: ServerState = request.app.state.server
    t_start = time.perf_counter_ns()
    b = await B.read_json(request)
    for key in ("previous_response_id", "conversation"):
        if b.get(key):
            raise InvalidRequest(f"{key} is not supported: this server keeps no responses (send the whole input)")
    model = B.string(b, "model")
    instructions = B.string(b, "instructions")
    msgs = input_messages(b.get("input"), instructions)
    tools = tools_of(b.get("tools"))
    choice, name = toolchoice.parse(b.get("tool_choice"))
    fmt, fmt_echo = text_format(b.get("text"))
    reasoning = B.obj(b, "reasoning") or {}
    think = X.effort_think(reasoning.get("effort"), "reasoning.effort")
    opts = sampling({k: b.get(k) for k in ("temperature", "top_p", "max_output_tokens")},
                    max_keys=("max_output_tokens",))
    stream = bool(B.boolean(b, "stream"))
    job = ChatJob(model=model, messages=msgs, tools=tools, tool_choice=choice, tool_name=name, think=think,
                  format=fmt, options=opts)
    turn = ChatTurn(st, job)
    events = await turn.launch(request, t_start)

    rid, created = X.new_id("resp_"), int(time.time())
    ids: dict[int, str] = {}
    prefix = {"thinking": "rs_", "text": "msg_", "tool": "fc_"}

    def item_id(blk: X.Block) -> str:
        if blk.index not in ids:
            ids[blk.index] = X.new_id(prefix[blk.kind])
        return ids[blk.index]

    def response(status: str, output: list[dict[str, Any]], final: Final | None = None,
                 error: dict[str, Any] | None = None) -> dict[str, Any]:
        incomplete = {"reason": "max_output_tokens"} if status == "incomplete" else None
        return {"id": rid, "object": "response", "created_at": created, "status": status, "model": model,
                "output": output, "usage": usage_of(final) if final else None, "error": error,
                "incomplete_details": incomplete, "instructions": instructions or None,
                "tools": b.get("tools") or [], "tool_choice": b.get("tool_choice") or "auto",
                "parallel_tool_calls": b.get("parallel_tool_calls", True) is not False,
                "temperature": opts["temperature"], "top_p": opts["top_p"],
                "max_output_tokens": opts.get("num_predict"), "text": {"format": fmt_echo},
                "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
                "metadata": b.get("metadata") or {}, "store": False, "previous_response_id": None,
                "truncation": "disabled", "user": None}

    def status_of_final(final: Final | None) -> str:
        return "incomplete" if final is not None and final.done.done_reason == "length" else "completed"

    seq = 0
    done_items: list[dict[str, Any]] = []

    def ev(kind: str, **fields: Any) -> Event:
        nonlocal seq
        data = {"type": kind, "sequence_number": seq, **fields}
        seq += 1
        return kind, data

    def steps_to_events(steps: list[tuple[str, X.Block, str]]) -> list[Event]:
        out: list[Event] = []
        for action, blk, piece in steps:
            iid, at = item_id(blk), {"output_index": blk.index}
            if action == "start":
                out.append(ev("response.output_item.added", **at, item=item_of(blk, iid, "in_progress")))
                if blk.kind == "thinking":
                    out.append(ev("response.reasoning_summary_part.added", item_id=iid, **at, summary_index=0,
                                  part={"type": "summary_text", "text": ""}))
                elif blk.kind == "text":
                    out.append(ev("response.content_part.added", item_id=iid, **at, content_index=0,
                                  part=text_part("")))
                else:
                    out.append(ev("response.function_call_arguments.delta", item_id=iid, **at,
                                  delta=X.call_arguments(blk.call or {})))
            elif action == "delta":
                if blk.kind == "thinking":
                    out.append(ev("response.reasoning_summary_text.delta", item_id=iid, **at, summary_index=0,
                                  delta=piece))
                else:
                    out.append(ev("response.output_text.delta", item_id=iid, **at, content_index=0, delta=piece,
                                  logprobs=[]))
            else:
                if blk.kind == "thinking":
                    out.append(ev("response.reasoning_summary_text.done", item_id=iid, **at, summary_index=0,
                                  text=blk.text))
                    out.append(ev("response.reasoning_summary_part.done", item_id=iid, **at, summary_index=0,
                                  part={"type": "summary_text", "text": blk.text}))
                elif blk.kind == "text":
                    out.append(ev("response.output_text.done", item_id=iid, **at, content_index=0, text=blk.text,
                                  logprobs=[]))
                    out.append(ev("response.content_part.done", item_id=iid, **at, content_index=0,
                                  part=text_part(blk.text)))
                else:
                    assert blk.call is not None
                    out.append(ev("response.function_call_arguments.done", item_id=iid, **at,
                                  name=blk.call["function"]["name"], arguments=X.call_arguments(blk.call)))
                item = item_of(blk, iid, "completed")
                done_items.append(item)
                out.append(ev("response.output_item.done", **at, item=item))
        return out

    def head() -> list[Event]:
        return [ev("response.created", response=response("in_progress", [])),
                ev("response.in_progress", response=response("in_progress", []))]

    def tail(final: Final, _blocks: X.Blocks) -> list[Event]:
        status = status_of_final(final)
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return [ev(kind, response=response(status, done_items, final))]

    def error_event(e: BaseException) -> Event:
        return ev("response.failed", response=response("failed", done_items,
                                                        error={"code": "server_error", "message": message_of(e)}))

    def aggregate(items: list[Delta | Final]) -> dict[str, Any]:
        blocks, final = X.collected(items)
        output = [item_of(blk, item_id(blk), "completed") for blk in blocks.blocks]
        return response(status_of_final(final), output, final)

    if stream:
        return EventStream(X.block_stream(events, steps_to_events, head, tail), stream=True, surface=OPENAI, error_event=error_event, on_close=turn.release)
    return EventStream(events, stream=False, surface=OPENAI, error_event=error_event, aggregate=aggregate,
                       on_close=turn.release)
