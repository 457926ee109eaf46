"""Pieces of the OpenAI / Anthropic layers that need no server: ``tool_choice`` parsing, the forced-call
grammar (checked with llama.cpp's own grammar engine over a real vocabulary), the content-block regrouping,
the error shapes and the field translations."""
from __future__ import annotations

import numpy as np
import pytest

from pyollama import _native
from pyollama.api import compat as X
from pyollama.api import toolchoice
from pyollama.api.errors import ANTHROPIC, NATIVE, OPENAI, shaped_body, surface_of
from pyollama.api.inference import Delta
from pyollama.errors import InvalidRequest
from pyollama.templates import ToolCallParser

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}, "unit": {"$ref": "#/$defs/unit"}},
    "required": ["city"], "$defs": {"unit": {"enum": ["c", "f"]}}}}}
ADD = {"type": "function", "function": {"name": "add", "parameters": {
    "type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}}}
PING = {"type": "function", "function": {"name": "ping"}}


@pytest.mark.parametrize("value, anthropic, want", [
    (None, False, ("auto", "")), ("required", False, ("required", "")), ("none", False, ("none", "")),
    ({"type": "function", "function": {"name": "add"}}, False, ("function", "add")),
    ({"type": "function", "name": "add"}, False, ("function", "add")),            # the Responses API's shape
    ({"type": "any"}, True, ("required", "")), ({"type": "tool", "name": "add"}, True, ("function", "add")),
    ({"type": "none"}, True, ("none", "")), ({"type": "auto", "disable_parallel_tool_use": True}, True, ("auto", "")),
])
def test_tool_choice_shapes(value, anthropic, want):
    assert toolchoice.parse(value, anthropic=anthropic) == want


@pytest.mark.parametrize("value, anthropic", [("sometimes", False), ({"type": "function"}, False), (3, False),
                                              ("any", True), ({"type": "tool"}, True)])
def test_bad_tool_choice(value, anthropic):
    with pytest.raises(InvalidRequest):
        toolchoice.parse(value, anthropic=anthropic)


def test_rule_renaming_leaves_literals_alone():
    g = 'root ::= "root \\" space" [root] space{0,2} ( item | "x" )*\nspace ::= " "?\nitem ::= [\\]a] space\n'
    out = toolchoice._prefixed(g, "p-")
    assert out.splitlines() == ['p-root ::= "root \\" space" [root] p-space{0,2} ( p-item | "x" )*',
                                'p-space ::= " "?', 'p-item ::= [\\]a] p-space']


@pytest.fixture(scope="module")
def vocab(vocab_dir):
    # A byte-level BPE vocabulary (Qwen2's, whose templates use <tool_call>): no SentencePiece space prefix,
    # so tokenizing a call gives exactly the tokens a model would emit for it.
    m = _native.Model(vocab_dir / "ggml-vocab-qwen2.gguf", vocab_only=True)
    yield m.vocab
    m.close()


def _accepts(vocab, gbnf: str, text: str) -> bool:
    """Whether the grammar lets ``text`` through token by token and is complete at its end (only an
    end-of-generation token may follow)."""
    s = _native.Sampler.grammar(vocab, gbnf)
    for tok in vocab.tokenize(text, add_special=False):
        cand = _native.Candidates.from_logits(np.zeros(1, np.float32), np.array([tok], np.int32))
        s.apply(cand)
        if not np.isfinite(cand.logits[0]):
            return False
        s.accept(tok)
    eos = vocab.eos
    cand = _native.Candidates.from_logits(np.zeros(1, np.float32), np.array([eos], np.int32))
    s.apply(cand)
    return bool(np.isfinite(cand.logits[0]))


@pytest.mark.parametrize("tag, prefix", [("<tool_call>", "<tool_call>\n"), ("{", ""),
                                         ("[TOOL_CALLS]", "[TOOL_CALLS] ")])
def test_forced_call_grammar(vocab, tag, prefix):
    tools = [WEATHER, ADD, PING]
    g = toolchoice.grammar(tag, tools)
    good = [prefix + '{"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}',
            prefix + '{"name": "add", "arguments": {"a": 2, "b": 3}}',
            prefix + '{"name": "ping", "arguments": {}}']
    for text in good:
        assert _accepts(vocab, g, text), text
        calls = ToolCallParser(tools, tag)
        r = calls.feed(text)
        assert len(r.calls + calls.finish().calls) == 1 and not r.content.strip()   # the parser takes it whole
    for text in [prefix + '{"name": "nope", "arguments": {}}',                    # undeclared tool
                 prefix + '{"name": "add", "arguments": {"a": "2", "b": 3}}',     # wrong argument type
                 prefix + '{"name": "get_weather", "arguments": {"unit": "c"}}',  # missing required argument
                 'Sure! ' + prefix + '{"name": "ping", "arguments": {}}',          # prose before the call
                 prefix + '{"name": "ping", "arguments": {}} and more',           # anything after it
                 prefix + '{"name": "ping", "arguments": {}']:                    # an unfinished call
        assert not _accepts(vocab, g, text), text
    named = toolchoice.grammar(tag, tools, "add")
    assert _accepts(vocab, named, good[1]) and not _accepts(vocab, named, good[0])
    with pytest.raises(InvalidRequest, match="nope"):
        toolchoice.grammar(tag, tools, "nope")


def test_blocks_keep_model_order():
    b = X.Blocks()
    call = {"id": "call_1", "function": {"index": 0, "name": "f", "arguments": {}}}
    steps = b.feed(Delta(thinking="hm")) + b.feed(Delta(thinking=" ok", content="Hi")) + b.feed(
        Delta(tool_calls=[call])) + b.finish()
    assert [(a, blk.kind) for a, blk, _ in steps] == [
        ("start", "thinking"), ("delta", "thinking"), ("delta", "thinking"), ("stop", "thinking"),
        ("start", "text"), ("delta", "text"), ("stop", "text"), ("start", "tool"), ("stop", "tool")]
    assert [(blk.kind, blk.text) for blk in b.blocks] == [("thinking", "hm ok"), ("text", "Hi"), ("tool", "")]
    empty = X.Blocks()
    assert [(a, blk.kind) for a, blk, _ in empty.finish()] == [("start", "text"), ("stop", "text")]


def test_error_shapes_follow_the_path():
    assert surface_of("/api/chat") == NATIVE and surface_of("/v1/chat/completions") == OPENAI
    assert surface_of("/v1/messages") == ANTHROPIC and surface_of("/v1/messages/count_tokens") == ANTHROPIC
    assert surface_of("/v1/messagesx") == OPENAI
    assert shaped_body(OPENAI, 404, "m") == {"error": {"message": "m", "type": "not_found_error", "param": None,
                                                       "code": None}}
    assert shaped_body(OPENAI, 503, "m")["error"]["type"] == "api_error"
    a = shaped_body(ANTHROPIC, 503, "busy")
    assert a["type"] == "error" and a["error"] == {"type": "overloaded_error", "message": "busy"}
    assert a["request_id"].startswith("req_")
    assert shaped_body(NATIVE, 400, "x") == {"error": "x"}


def test_effort_and_images():
    assert [X.effort_think(e) for e in ("none", "minimal", "low", "medium", "high", "max", "xhigh", "ultra")] == [
        False, "low", "low", "medium", "high", "max", "max", "max"]
    assert X.effort_think(None) is None
    with pytest.raises(InvalidRequest):
        X.effort_think("extreme")
    assert X.image_data("data:image/png;base64,aGk=", "x") == b"hi" == X.image_data("data:;base64,aGk=", "x")
    for bad, msg in (("https://e.com/a.png", "image URLs"), ("data:text/plain;base64,aGk=", "invalid image input"),
                     ("data:image/png;base64,***", "not valid base64")):
        with pytest.raises(InvalidRequest, match=msg):
            X.image_data(bad, "x")


def test_tools_of_each_surface():
    from pyollama.api import anthropic, openai, responses

    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    want = X.function_tool("w", "the weather", schema, "tools[0]")
    assert openai.chat_tools([{"type": "function", "function": {"name": "w", "description": "the weather",
                                                                 "parameters": schema}}]) == [want]
    assert responses.tools_of([{"type": "function", "name": "w", "description": "the weather",
                                "parameters": schema}]) == [want]
    assert anthropic.tools_of([{"name": "w", "description": "the weather", "input_schema": schema}]) == [want]
    assert openai.chat_tools(None) == responses.tools_of(None) == anthropic.tools_of(None) == []
    for parse, bad, msg in [
        (openai.chat_tools, {"x": 1}, '"tools" must be an array'),
        (openai.chat_tools, [{"type": "web_search"}], r"tools\[0\] must be"),
        (responses.tools_of, "t", '"tools" must be an array'),
        (responses.tools_of, [{"type": "function", "name": "p"}, {"type": "file_search"}], r"tools\[1\]: only function"),
        (anthropic.tools_of, {}, "tools: must be an array"),
        (anthropic.tools_of, [{"type": "web_search_20250305", "name": "s"}], r"tools\.0: server tools"),
    ]:
        with pytest.raises(InvalidRequest, match=msg):
            parse(bad)
