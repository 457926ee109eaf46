"""Prompts: which template a model renders with, rendering, Ollama's chat truncation, and the output
parsers (thinking, tool calls) that match the template.

The Go TEMPLATE is used when the model has one (Ollama's contract); otherwise the GGUF's own Jinja chat
template; otherwise ``{{ .Prompt }}``.

Truncation (``truncate``, default on; docs/contract.md §2.2): whole messages are cut from the front, system
messages always kept and the last message always kept, until the rendered prompt fits ``num_ctx``. A
prompt that still does not fit is a 400 naming both lengths — never a silent cut.

Thread-safety: functions are pure apart from caches keyed by immutable data; ``fit_chat`` awaits a
tokenizer callable.
"""
from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pyollama.errors import InvalidRequest
from pyollama.scheduler import plan
from pyollama.store import ModelRecord, gguf_meta
from pyollama.templates import (JinjaTemplate, ThinkingParser, ToolCallParser, infer_tool_tag, render_chat,
                                render_generate)


@dataclass(frozen=True)
class ModelTemplate:
    text: str
    is_jinja: bool
    model_path: str = ""

    def jinja(self) -> JinjaTemplate:
        return _jinja(self.text, self.model_path)

    async def prepare(self) -> None:
        """Compile a Jinja template (and read the BOS/EOS texts it uses) off the event loop, the first
        time only: later requests find it compiled and skip the thread hop."""
        if self.is_jinja and (self.text, self.model_path) not in _JINJA:
            await asyncio.to_thread(self.jinja)

    def render_chat(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                    think: bool | str | None) -> str:
        if self.is_jinja:
            kw = {} if think is None else {"enable_thinking": think is not False}
            return self.jinja().render([_jinja_message(m) for m in messages], tools or None, **kw)
        return render_chat(self.text, messages, tools, think=think)

    def render_generate(self, prompt: str, *, system: str = "", suffix: str = "",
                        messages: list[dict[str, Any]] | None = None, think: bool | str | None = None) -> str:
        if self.is_jinja:
            msgs = ([{"role": "system", "content": system}] if system else []) + list(messages or [])
            return self.render_chat(msgs + [{"role": "user", "content": prompt}], None, think)
        return render_generate(self.text, prompt, system=system, suffix=suffix, messages=messages, think=think)

    def thinking_parser(self, prompt: str, caps: list[str]) -> ThinkingParser | None:
        if self.is_jinja:
            if "thinking" not in caps:
                return None
            return ThinkingParser("<think>", "</think>", prefilled=prompt.rstrip().endswith("<think>"))
        return ThinkingParser.for_prompt(self.text, prompt)

    def tool_tag(self) -> str:
        """The text that opens a tool call in this template's output (``{``: a bare JSON object)."""
        if self.is_jinja:
            return "<tool_call>" if "<tool_call>" in self.text else "{"
        return infer_tool_tag(self.text)

    def tool_parser(self, tools: list[dict[str, Any]]) -> ToolCallParser:
        return ToolCallParser(tools, self.tool_tag())


def _jinja_message(m: dict[str, Any]) -> dict[str, Any]:
    """API message → what HF chat templates expect (tool-call arguments as objects, no images)."""
    out = {k: v for k, v in m.items() if k != "images" and v not in (None, "", [])}
    out.setdefault("content", "")
    calls = m.get("tool_calls")
    if calls:
        out["tool_calls"] = [{"type": "function", **c} if "function" in c else c for c in calls]
    return out


@functools.lru_cache(maxsize=16)
def _special_texts(model_path: str, mtime_ns: int) -> tuple[str, str]:
    """BOS/EOS token texts (reads the whole vocabulary once per weights file)."""
    info = gguf_meta.read(model_path, max_array=None, tensors=False)
    tokens = info.kv.get("tokenizer.ggml.tokens")

    def text(key: str) -> str:
        tid = info.kv.get(key)
        if isinstance(tokens, list) and isinstance(tid, int) and 0 <= tid < len(tokens):
            return str(tokens[tid])
        return ""
    return text("tokenizer.ggml.bos_token_id"), text("tokenizer.ggml.eos_token_id")


