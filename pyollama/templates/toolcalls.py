"""Parsing tool calls out of streamed model output (after Ollama's generic tools parser).

The tag is the first literal text in the template's `{{ if .ToolCalls }}` block, cut at the first
`{` (`<tool_call>`, `[TOOL_CALLS]`, `Action: ```json`); without one the tag is `{`, meaning "the
output starts with a JSON object (or array)". Text before the tag streams out as content; a partial
tag at the end of a piece is held back. After the tag the parser reads JSON values:
  {"name": N, "arguments"|"parameters": {...}}   (arguments may also be a JSON string)
  {"type": "function", "function": {...}}         {"tool_name": N, "parameters": {...}}
  {N: {...}}                                      [ several of the above ]
  N ... {...}   (a known tool name in the text just before a bare arguments object)
Only known tool names count. Text between values (closing tags, fences) is skipped. If nothing
parses, the held text is returned as content; after at least one call, trailing text is dropped.
Decisions depend only on complete JSON values, so results never depend on how output was split.
"""
from __future__ import annotations

import json
import random
import string
from dataclasses import dataclass, field
from typing import Any, Callable

from pyollama.templates.gonodes import (
    ActionNode, FieldNode, IfNode, ListNode, Node, RangeNode, TextNode, WithNode,
)
from pyollama.templates.gotemplate import GoTemplate, parse_cached

_ID_CHARS = string.ascii_lowercase + string.digits
_rng = random.SystemRandom()


def new_call_id(rng: random.Random | None = None) -> str:
    """`call_` + 8 lowercase alphanumerics, as Ollama makes them."""
    r = rng or _rng
    return "call_" + "".join(r.choice(_ID_CHARS) for _ in range(8))


# -- the tag ---------------------------------------------------------------------------------------
def _find_tool_calls_if(nodes: list[Node]) -> IfNode | None:
    for n in nodes:
        if isinstance(n, IfNode):
            for c in n.pipe.cmds:
                if any(isinstance(a, FieldNode) and "ToolCalls" in a.ident for a in c.args):
                    return n
            found = _find_tool_calls_if(n.list.nodes)
            if found is None and n.else_list is not None:
                found = _find_tool_calls_if(n.else_list.nodes)
            if found is not None:
                return found
        elif isinstance(n, ListNode):
            found = _find_tool_calls_if(n.nodes)
            if found is not None:
                return found
        elif isinstance(n, (RangeNode, WithNode)):
            found = _find_tool_calls_if(n.list.nodes)
            if found is None and n.else_list is not None:
                found = _find_tool_calls_if(n.else_list.nodes)
            if found is not None:
                return found
    return None


def _first_text(nodes: list[Node]) -> TextNode | None:
    for n in nodes:
        if isinstance(n, TextNode):
            return n
        if isinstance(n, (IfNode, RangeNode, WithNode)):
            t = _first_text(n.list.nodes)
            if t is None and n.else_list is not None:
                t = _first_text(n.else_list.nodes)
            return t
        if isinstance(n, ListNode):
            t = _first_text(n.nodes)
            if t is not None:
                return t
        if isinstance(n, ActionNode):
            return None
    return None


def infer_tool_tag(template: str | GoTemplate | None) -> str:
    """The tool-call tag of a Go template (`{` when the template shows none)."""
    if template is None:
        return "{"
    t = parse_cached(template) if isinstance(template, str) else template
    node = _find_tool_calls_if(t.root.nodes)
    text = _first_text(node.list.nodes) if node is not None else None
    if text is None:
        return "{"
    tag = text.text.strip().replace("\r\n", "\n").split("{")[0].strip()
    # "[TOOL_CALLS][" / "Action: ```json\n[": the bracket opens the JSON array, not the tag.
    if len(tag) > 1 and tag.endswith("["):
        tag = tag[:-1].rstrip()
    return tag or "{"


