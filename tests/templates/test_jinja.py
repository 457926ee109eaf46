"""GGUF Jinja chat templates rendered as HF transformers renders them.

The SmolLM2 expectations were written by hand from its template logic and cross-checked once
against transformers 5.23 (`render_jinja_template`, no torch): identical for all six cases.
"""
from __future__ import annotations

import json

import pytest

from pyollama.errors import TemplateError, TemplateExecError, TemplateParseError
from pyollama.templates import JinjaTemplate, jinja_capabilities, read_gguf_chat_template

SMOL_SYSTEM = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"


@pytest.fixture(scope="module")
def smollm2(smollm2_path) -> JinjaTemplate:  # type: ignore[no-untyped-def]
    return JinjaTemplate.from_gguf(smollm2_path)


@pytest.mark.model
def test_smollm2_reads_template_and_tokens(smollm2_path) -> None:  # type: ignore[no-untyped-def]
    source, tokens = read_gguf_chat_template(smollm2_path)
    assert source is not None and "<|im_start|>" in source
    assert tokens == {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>"}


@pytest.mark.model
@pytest.mark.parametrize("agp", [True, False])
def test_smollm2_single_turn_default_system(smollm2: JinjaTemplate, agp: bool) -> None:
    out = smollm2.render([{"role": "user", "content": "Hello!"}], add_generation_prompt=agp)
    expected = SMOL_SYSTEM + "<|im_start|>user\nHello!<|im_end|>\n"
    assert out == expected + ("<|im_start|>assistant\n" if agp else "")


@pytest.mark.model
def test_smollm2_own_system_replaces_default(smollm2: JinjaTemplate) -> None:
    out = smollm2.render([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    assert out == ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                   "<|im_start|>assistant\n")


@pytest.mark.model
def test_smollm2_multi_turn_no_escaping(smollm2: JinjaTemplate) -> None:
    msgs = [{"role": "user", "content": "What's 2+2?"}, {"role": "assistant", "content": "4"},
            {"role": "user", "content": 'Thanks <3 & "bye"'}]
    assert smollm2.render(msgs) == (
        SMOL_SYSTEM + "<|im_start|>user\nWhat's 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n"
        '<|im_start|>user\nThanks <3 & "bye"<|im_end|>\n<|im_start|>assistant\n')


TOOLS_TEMPLATE = """{%- if tools %}<tools>
{% for t in tools %}{{ t | tojson }}
{% endfor %}</tools>
{% endif %}
{%- for m in messages %}
    {%- if m.role == 'assistant' and m.tool_calls %}
<call>{{ m.tool_calls[0].function | tojson(indent=2, sort_keys=true) }}</call>
    {%- else %}
<{{ m.role }}>{{ m.content }}</{{ m.role }}>
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
{{ bos_token }}assistant{% generation %} go{% endgeneration %}
{%- endif %}"""


def test_tools_tojson_hf_options() -> None:
    tools = [{"type": "function", "function": {"name": "f", "description": "é <b>", "parameters": {}}}]
    msgs = [{"role": "user", "content": "x"},
            {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": {"b": 1, "a": 2}}}]}]
    out = JinjaTemplate(TOOLS_TEMPLATE, bos_token="<s>").render(msgs, tools)
    # HF's tojson: no HTML escaping, non-ASCII kept, Python's default separators; the whole text
    # was cross-checked against transformers 5.23's render_jinja_template.
    assert out == (
        '<tools>\n{"type": "function", "function": {"name": "f", "description": "é <b>", "parameters": {}}}\n'
        "</tools>\n<user>x</user><call>"
        + json.dumps({"arguments": {"a": 2, "b": 1}, "name": "f"}, indent=2, sort_keys=True)
        + "</call><s>assistant go")
    assert jinja_capabilities(TOOLS_TEMPLATE) == {"tools"}


def test_trim_and_lstrip_blocks_like_hf() -> None:
    t = JinjaTemplate("{% for m in messages %}\n    {% if m.content %}\n[{{ m.content }}]\n    {% endif %}\n{% endfor %}\n")
    assert t.render([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]) == "[a]\n[b]\n"


def test_strftime_now_and_loop_controls() -> None:
    t = JinjaTemplate("{{ strftime_now('%Y') | length }}{% for i in [1,2,3] %}{% if i == 2 %}{% break %}{% endif %}{{ i }}{% endfor %}")
    assert t.render([]) == "41"


def test_raise_exception_is_template_error() -> None:
    t = JinjaTemplate("{% if messages[0].role != 'user' %}{{ raise_exception('Conversation must start with user') }}{% endif %}")
    with pytest.raises(TemplateExecError, match="Conversation must start with user"):
        t.render([{"role": "assistant", "content": "x"}])


def test_unknown_function_is_template_error() -> None:
    t = JinjaTemplate("{{ not_a_function(messages) }}")
    with pytest.raises(TemplateExecError, match="not_a_function"):
        t.render([{"role": "user", "content": "x"}])


def test_syntax_error_names_line() -> None:
    with pytest.raises(TemplateParseError) as ei:
        JinjaTemplate("ok\n{% for m in messages %}\n{{ m.content }")
    assert ei.value.line >= 2 and isinstance(ei.value, TemplateError)


def test_sandbox_blocks_unsafe_access() -> None:
    t = JinjaTemplate("{{ messages.__class__.__mro__ }}")
    with pytest.raises(TemplateError):
        t.render([])
    t2 = JinjaTemplate("{{ messages.append(1) }}")
    with pytest.raises(TemplateExecError):
        t2.render([])


def test_thinking_capability_from_jinja() -> None:
    assert jinja_capabilities("{% if x %}<think>\n{{ r }}\n</think>{% endif %}") == {"thinking"}
    assert jinja_capabilities("{{ messages }}") == set()


def test_render_jinja_chat_caches_and_renders() -> None:
    from pyollama.templates import render_jinja_chat
    src = "{{ bos_token }}{% for m in messages %}{{ m.role }}:{{ m.content }}\n{% endfor %}"
    assert render_jinja_chat(src, [{"role": "user", "content": "hi"}], bos_token="<s>") == "<s>user:hi\n"
