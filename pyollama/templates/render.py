"""Ollama's prompt-rendering model on top of the Go template engine (template/template.go).

Three modes, chosen the way Ollama chooses them:
  * suffix (FIM): `prompt` and `suffix` both set → only .Prompt and .Suffix are given;
  * messages: the template mentions `.Messages` → one run over the collated message list + .Tools;
  * legacy: the template runs once per system/user/assistant turn and the outputs are joined; the
    last turn runs on a copy of the template cut right after its `{{ .Response }}`.
A template that mentions neither `.Messages` nor `.Response` gets `{{ .Response }}` appended.
Consecutive messages of the same role (except `tool`) are merged with a blank line between them.
"""
from __future__ import annotations

import copy
import threading
from dataclasses import dataclass
from typing import Any

from pyollama.templates.gonodes import (
    ActionNode, BranchNode, CommandNode, FieldNode, ListNode, Node, PipeNode,
)
from pyollama.templates.goparse import ParsedTemplate
from pyollama.templates.gotemplate import GoTemplate, parse_cached
from pyollama.templates.ollama_types import (
    Message, ToolList, message_from_api, message_from_template_values, tools_from_api,
)

DEFAULT_TEMPLATE = "{{ .Prompt }}"


def think_values(think: bool | str | None) -> tuple[bool, str, bool]:
    """(.Think, .ThinkLevel, .IsThinkSet) from a request's `think`: a level implies true; true is
    level "medium" for templates that read .ThinkLevel."""
    if think is None:
        return False, "", False
    if isinstance(think, bool):
        return think, "medium" if think else "", True
    return True, str(think), True


@dataclass
class _Prepared:
    """A template made ready for Ollama's model: `{{ .Response }}` appended where needed, plus the
    legacy last-turn variant (built lazily, once)."""

    full: GoTemplate
    vars: list[str]
    _cut: GoTemplate | None = None

    def cut(self) -> GoTemplate:
        if self._cut is None:
            parsed = self.full.parsed
            root = _cut_after_response(copy.deepcopy(parsed.root))
            self._cut = GoTemplate.from_parsed(ParsedTemplate(parsed.name, parsed.text, root, parsed.trees),
                                               self.full.funcs)
        return self._cut


_prepared: dict[str, _Prepared] = {}
_lock = threading.Lock()


def prepare(text: str) -> _Prepared:
    """Parse (once per text) and touch up a model template as Ollama's template.Parse does."""
    p = _prepared.get(text)
    if p is not None:
        return p
    base = parse_cached(text)
    names = base.vars()
    if "messages" not in names and "response" not in names:
        parsed = base.parsed
        root = ListNode(parsed.root.pos, [*parsed.root.nodes, _response_action()])
        full = GoTemplate.from_parsed(ParsedTemplate(parsed.name, parsed.text, root, parsed.trees), base.funcs)
    else:
        full = base
    p = _Prepared(full, names)
    with _lock:
        if len(_prepared) > 256:
            _prepared.clear()
        _prepared[text] = p
    return p


def _response_action() -> ActionNode:
    pos = 0
    field = FieldNode(pos, ["Response"])
    return ActionNode(pos, 0, PipeNode(pos, 0, cmds=[CommandNode(pos, [field])]))


def _cut_after_response(root: ListNode) -> ListNode:
    """Keep every node up to and including the first `.Response` field; drop all that follows
    (Ollama's deleteNode walk: the pipelines of if/with/range are not searched)."""
    cut = False

    def walk(n: Node | None) -> Node | None:
        nonlocal cut
        if isinstance(n, FieldNode) and "Response" in n.ident:
            cut = True
            return n
        if cut:
            return None
        if isinstance(n, ListNode):
            n.nodes = [k for k in (walk(c) for c in n.nodes) if k is not None]
            return n
        if isinstance(n, BranchNode):
            n.list = walk(n.list) or ListNode(n.list.pos)  # type: ignore[assignment]
            if n.else_list is not None:
                n.else_list = walk(n.else_list)  # type: ignore[assignment]
            return n
        if isinstance(n, ActionNode):
            p = walk(n.pipe)
            if p is None:
                return None
            n.pipe = p  # type: ignore[assignment]
            return n
        if isinstance(n, PipeNode):
            cmds = []
            for c in n.cmds:
                args = [k for k in (walk(a) for a in c.args) if k is not None]
                if not args:
                    return None
                c.args = args
                cmds.append(c)
            if not cmds:
                return None
            n.cmds = cmds
            return n
        return n

    out = walk(root)
    return out if isinstance(out, ListNode) else ListNode(root.pos)


