"""Streaming thinking and tool-call parsers: realistic outputs of several model families, tags
derived from real-style templates, and identical results under any chunking (hypothesis)."""
from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyollama.templates import (
    ThinkingParser, ToolCallParser, infer_tags, infer_tool_tag, new_call_id, render_chat,
)

GOLDEN = Path(__file__).parent / "golden"


def tmpl(family: str) -> str:
    return (GOLDEN / family / "template.gotmpl").read_text()


TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {
    "city": {"type": "string"}}}}},
         {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {
             "tz": {"type": "string"}}}}},
         {"type": "function", "function": {"name": "get", "parameters": {}}}]


def counter_ids():  # type: ignore[no-untyped-def]
    n = itertools.count()
    return lambda: f"call_{next(n):08d}"


def run_tools(tag: str, pieces: list[str]) -> tuple[str, list[tuple[str, str, dict, int]]]:
    p = ToolCallParser(TOOLS, tag, id_factory=counter_ids())
    content, calls = [], []
    for piece in pieces:
        r = p.feed(piece)
        content.append(r.content)
        calls.extend(r.calls)
    r = p.finish()
    content.append(r.content)
    calls.extend(r.calls)
    return "".join(content), [(c.id, c.name, c.arguments, c.index) for c in calls]


def run_thinking(pieces: list[str], prefilled: bool = False, tags: tuple[str, str] = ("<think>", "</think>")):
    p = ThinkingParser(*tags, prefilled=prefilled)
    th, co = [], []
    for piece in pieces:
        r = p.feed(piece)
        th.append(r.thinking)
        co.append(r.content)
    r = p.finish()
    return "".join(th) + r.thinking, "".join(co) + r.content


# -- tags from templates ---------------------------------------------------------------------------
def test_tags_from_templates() -> None:
    assert infer_tool_tag(tmpl("qwen2.5-tools")) == "<tool_call>"
    assert infer_tool_tag(tmpl("llama3.1-tools")) == "{"
    assert infer_tool_tag(tmpl("mistral-tools")) == "[TOOL_CALLS]"
    assert infer_tool_tag(tmpl("command-r")) == "Action: ```json"
    assert infer_tool_tag(tmpl("chatml")) == "{"
    assert infer_tags(tmpl("deepseek-r1")) == ("<think>", "</think>")
    assert infer_tags(tmpl("qwen3-thinking")) == ("<think>", "</think>")
    assert infer_tags(tmpl("chatml")) == ("", "")
    # .Thinking outside `range .Messages` does not count (Ollama's rule)
    assert infer_tags("{{ if .Thinking }}<t>{{ .Thinking }}</t>{{ end }}") == ("", "")


