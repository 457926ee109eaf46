"""Splitting a model's streamed output into `thinking` and `content` (Ollama's generic tag parser).

The tags come from the template: the first and last literal text of the innermost block around
a `.Thinking` field that sits inside a `range .Messages` (typically `<think>` ... `</think>`).
Whitespace right after the opening tag and right after the closing tag is dropped. When the
prompt already ends with the opening tag (a prefilled `<think>`), parsing starts inside it.
The result depends only on the text, never on how it was split into pieces.
"""
from __future__ import annotations

from typing import Any, NamedTuple

from pyollama.templates.gonodes import (
    ActionNode, BranchNode, CommandNode, FieldNode, ListNode, Node, PipeNode, RangeNode, TemplateNode,
    TextNode,
)
from pyollama.templates.gotemplate import GoTemplate, parse_cached

# unicode.IsSpace in Go: ASCII spaces, NEL, NBSP and the Z category separators.
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009" \
            "\u200a\u2028\u2029\u202f\u205f\u3000"


def _lstrip(s: str) -> str:
    return s.lstrip(_GO_SPACE)


def _children(n: Node) -> list[Any]:
    if isinstance(n, ListNode):
        return list(n.nodes)
    if isinstance(n, BranchNode):
        return [n.pipe, n.list, n.else_list]
    if isinstance(n, ActionNode):
        return [n.pipe]
    if isinstance(n, TemplateNode):
        return [n.pipe]
    if isinstance(n, PipeNode):
        return list(n.cmds)
    if isinstance(n, CommandNode):
        return list(n.args)
    return []


def _range_uses(r: RangeNode, field: str) -> bool:
    stack: list[Any] = [r.pipe]
    while stack:
        n = stack.pop()
        if n is None:
            continue
        if isinstance(n, FieldNode) and n.ident and n.ident[0] == field:
            return True
        stack.extend(_children(n))
    return False


def infer_tags(template: str | GoTemplate) -> tuple[str, str]:
    """(opening, closing) thinking tags as Ollama's thinking.InferTags finds them; ("", "") if none."""
    t = parse_cached(template) if isinstance(template, str) else template
    opening, closing = "", ""
    ancestors: list[Node] = []

    def visit(n: Any) -> None:
        nonlocal opening, closing
        if n is None:
            return
        ancestors.append(n)
        if isinstance(n, FieldNode) and n.ident and n.ident[0] == "Thinking":
            rng = next((a for a in reversed(ancestors) if isinstance(a, RangeNode)), None)
            if rng is not None and _range_uses(rng, "Messages"):
                lst = next((a for a in reversed(ancestors) if isinstance(a, ListNode)), None)
                if lst is not None and lst.nodes:
                    if isinstance(lst.nodes[0], TextNode):
                        opening = lst.nodes[0].text.strip(_GO_SPACE)
                    if isinstance(lst.nodes[-1], TextNode):
                        closing = lst.nodes[-1].text.strip(_GO_SPACE)
        for c in _children(n):
            visit(c)
        ancestors.pop()

    visit(t.root)
    return opening, closing


class ThinkingResult(NamedTuple):
    thinking: str
    content: str


_LOOKING, _STARTED, _THINKING, _DONE_WS, _DONE = range(5)


class ThinkingParser:
    """Feed output pieces with `feed(text)`; call `finish()` at the end of generation.

    Both return (thinking, content) for the text that is now certain. One instance per request;
    use it from one thread.
    """

    def __init__(self, opening: str = "<think>", closing: str = "</think>", *, prefilled: bool = False):
        if not opening or not closing:
            raise ValueError("thinking tags must be non-empty")
        self.opening = opening
        self.closing = closing
        self.state = _STARTED if prefilled else _LOOKING
        self.acc = ""

    @classmethod
    def for_prompt(cls, template: str | GoTemplate, prompt: str) -> ThinkingParser | None:
        """A parser with the template's tags, started inside thinking when `prompt` ends with the
        opening tag; None when the template has no thinking tags."""
        opening, closing = infer_tags(template)
        if not opening or not closing:
            return None
        return cls(opening, closing, prefilled=prompt.strip(_GO_SPACE).endswith(opening))

    @property
    def done_thinking(self) -> bool:
        return self.state in (_DONE_WS, _DONE)

    def feed(self, text: str) -> ThinkingResult:
        self.acc += text
        thinking: list[str] = []
        content: list[str] = []
        while self._step(thinking, content):
            pass
        return ThinkingResult("".join(thinking), "".join(content))

    def finish(self) -> ThinkingResult:
        """Flush what was held back waiting for more text."""
        acc, self.acc = self.acc, ""
        if self.state == _LOOKING:
            self.state = _DONE
            return ThinkingResult("", acc)
        if self.state == _THINKING:
            return ThinkingResult(acc, "")
        if self.state == _DONE:
            return ThinkingResult("", acc)
        return ThinkingResult("", "")

    def _step(self, thinking: list[str], content: list[str]) -> bool:
        acc = self.acc
        if self.state == _LOOKING:
            trimmed = _lstrip(acc)
            if trimmed.startswith(self.opening):
                after = _lstrip(trimmed[len(self.opening):])
                self.acc = after
                self.state = _THINKING if after else _STARTED
                return True
            if self.opening.startswith(trimmed):
                return False  # a partial tag, or only whitespace so far
            self.state = _DONE
            self.acc = ""
            content.append(acc)
            return False
        if self.state == _STARTED:
            trimmed = _lstrip(acc)
            if not trimmed:
                self.acc = ""
                return False
            self.state = _THINKING
            self.acc = trimmed
            return True
        if self.state == _THINKING:
            idx = acc.find(self.closing)
            if idx >= 0:
                thinking.append(acc[:idx])
                rest = _lstrip(acc[idx + len(self.closing):])
                self.acc = ""
                self.state = _DONE if rest else _DONE_WS
                content.append(rest)
                return False
            keep = _overlap(acc, self.closing)
            thinking.append(acc[:len(acc) - keep])
            self.acc = acc[len(acc) - keep:]
            return False
        if self.state == _DONE_WS:
            trimmed = _lstrip(acc)
            if trimmed:
                self.state = _DONE
            self.acc = ""
            content.append(trimmed)
            return False
        self.acc = ""
        content.append(acc)
        return False


def _overlap(s: str, delim: str) -> int:
    """Length of the longest suffix of `s` that is a proper prefix of `delim`."""
    for i in range(min(len(delim) - 1, len(s)), 0, -1):
        if s.endswith(delim[:i]):
            return i
    return 0