def collate(messages: list[Message]) -> tuple[str, list[Message]]:
    """All system contents joined by a blank line, and the messages with consecutive same-role
    messages merged (tool results stay separate: each carries its own tool name)."""
    system: list[str] = []
    out: list[Message] = []
    for m in messages:
        if m.Role == "system":
            system.append(m.Content)
        if out and out[-1].Role == m.Role and m.Role != "tool":
            out[-1].Content += "\n\n" + m.Content
        else:
            out.append(m.copy())
    return "\n\n".join(system), out


def execute(template: str, messages: list[Message], tools: ToolList | None = None, *,
            think: bool | str | None = None, prompt: str = "", suffix: str = "") -> str:
    """Render `template` under Ollama's rendering model (messages are api.Message objects)."""
    p = prepare(template or DEFAULT_TEMPLATE)
    th, level, is_set = think_values(think)
    common = {"Think": th, "ThinkLevel": level, "IsThinkSet": is_set}
    system, msgs = collate(messages)
    if prompt and suffix:
        return p.full.execute({"Prompt": prompt, "Suffix": suffix, "Response": "", **common})
    if "messages" in p.vars:
        return p.full.execute({"System": system, "Messages": msgs, "Tools": tools if tools is not None
                               else ToolList(), "Response": "", **common})
    out: list[str] = []
    sys_, prm, rsp = "", "", ""
    for m in msgs:
        if m.Role == "system":
            if prm or rsp:
                out.append(p.full.execute({"System": sys_, "Prompt": prm, "Response": rsp, **common}))
                sys_, prm, rsp = "", "", ""
            sys_ = m.Content
        elif m.Role == "user":
            if rsp:
                out.append(p.full.execute({"System": sys_, "Prompt": prm, "Response": rsp, **common}))
                sys_, prm, rsp = "", "", ""
            prm = m.Content
        elif m.Role == "assistant":
            rsp = m.Content
    out.append(p.cut().execute({"System": sys_, "Prompt": prm, "Response": rsp, **common}))
    return "".join(out)


# -- the public entry points -----------------------------------------------------------------------
def render_chat(template: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None,
                *, think: bool | str | None = None) -> str:
    """Render a chat request: API-style messages ({"role","content","thinking","tool_calls",
    "tool_name"}) and OpenAI-style tools, with Ollama's modes and merging. Any thread may call."""
    return execute(template, [message_from_api(m) for m in messages], tools_from_api(tools), think=think)


def render_generate(template: str, prompt: str, *, system: str = "", suffix: str = "",
                    messages: list[dict[str, Any]] | None = None, think: bool | str | None = None) -> str:
    """Render a /api/generate request as Ollama does: with `suffix` the FIM mode, otherwise the
    system message (request's or model's), the model's stored MESSAGEs, then the user prompt."""
    if suffix:
        return execute(template, [], None, think=think, prompt=prompt, suffix=suffix)
    msgs: list[Message] = []
    if system:
        msgs.append(Message("system", system))
    msgs.extend(message_from_api(m) for m in messages or [])
    msgs.append(Message("user", prompt))
    return execute(template, msgs, None, think=think)


def render_template(text: str, values: dict[str, Any] | None = None) -> str:
    """Render Go template `text` with values shaped like Ollama's template data, exactly as Go's
    text/template would (no modes, no merging): keys System, Prompt, Response, Suffix, Messages
    (dicts with Role/Content/Thinking/ToolCalls/ToolName or api.Message), Tools (OpenAI-style
    dicts), Think, ThinkLevel, IsThinkSet, plus any extra keys as given."""
    values = dict(values or {})
    if "Messages" in values:
        values["Messages"] = [message_from_template_values(m) for m in values["Messages"] or []]
    if "Tools" in values:
        values["Tools"] = tools_from_api(values["Tools"])
    return parse_cached(text).execute(values)
