"""``tool_choice`` enforced by constrained decoding (Ollama ignores it: #7778, #17921).

``required`` (Anthropic ``any``) and a named function turn into a GBNF grammar that admits exactly one
call in the syntax the model's template writes — its tool-call tag (``<tool_call>``, ``[TOOL_CALLS]``,
or none when the template expects a bare JSON object), then ``{"name": "<tool>", "arguments": {...}}``
with the arguments constrained by that tool's ``parameters`` schema (llama.cpp's converter). When the
grammar is complete only end-of-generation tokens remain, so the output is one call that the ordinary
tool-call parser turns into ``tool_calls``. ``none`` is handled by the caller (tools are not rendered);
``auto`` adds nothing.

Thread-safety: pure functions.
"""
from __future__ import annotations

import json
import re
from typing import Any

from pyollama.errors import InvalidRequest

_IDENT = re.compile(r"[A-Za-z0-9_-]+")


def parse(value: Any, *, anthropic: bool = False) -> tuple[str, str]:
    """A request's ``tool_choice`` → ``(choice, name)`` with choice in auto / none / required / function.

    OpenAI chat: ``"auto"|"none"|"required"|{"type":"function","function":{"name"}}``; Responses:
    ``{"type":"function","name"}``; Anthropic: ``{"type":"auto"|"any"|"tool"|"none","name"}``."""
    if value is None:
        return "auto", ""
    if isinstance(value, str) and not anthropic:
        if value in ("auto", "none", "required"):
            return value, ""
        raise InvalidRequest(f'invalid tool_choice "{value}" (must be "none", "auto", "required" or a function)')
    if not isinstance(value, dict):
        raise InvalidRequest("tool_choice must be a string or an object")
    kind = value.get("type")
    if anthropic:
        if kind in ("auto", "none"):
            return kind, ""
        if kind == "any":
            return "required", ""
        if kind == "tool":
            return "function", _name(value.get("name"))
        raise InvalidRequest(f'tool_choice.type must be "auto", "any", "tool" or "none", not {json.dumps(kind)}')
    if kind in ("auto", "none", "required") and len(value) == 1:
        return kind, ""
    if kind == "function":
        fn = value.get("function")
        return "function", _name(fn.get("name") if isinstance(fn, dict) else value.get("name"))
    raise InvalidRequest(f'tool_choice.type must be "function", not {json.dumps(kind)}')


def _name(v: Any) -> str:
    if not isinstance(v, str) or not v:
        raise InvalidRequest("tool_choice must name a function")
    return v


def tool_name(tool: dict[str, Any]) -> str:
    fn = tool.get("function")
    return str(fn.get("name", "")) if isinstance(fn, dict) else ""


def lit(s: str) -> str:
    """A GBNF string literal for ``s``."""
    esc = s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f'"{esc}"'


def _prefixed(gbnf: str, prefix: str) -> str:
    """Rename every rule of a converter-made grammar (one ``name ::= body`` per line) to ``prefix+name``,
    so several tools' grammars can live in one. Literals and character classes are left alone."""
    rules: list[tuple[str, str]] = []
    for line in gbnf.splitlines():
        if "::=" in line:
            name, body = line.split("::=", 1)
            rules.append((name.strip(), body))
    names = {n for n, _ in rules}
    out = []
    for name, body in rules:
        out.append(f"{prefix}{name} ::={_rename(body, names, prefix)}")
    return "\n".join(out)


def _rename(body: str, names: set[str], prefix: str) -> str:
    out: list[str] = []
    i, n = 0, len(body)
    while i < n:
        c = body[i]
        if c in "\"[":                       # a literal or a character class: copy it through, escapes included
            close = '"' if c == '"' else "]"
            j = i + 1
            while j < n and body[j] != close:
                j += 2 if body[j] == "\\" else 1
            out.append(body[i:j + 1])
            i = j + 1
        elif c == "{":                       # a repetition count {m,n}
            j = body.index("}", i)
            out.append(body[i:j + 1])
            i = j + 1
        else:
            m = _IDENT.match(body, i)
            if m:
                word = m.group(0)
                out.append(prefix + word if word in names else word)
                i = m.end()
            else:
                out.append(c)
                i += 1
    return "".join(out)


def grammar(tag: str, tools: list[dict[str, Any]], name: str = "") -> str:
    """GBNF forcing one call of ``name`` (or of any of ``tools`` when empty) after the template's tag."""
    from pyollama.engine.grammar import schema_to_gbnf

    chosen = [t for t in tools if not name or tool_name(t) == name]
    if not chosen:
        raise InvalidRequest(f'tool_choice names "{name}", which is not one of the request\'s tools')
    parts = []
    alts = []
    for i, t in enumerate(chosen):
        fn = t.get("function") or {}
        params = fn.get("parameters")
        if not isinstance(params, dict) or not params:
            params = {"type": "object"}
        prefix = f"t{i}-"
        parts.append(_prefixed(schema_to_gbnf(params), prefix))
        parts.append(f'{prefix}call ::= "{{" ws {lit(json.dumps("name"))} ws ":" ws {lit(json.dumps(tool_name(t)))} '
                     f'ws "," ws {lit(json.dumps("arguments"))} ws ":" ws {prefix}root ws "}}"')
        alts.append(f"{prefix}call")
    head = "" if tag in ("{", "[", "") else f'{lit(tag)} ("\\n" | " ")? '
    return "\n".join([f"root ::= {head}({' | '.join(alts)})", 'ws ::= " "?', *parts]) + "\n"