# -- tool-call styles ------------------------------------------------------------------------------
TOOL_CASES = {
    "qwen_hermes": ("qwen2.5-tools",
                    'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}\n'
                    '</tool_call>\n<tool_call>\n{"name": "get_time", "arguments": {"tz": "Asia/Tokyo"}}\n</tool_call>',
                    "Let me check.\n",
                    [("get_weather", {"city": "Paris", "unit": "c"}), ("get_time", {"tz": "Asia/Tokyo"})]),
    "llama3_json": ("llama3.1-tools", '{"name": "get_weather", "parameters": {"city": "Paris"}}', "",
                    [("get_weather", {"city": "Paris"})]),
    "mistral": ("mistral-tools",
                '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}}, '
                '{"name": "get_time", "arguments": {"tz": "UTC"}}]', "",
                [("get_weather", {"city": "Paris"}), ("get_time", {"tz": "UTC"})]),
    "mistral_args": ("mistral-tools", '[TOOL_CALLS]get_weather[ARGS]{"city": "Oslo"}', "",
                     [("get_weather", {"city": "Oslo"})]),
    "command_r": ("command-r",
                  'I will look that up.\nAction: ```json\n[\n    {\n        "tool_name": "get_weather",\n'
                  '        "parameters": {"city": "Paris"}\n    }\n]\n```', "I will look that up.\n",
                  [("get_weather", {"city": "Paris"})]),
    "bare_json_string_args": ("chatml", '  {"name": "get_time", "arguments": "{\\"tz\\": \\"UTC\\"}"}', "  ",
                              [("get_time", {"tz": "UTC"})]),
    "openai_shape": ("chatml", '[{"type": "function", "function": {"name": "get", "arguments": {"z": 1, "a": 2}}}]', "",
                     [("get", {"z": 1, "a": 2})]),
    "plain_text": ("chatml", "The weather is {probably} fine.", "The weather is {probably} fine.", []),
    "json_not_a_call": ("chatml", '{"answer": 42}', '{"answer": 42}', []),
    "unknown_tool": ("qwen2.5-tools", 'x<tool_call>{"name": "rm_rf", "arguments": {}}</tool_call>',
                     'x<tool_call>{"name": "rm_rf", "arguments": {}}</tool_call>', []),
    "tag_never_followed": ("qwen2.5-tools", "Use <tool_call> tags, then stop.", "Use <tool_call> tags, then stop.", []),
    "partial_tag_at_end": ("qwen2.5-tools", "Done <tool_c", "Done <tool_c", []),
}


@pytest.mark.parametrize("name", list(TOOL_CASES))
def test_tool_call_styles(name: str) -> None:
    family, output, want_content, want_calls = TOOL_CASES[name]
    content, calls = run_tools(infer_tool_tag(tmpl(family)), [output])
    assert content == want_content
    assert [(n, a) for _, n, a, _ in calls] == want_calls
    assert [i for *_, i in calls] == list(range(len(want_calls)))
    for _, _, args, _ in calls:
        assert isinstance(args, dict)


def test_argument_key_order_kept() -> None:
    _, calls = run_tools("<tool_call>", ['<tool_call>{"name": "get", "arguments": {"z": 1, "m": 2, "a": 3}}'])
    assert list(calls[0][2]) == ["z", "m", "a"]


def test_content_streams_before_tag_and_holds_partial_tag() -> None:
    p = ToolCallParser(TOOLS, "<tool_call>")
    assert p.feed("Hello wor").content == "Hello wor"
    assert p.feed("ld <tool").content == "ld "          # "<tool" might start the tag
    r = p.feed('_call>{"name": "get_time", "arguments": {"tz": "UTC"}}')
    assert r.content == "" and [c.name for c in r.calls] == ["get_time"]
    assert p.finish().content == ""


def test_longest_tool_name_wins() -> None:
    _, calls = run_tools("[TOOL_CALLS]", ["[TOOL_CALLS]get_weather[ARGS]{}"])
    assert calls[0][1] == "get_weather"


def test_call_ids() -> None:
    ids = {new_call_id() for _ in range(50)}
    assert len(ids) == 50 and all(re.fullmatch(r"call_[a-z0-9]{8}", i) for i in ids)
    p = ToolCallParser(TOOLS, "{")
    calls = p.feed('{"name": "get", "arguments": {}}').calls
    assert re.fullmatch(r"call_[a-z0-9]{8}", calls[0].id)
    assert calls[0].to_api() == {"id": calls[0].id, "function": {"index": 0, "name": "get", "arguments": {}}}


# -- thinking styles -------------------------------------------------------------------------------
THINK_CASES = {
    "deepseek_r1": ("<think>\nOkay, 97: not divisible by 2, 3, 5, 7.\n</think>\n\n97 is prime.", False,
                    "Okay, 97: not divisible by 2, 3, 5, 7.\n", "97 is prime."),
    "qwen3": ("\n<think>\nUser greets.\n</think>\n\nHello! How can I help?", False, "User greets.\n",
              "Hello! How can I help?"),
    "prefilled": ("The user wants a haiku.\n</think>Rain taps on the roof", True, "The user wants a haiku.\n",
                  "Rain taps on the roof"),
    "no_thinking": ("Just an answer <think> later", False, "", "Just an answer <think> later"),
    "unclosed": ("<think>still thinking when cut off", False, "still thinking when cut off", ""),
    "only_whitespace_after": ("<think>x</think>   \n", False, "x", ""),
}