# -- results ---------------------------------------------------------------------------------------
@dataclass
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]
    index: int

    def to_api(self) -> dict[str, Any]:
        """The native API shape: {"id", "function": {"index", "name", "arguments"}}."""
        return {"id": self.id, "function": {"index": self.index, "name": self.name, "arguments": self.arguments}}


@dataclass
class ToolParseResult:
    content: str = ""
    calls: list[ToolCall] = field(default_factory=list)


_LOOKING, _CALLING, _DONE = range(3)
_NAME_KEYS = ("name", "tool_name")
_ARG_KEYS = ("arguments", "parameters")


class ToolCallParser:
    """Feed pieces with `feed(text)`, end with `finish()`; each returns the content that is now
    certain and the calls completed so far. One instance per request, used from one thread.

    `tools` are the request's tools (OpenAI-style dicts or plain names); `tag` comes from
    `infer_tool_tag(template)`; `id_factory` makes call ids (seed it for reproducible tests).
    """

    def __init__(self, tools: list[Any] | None, tag: str = "{", *,
                 id_factory: Callable[[], str] | None = None):
        self.names = [n for n in (_tool_name(t) for t in tools or []) if n]
        self.tag = tag or "{"
        self.bare = self.tag in ("{", "[")
        self.state = _LOOKING
        self.buf = ""           # text not yet decided
        self.raw = ""           # everything since the tag (returned as content if nothing parses)
        self.pos = 0            # scan position in buf (CALLING)
        self.calls: list[ToolCall] = []
        self.new_id = id_factory or new_call_id

    @classmethod
    def for_template(cls, template: str | GoTemplate | None, tools: list[Any] | None,
                     **kw: Any) -> ToolCallParser:
        return cls(tools, infer_tool_tag(template), **kw)

    def feed(self, text: str) -> ToolParseResult:
        out = ToolParseResult()
        if self.state == _DONE:
            if not self.calls:
                out.content = text
            return out
        self.buf += text
        if self.state == _LOOKING:
            out.content = self._look()
        if self.state == _CALLING:
            self._scan(out, final=False)
        return out

    def finish(self) -> ToolParseResult:
        out = ToolParseResult()
        if self.state == _LOOKING:
            out.content, self.buf = self.buf, ""
        elif self.state == _CALLING:
            self._scan(out, final=True)
            if self.state == _CALLING:
                if not self.calls:
                    out.content += self.raw + self.buf
                self.buf = self.raw = ""
        self.state = _DONE
        return out

    # -- before the tag -------------------------------------------------------------------------
    def _look(self) -> str:
        buf = self.buf
        if self.bare:
            stripped = buf.lstrip()
            if not stripped:
                self.buf = ""
                return buf  # leading whitespace is content either way
            lead = buf[:len(buf) - len(stripped)]
            if stripped[0] in "{[":
                self.state = _CALLING
                self.buf, self.pos = stripped, 0
                return lead
            self.state = _DONE
            self.buf = ""
            return buf
        i = buf.find(self.tag)
        if i >= 0:
            self.state = _CALLING
            self.raw = self.tag
            self.buf, self.pos = buf[i + len(self.tag):], 0
            return buf[:i]
        keep = _overlap(buf, self.tag)
        self.buf = buf[len(buf) - keep:]
        return buf[:len(buf) - keep]

    # -- after the tag --------------------------------------------------------------------------
    def _scan(self, out: ToolParseResult, final: bool) -> None:
        while self.state == _CALLING:
            buf = self.buf
            start = _next_json_start(buf, self.pos)
            between = buf[self.pos:start if start >= 0 else len(buf)]
            if self.bare and between.strip(" \t\r\n,;"):
                self._stop(out)  # prose after bare JSON: the tool region is over
                return
            if start < 0:
                return
            end = _json_end(buf, start)
            if end < 0:
                return  # incomplete value: wait for more
            try:
                value = json.loads(buf[start:end])
            except ValueError:
                self._fail(out)
                return
            calls = self._extract(value, _hint(between, self.names))
            if not calls:
                self._fail(out)
                return
            for name, args in calls:
                c = ToolCall(self.new_id(), name, args, len(self.calls))
                self.calls.append(c)
                out.calls.append(c)
            self.raw += buf[:end]
            self.buf, self.pos = buf[end:], 0

    def _fail(self, out: ToolParseResult) -> None:
        if not self.calls:
            out.content += self.raw + self.buf
        self._stop(out, emit=False)

    def _stop(self, out: ToolParseResult, emit: bool = True) -> None:
        if emit and not self.calls:
            out.content += self.raw + self.buf
        self.state = _DONE
        self.buf = self.raw = ""

    def _known(self, name: Any) -> bool:
        return isinstance(name, str) and bool(name) and (not self.names or name in self.names)

    def _extract(self, v: Any, hint: str | None) -> list[tuple[str, dict[str, Any]]] | None:
        if isinstance(v, list):
            calls: list[tuple[str, dict[str, Any]]] = []
            for e in v:
                c = self._extract(e, None)
                if not c:
                    return None
                calls.extend(c)
            return calls or None
        if not isinstance(v, dict):
            return None
        fn = v.get("function")
        if isinstance(fn, dict):
            return self._extract(fn, hint)
        for nk in (*_NAME_KEYS, "function"):
            name = v.get(nk)
            if isinstance(name, str):
                if not self._known(name):
                    return None
                for ak in _ARG_KEYS:
                    if ak in v:
                        args = _as_object(v[ak])
                        return [(name, args)] if args is not None else None
                return [(name, {})]
        if len(v) == 1:
            (k, a), = v.items()
            if self._known(k) and k in self.names and _as_object(a) is not None:
                return [(k, _as_object(a))]  # type: ignore[list-item]
        if hint is not None:
            return [(hint, v)]
        return None


