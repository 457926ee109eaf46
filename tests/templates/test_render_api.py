"""The public rendering API: Ollama's rendering model (modes, merging, appended Response, default
template), the power-user render_template, caching, and capabilities."""
from __future__ import annotations

from pathlib import Path

import pytest

from pyollama.errors import TemplateExecError, TemplateParseError
from pyollama.templates import (
    GoTemplate, model_capabilities, parse_cached, render_chat, render_generate, render_template,
    template_capabilities,
)
from pyollama.templates.render import prepare

GOLDEN = Path(__file__).parent / "golden"


def test_default_template_is_prompt() -> None:
    assert render_generate("", "hello") == "hello"
    assert render_chat("", [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                            {"role": "user", "content": "c"}]) == "ab" + "c"


def test_response_appended_when_missing() -> None:
    # neither .Messages nor .Response: Ollama appends {{ .Response }}, so history turns include replies
    t = "<u>{{ .Prompt }}</u>"
    msgs = [{"role": "user", "content": "1"}, {"role": "assistant", "content": "R"}, {"role": "user", "content": "2"}]
    assert render_chat(t, msgs) == "<u>1</u>R<u>2</u>"
    assert prepare(t).full.execute({"Prompt": "p", "Response": "r"}) == "<u>p</u>r"


def test_legacy_cut_before_response_keeps_prefill() -> None:
    t = "[INST] {{ .Prompt }} [/INST] {{ .Response }}</s>"
    msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "partial"}]
    assert render_chat(t, msgs) == "[INST] q [/INST] partial"


def test_legacy_system_turns() -> None:
    t = "{{ if .System }}S:{{ .System }}|{{ end }}U:{{ .Prompt }}|A:{{ .Response }};"
    msgs = [{"role": "system", "content": "s1"}, {"role": "user", "content": "u1"},
            {"role": "assistant", "content": "a1"}, {"role": "system", "content": "s2"},
            {"role": "user", "content": "u2"}]
    assert render_chat(t, msgs) == "S:s1|U:u1|A:a1;S:s2|U:u2|A:"


def test_messages_mode_merges_same_role_but_not_tools() -> None:
    t = "{{ .System }}#{{ range .Messages }}[{{ .Role }}:{{ .Content }}]{{ end }}"
    msgs = [{"role": "system", "content": "a"}, {"role": "system", "content": "b"},
            {"role": "USER", "content": "x"}, {"role": "user", "content": "y"},
            {"role": "tool", "content": "t1"}, {"role": "tool", "content": "t2"}]
    assert render_chat(t, msgs) == "a\n\nb#[system:a\n\nb][user:x\n\ny][tool:t1][tool:t2]"


def test_generate_fim_and_system() -> None:
    t = "{{ if .Suffix }}<PRE>{{ .Prompt }}<SUF>{{ .Suffix }}<MID>{{ else }}{{ .System }}>{{ .Prompt }}{{ end }}"
    assert render_generate(t, "def f():", suffix="return 1") == "<PRE>def f():<SUF>return 1<MID>"
    assert render_generate(t, "hi", system="sys") == "sys>hi"


def test_render_template_plain_go_semantics() -> None:
    t = ("{{ .System }}|{{ range .Messages }}{{ .Role }}={{ .Content }}{{ range .ToolCalls }} "
         "{{ .Function.Name }}{{ .Function.Arguments }}{{ end }};{{ end }}|{{ .Tools }}|{{ .Think }}|{{ .Nope }}")
    values = {"System": "s", "Think": True,
              "Messages": [{"Role": "user", "Content": "a"}, {"Role": "user", "Content": "b"},
                           {"Role": "assistant", "ToolCalls": [{"Function": {"Name": "f", "Arguments": {"y": 1, "x": "<"}}}]}],
              "Tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object",
                                                                                    "properties": {}}}}]}
    # no merging, arguments as a Go map (sorted keys, as Ollama hands them to templates) and HTML-safe,
    # tools as Go's JSON, missing key <no value>
    assert render_template(t, values) == (
        's|user=a;user=b;assistant= f{"x":"\\u003c","y":1};|'
        '[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{}}}}]|true|<no value>')


def test_message_fields_are_typed() -> None:
    with pytest.raises(TemplateExecError, match=r"can't evaluate field Nope in type \*api.Message"):
        render_chat("{{ range .Messages }}{{ .Nope }}{{ end }}", [{"role": "user", "content": "x"}])
    assert render_chat("{{ range .Messages }}{{ .ToolCalls }}{{ .Images }}{{ .Thinking }}{{ end }}",
                       [{"role": "user", "content": "x"}]) == "[][]"
    # messages mode: no tools is Go's nil api.Tools, whose String() and JSON are `null`
    assert render_chat("{{ .Messages | len }}{{ .Tools }}|{{ json .Tools }}",
                       [{"role": "user", "content": "x"}]) == "1null|null"
    # legacy mode has no .Tools key at all
    assert render_chat("{{ .Tools }}|{{ json .Tools }}", [{"role": "user", "content": "x"}]) == "<no value>|null"


def test_think_values() -> None:
    t = "{{ range .Messages }}{{ end }}{{ .Think }}/{{ .ThinkLevel }}/{{ .IsThinkSet }}"
    m = [{"role": "user", "content": "x"}]
    assert render_chat(t, m) == "false//false"
    assert render_chat(t, m, think=True) == "true/medium/true"
    assert render_chat(t, m, think=False) == "false//true"
    assert render_chat(t, m, think="high") == "true/high/true"


def test_parse_once_execute_many() -> None:
    text = "{{ range .Messages }}{{ .Content }}{{ end }} cached"
    assert parse_cached(text) is parse_cached(text)
    fresh = GoTemplate(text)
    data = {"Messages": []}
    assert fresh.execute(data) == parse_cached(text).execute(data) == " cached"
    assert prepare(text) is prepare(text)


def test_bad_templates_raise_template_errors() -> None:
    for bad, where in [("{{ .X ", ":1:"), ("a\n{{ nosuch 1 }}", ":2:3:"), ("{{ .A | 1 }}", ":1:"),
                       ("{{ range .Messages }}", ":1:")]:
        with pytest.raises(TemplateParseError) as ei:
            render_chat(bad, [{"role": "user", "content": "x"}])
        assert where in str(ei.value)
    with pytest.raises(TemplateExecError, match=r"template: :1:3: executing \"\" at <index .Messages 5>"):
        render_chat("{{ index .Messages 5 }}", [{"role": "user", "content": "x"}])


def test_capabilities() -> None:
    def caps(family: str) -> set[str]:
        return template_capabilities((GOLDEN / family / "template.gotmpl").read_text())
    assert caps("qwen3-thinking") == {"tools", "thinking"}
    assert caps("deepseek-r1") == {"thinking"}
    assert caps("starcoder-fim") == {"insert"}
    assert caps("chatml") == set()
    qwen3 = (GOLDEN / "qwen3-thinking" / "template.gotmpl").read_text()
    assert model_capabilities(qwen3, projector=True) == ["completion", "tools", "vision", "thinking"]
    assert model_capabilities(qwen3, gguf_vision=True) == ["completion", "vision", "tools", "thinking"]
    assert model_capabilities(None, jinja_template="{% if tools %}x{% endif %}", embedding=True) == [
        "embedding", "tools"]
    with pytest.raises(TemplateParseError):
        template_capabilities("{{ if }}")