@pytest.mark.parametrize("name", list(THINK_CASES))
def test_thinking_styles(name: str) -> None:
    text, prefilled, want_thinking, want_content = THINK_CASES[name]
    assert run_thinking([text], prefilled) == (want_thinking, want_content)


def test_thinking_parser_from_prompt() -> None:
    t = tmpl("qwen3-thinking")
    prompt = render_chat(t, [{"role": "user", "content": "hi"}], think=True)
    p = ThinkingParser.for_prompt(t, prompt)
    assert p is not None and (p.opening, p.closing) == ("<think>", "</think>")
    assert p.state == 0  # not prefilled: qwen3 lets the model open <think>
    p2 = ThinkingParser.for_prompt("{{ range .Messages }}{{ if .Thinking }}<think>{{ .Thinking }}</think>"
                                   "{{ end }}{{ .Content }}{{ end }}<think>\n", "user says hi<think>\n")
    assert p2 is not None and p2.feed("hmm</think>ok") == ("hmm", "ok")
    assert ThinkingParser.for_prompt(tmpl("chatml"), "x") is None


# -- any chunking gives the same result ------------------------------------------------------------
def _split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts})
    pieces, last = [], 0
    for p in points:
        pieces.append(text[last:p])
        last = p
    pieces.append(text[last:])
    return pieces


TOOL_OUTPUTS = [(infer_tool_tag(tmpl(f)), out) for f, out, _, _ in TOOL_CASES.values()]
THINK_OUTPUTS = [(text, pre) for text, pre, _, _ in THINK_CASES.values()]


@settings(max_examples=300, deadline=None)
@given(case=st.sampled_from(TOOL_OUTPUTS), cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_tool_parser_chunking_invariant(case: tuple[str, str], cuts: list[int]) -> None:
    tag, text = case
    assert run_tools(tag, _split(text, cuts)) == run_tools(tag, [text])


@settings(max_examples=300, deadline=None)
@given(case=st.sampled_from(THINK_OUTPUTS), cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_thinking_parser_chunking_invariant(case: tuple[str, bool], cuts: list[int]) -> None:
    text, pre = case
    assert run_thinking(_split(text, cuts), pre) == run_thinking([text], pre)


_alphabet = st.sampled_from(["<think>", "</think>", "<tool_call>", "</tool_call>", "{", "}", "[", "]", '"', ":",
                             ",", " ", "\n", "get_weather", "get", '"name"', '"arguments"', "{}", "x", "é", "\\"])


@settings(max_examples=400, deadline=None)
@given(parts=st.lists(_alphabet, max_size=30), cuts=st.lists(st.integers(min_value=0, max_value=300), max_size=10),
       tag=st.sampled_from(["<tool_call>", "{", "[TOOL_CALLS]"]))
def test_random_text_chunking_invariant(parts: list[str], cuts: list[int], tag: str) -> None:
    text = "".join(parts)
    assert run_tools(tag, _split(text, cuts)) == run_tools(tag, [text])
    assert run_thinking(_split(text, cuts)) == run_thinking([text])
    assert run_thinking(_split(text, cuts), True) == run_thinking([text], True)


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(_alphabet, max_size=30))
def test_nothing_lost_without_calls(parts: list[str]) -> None:
    text = "".join(parts)
    content, calls = run_tools("<tool_call>", [text])
    if not calls:
        assert content == text
    th, co = run_thinking([text])
    if not text.lstrip().startswith("<think>"):
        assert (th, co) == ("", text)