JINJA_KEEP = 32          # compiled templates kept (LRU)
_JINJA: OrderedDict[tuple[str, str], JinjaTemplate] = OrderedDict()
_JINJA_LOCK = threading.Lock()


def _jinja(source: str, model_path: str) -> JinjaTemplate:
    key = (source, model_path)
    with _JINJA_LOCK:
        t = _JINJA.get(key)
        if t is not None:
            _JINJA.move_to_end(key)
            return t
    bos = eos = ""
    if model_path and ("bos_token" in source or "eos_token" in source):
        bos, eos = _special_texts(model_path, os.stat(model_path).st_mtime_ns)
    t = JinjaTemplate(source, bos_token=bos, eos_token=eos)
    with _JINJA_LOCK:
        _JINJA[key] = t
        while len(_JINJA) > JINJA_KEEP:
            _JINJA.popitem(last=False)
    return t


def model_template(rec: ModelRecord, override: str = "") -> ModelTemplate:
    """The template to render ``rec`` with (a request's ``template`` overrides, as a Go template)."""
    path = str(rec.model_path or "")
    if override:
        return ModelTemplate(override, False, path)
    text, is_jinja = rec.effective_template(_header(rec))
    return ModelTemplate(text, is_jinja, path)


def capabilities(rec: ModelRecord) -> list[str]:
    """Ollama's capability list, from the GGUF header, the projector and the template (the store decides;
    the header comes from the scheduler's cache)."""
    return rec.capabilities(_header(rec))


def _header(rec: ModelRecord) -> gguf_meta.GGUFInfo | None:
    return plan.header(rec.model_path) if rec.model_path is not None else None


def too_long(n_tokens: int, num_ctx: int) -> InvalidRequest:
    return InvalidRequest(f"the input length exceeds the context length (input: {n_tokens} tokens, "
                          f"context length: {num_ctx} tokens)")


# No vocabulary we know has a token longer than this, so a text longer than num_ctx × this cannot fit
# the context: it is refused without tokenizing it (megabytes of text would keep the runner busy for
# seconds, and every request on it waiting).
MAX_TOKEN_CHARS = 512


def surely_too_long(text: str, num_ctx: int) -> bool:
    return len(text) > num_ctx * MAX_TOKEN_CHARS


def too_many_chars(text: str, num_ctx: int) -> InvalidRequest:
    return InvalidRequest(f"the input length exceeds the context length (input: {len(text)} characters, "
                          f"more than {MAX_TOKEN_CHARS} per token of the context; context length: {num_ctx} "
                          "tokens)")


Tokenize = Callable[[str], Awaitable[list[int]]]


async def fit_chat(render: Callable[[list[dict[str, Any]]], str], tokenize: Tokenize,
                   messages: list[dict[str, Any]], num_ctx: int, truncate: bool) -> tuple[str, list[int]]:
    """Render ``messages``; with ``truncate``, drop the oldest non-system messages until the prompt fits
    (Ollama's chatPrompt). Returns the prompt and its tokens; a prompt that cannot fit raises 400."""
    async def count(text: str) -> list[int] | None:
        """The tokens, or None for a text that cannot fit anyway."""
        return None if surely_too_long(text, num_ctx) else await tokenize(text)

    # Rendering is pure Python and can take a while for a long history: off the event loop.
    prompt = await asyncio.to_thread(render, messages)
    tokens = await count(prompt)
    if tokens is not None and len(tokens) < num_ctx:
        return prompt, tokens
    if truncate and len(messages) > 1:
        last = len(messages) - 1
        best: tuple[str, list[int] | None] | None = None
        for i in range(last, -1, -1):
            kept = [m for m in messages[:i] if m.get("role") == "system"] + messages[i:]
            p = await asyncio.to_thread(render, kept)
            t = await count(p)
            fits = t is not None and len(t) < num_ctx
            if not fits and i != last:
                break
            best = (p, t)
            if not fits:
                break
        if best is not None:
            prompt, tokens = best
    if tokens is None:
        raise too_many_chars(prompt, num_ctx)
    if len(tokens) >= num_ctx:
        raise too_long(len(tokens), num_ctx)
    return prompt, tokens
