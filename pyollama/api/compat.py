"""What the OpenAI (chat, completions, responses) and Anthropic translations share: field checks in
their terms, reasoning effort → ``think``, data-URI images, stop-sequence detection, and ``Blocks`` —
the generation's deltas regrouped into the ordered content blocks (thinking, text, tool call) that the
Responses API and Anthropic's Messages API both stream.

Thread-safety: pure functions; a ``Blocks`` belongs to one request.
"""
from __future__ import annotations

import base64
import binascii
import json
import math
import re
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from pyollama.api.inference import Delta, Final
from pyollama.errors import InvalidRequest

# OpenAI reasoning effort → native think (docs/contract.md §11.2).
EFFORTS: dict[str, bool | str] = {"none": False, "minimal": "low", "low": "low", "medium": "medium",
                                  "high": "high", "max": "max", "xhigh": "max", "ultra": "max"}
_DATA_URI = re.compile(r"^data:(image/(png|jpeg|jpg|webp|gif))?;base64,", re.IGNORECASE)


def new_id(prefix: str, nbytes: int = 12) -> str:
    return prefix + secrets.token_hex(nbytes)


def number(b: dict[str, Any], key: str, lo: float | None = None, hi: float | None = None) -> float | None:
    v = b.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise InvalidRequest(f'"{key}" must be a number')
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise InvalidRequest(f'"{key}" must be between {lo:g} and {hi:g}, not {v:g}')
    return float(v)


# Go decodes these fields into an int (int64): a larger number is a 400 there, and here.
INT64_MAX = (1 << 63) - 1


def count(b: dict[str, Any], key: str, lo: int = 0, hi: int = INT64_MAX) -> int | None:
    v = b.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not v.is_integer()):
        raise InvalidRequest(f'"{key}" must be an integer')
    if v < lo:
        raise InvalidRequest(f'"{key}" must be at least {lo}, not {int(v)}')
    if v > hi:
        raise InvalidRequest(f'"{key}" must be at most {hi}, not {int(v)}')
    return int(v)


def stop_list(v: Any, key: str = "stop") -> list[str]:
    if v is None:
        return []
    if isinstance(v, str):
        return [v]
    if isinstance(v, list) and all(isinstance(s, str) for s in v):
        return list(v)
    raise InvalidRequest(f'"{key}" must be a string or an array of strings')


def effort_think(value: Any, key: str = "reasoning_effort") -> bool | str | None:
    if value is None:
        return None
    if isinstance(value, str) and value in EFFORTS:
        return EFFORTS[value]
    raise InvalidRequest(f"invalid {key} value: {json.dumps(value)} (must be one of "
                         f"{', '.join(EFFORTS)})")


def image_data(url: Any, where: str) -> bytes:
    """A data-URI image's bytes. Remote URLs are refused (the server fetches nothing), as Ollama does."""
    if not isinstance(url, str):
        raise InvalidRequest(f"{where}: the image URL must be a string")
    if url.startswith(("http://", "https://")):
        raise InvalidRequest("image URLs are not currently supported, please use base64 encoded data instead")
    m = _DATA_URI.match(url)
    if not m:
        raise InvalidRequest(f"{where}: invalid image input")
    return b64(url[m.end():], where)