def _tool_name(t: Any) -> str:
    if isinstance(t, str):
        return t
    if isinstance(t, dict):
        fn = t.get("function")
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            return fn["name"]  # type: ignore[no-any-return]
        if isinstance(t.get("name"), str):
            return t["name"]  # type: ignore[no-any-return]
    fn = getattr(t, "Function", None)
    return getattr(fn, "Name", "") if fn is not None else ""


def _as_object(a: Any) -> dict[str, Any] | None:
    if isinstance(a, str):
        try:
            a = json.loads(a)
        except ValueError:
            return None
    return a if isinstance(a, dict) else None


def _hint(between: str, names: list[str]) -> str | None:
    """The known tool name that ends last in the text before a bare arguments object."""
    best, best_end = None, -1
    for n in names:
        i = between.rfind(n)
        if i >= 0 and (i + len(n) > best_end or (i + len(n) == best_end and len(n) > len(best or ""))):
            best, best_end = n, i + len(n)
    return best


def _next_json_start(s: str, pos: int) -> int:
    i = s.find("{", pos)
    j = s.find("[", pos)
    # "[ARGS]", "[TOOL_CALLS]", "[/INST]": a bracket followed by a letter or slash is a marker, not
    # JSON. A bracket at the very end is undecided; it is returned and its value waits for text.
    while j >= 0 and j + 1 < len(s) and (s[j + 1].isalpha() or s[j + 1] == "/"):
        j = s.find("[", j + 1)
    if i < 0:
        return j
    if j < 0:
        return i
    return min(i, j)


def _json_end(s: str, start: int) -> int:
    """End (exclusive) of the JSON value opening at `start`, or -1 if it is not complete yet."""
    depth = 0
    in_str = esc = False
    for k in range(start, len(s)):
        c = s[k]
        if in_str:
            if esc:
                esc = False
            elif c == "\\":
                esc = True
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
        elif c in "{[":
            depth += 1
        elif c in "}]":
            depth -= 1
            if depth == 0:
                return k + 1
    return -1


def _overlap(s: str, tag: str) -> int:
    for i in range(min(len(tag) - 1, len(s)), 0, -1):
        if s.endswith(tag[:i]):
            return i
    return 0
