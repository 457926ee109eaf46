"""Model capabilities (OLLAMA.md §2.6): from the GGUF header and from the template text.

The template checks here are a small stand-in until ``pyollama.templates`` (written in parallel) offers
real capability detection from a parsed Go template; they look at the raw text:

* Go template: ``.Tools`` → tools, ``.Suffix`` → insert, ``.Thinking`` after a ``range`` over
  ``.Messages`` → thinking;
* GGUF Jinja template: mentions of ``tools``/``tool_call`` → tools, ``<think>`` and ``</think>`` → thinking.

Thread-safety: pure functions.
"""
from __future__ import annotations

import re

from pyollama.store.gguf_meta import GGUFInfo

ORDER = ("completion", "embedding", "vision", "tools", "insert", "thinking", "audio", "image")

_ACTION = re.compile(r"\{\{.*?\}\}", re.DOTALL)
_RANGE_MESSAGES = re.compile(r"\{\{-?\s*range\b[^}]*\.Messages\b")


def _actions(template: str) -> str:
    return " ".join(_ACTION.findall(template))


def go_template(template: str) -> list[str]:
    caps = []
    actions = _actions(template)
    if re.search(r"\.Tools\b", actions):
        caps.append("tools")
    if re.search(r"\.Suffix\b", actions):
        caps.append("insert")
    m = _RANGE_MESSAGES.search(template)
    if m and re.search(r"\.Thinking\b", _actions(template[m.end():])):
        caps.append("thinking")
    return caps


def jinja_template(template: str) -> list[str]:
    caps = []
    if re.search(r"\btools?\b|tool_call", template):
        caps.append("tools")
    if "<think>" in template and "</think>" in template:
        caps.append("thinking")
    return caps


def from_gguf(info: GGUFInfo | None) -> list[str]:
    if info is None:
        return []
    caps = ["embedding" if info.is_embedding else "completion"]
    if info.has_vision:
        caps.append("vision")
    return caps


def combine(gguf: GGUFInfo | None, *, template: str | None, template_is_jinja: bool,
            has_projector: bool = False) -> list[str]:
    caps = set(from_gguf(gguf))
    if template:
        caps.update(jinja_template(template) if template_is_jinja else go_template(template))
    if has_projector:
        caps.add("vision")
    return [c for c in ORDER if c in caps]