def b64(data: Any, where: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise InvalidRequest(f"{where}: invalid image data (not valid base64)") from None


def parse_arguments(args: Any, where: str) -> dict[str, Any]:
    """Tool-call arguments as the native API keeps them: a JSON object (OpenAI sends a JSON string)."""
    if isinstance(args, dict):
        return args
    if args is None or args == "":
        return {}
    if isinstance(args, str):
        try:
            v = json.loads(args)
        except ValueError:
            raise InvalidRequest(f"{where}: arguments are not valid JSON") from None
        if isinstance(v, dict):
            return v
    raise InvalidRequest(f"{where}: arguments must be a JSON object")


def tool_list(raw: Any, convert: Callable[[int, Any], dict[str, Any]],
              not_array: str = '"tools" must be an array') -> list[dict[str, Any]]:
    """A request's ``tools``: none when absent, else ``convert(i, tool)`` (a surface's own shape checked
    and turned into :func:`function_tool`'s) for each element of the array."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidRequest(not_array)
    return [convert(i, t) for i, t in enumerate(raw)]


def function_tool(name: Any, description: Any, parameters: Any, where: str) -> dict[str, Any]:
    """A tool in the native (OpenAI function) shape, checked."""
    if not isinstance(name, str) or not name:
        raise InvalidRequest(f"{where}: a tool needs a name")
    if parameters is not None and not isinstance(parameters, dict):
        raise InvalidRequest(f"{where}: the parameters schema must be an object")
    fn: dict[str, Any] = {"name": name}
    if isinstance(description, str):
        fn["description"] = description
    fn["parameters"] = parameters if parameters is not None else {"type": "object", "properties": {}}
    return {"type": "function", "function": fn}


def call_arguments(call: dict[str, Any]) -> str:
    """A native tool call's arguments as the JSON string OpenAI clients expect (key order kept)."""
    return json.dumps(call["function"].get("arguments") or {}, ensure_ascii=False)


# --- content blocks ------------------------------------------------------------------------------
@dataclass
class Block:
    kind: str                    # "thinking" | "text" | "tool"
    index: int
    text: str = ""
    call: dict[str, Any] | None = None          # the native tool call ({"id", "function": {...}})


class Blocks:
    """Deltas → ordered blocks. ``feed`` returns ``(action, block, piece)`` steps with action ``start``,
    ``delta`` (``piece`` is new text) or ``stop``: a block starts on its first piece and stops when
    another kind starts or the output ends. A tool call is a whole block (start, stop)."""

    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.open: Block | None = None

    def feed(self, d: Delta) -> list[tuple[str, Block, str]]:
        steps: list[tuple[str, Block, str]] = []
        if d.thinking:
            self._text("thinking", d.thinking, steps)
        if d.content:
            self._text("text", d.content, steps)
        for c in d.tool_calls:
            self._close(steps)
            b = Block("tool", len(self.blocks), call=c)
            self.blocks.append(b)
            steps += [("start", b, ""), ("stop", b, "")]
        return steps

    def finish(self) -> list[tuple[str, Block, str]]:
        """Close the open block; an output with no blocks at all gets one empty text block, so every
        response has content to show."""
        steps: list[tuple[str, Block, str]] = []
        if not self.blocks:
            self._text("text", "", steps)
        self._close(steps)
        return steps

    def _text(self, kind: str, text: str, steps: list[tuple[str, Block, str]]) -> None:
        if self.open is None or self.open.kind != kind:
            self._close(steps)
            self.open = Block(kind, len(self.blocks))
            self.blocks.append(self.open)
            steps.append(("start", self.open, ""))
        self.open.text += text
        if text:
            steps.append(("delta", self.open, text))

    def _close(self, steps: list[tuple[str, Block, str]]) -> None:
        if self.open is not None:
            steps.append(("stop", self.open, ""))
            self.open = None


Step = tuple[str, Block, str]


async def block_stream(events: AsyncIterator[Delta | Final], to_events: Callable[[list[Step]], list[Any]],
                       head: Callable[[], list[Any]], tail: Callable[[Final, Blocks], list[Any]]
                       ) -> AsyncIterator[Any]:
    """The streaming loop of the block-shaped surfaces (Anthropic messages, OpenAI responses): ``head()``'s
    events, then each delta's block steps as the surface's events, then at the end the closing steps and
    ``tail(final, blocks)``'s events. The generation is closed however the loop ends."""
    blocks = Blocks()
    for out in head():
        yield out
    try:
        async for ev in events:
            if isinstance(ev, Delta):
                for out in to_events(blocks.feed(ev)):
                    yield out
            else:
                for out in to_events(blocks.finish()):
                    yield out
                for out in tail(ev, blocks):
                    yield out
    finally:
        await events.aclose()


def collected(items: list[Delta | Final]) -> tuple[Blocks, Final | None]:
    """A whole (non-streamed) generation as closed blocks and its final metrics."""
    blocks = Blocks()
    for d in items:
        if isinstance(d, Delta):
            blocks.feed(d)
    blocks.finish()
    return blocks, next((f for f in items if isinstance(f, Final)), None)
