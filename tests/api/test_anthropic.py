"""The Anthropic-compatible endpoints (``/v1/messages``, ``/v1/messages/count_tokens``) through the real
``anthropic`` SDK (and raw HTTP where bytes matter), against a live ``pyollama serve``. C = smollm2:135m;
``smol-tools`` / ``smol-think`` are SmolLM2 with tools / thinking templates (``tests/api/compat_models.py``).

docs/conformance.md item → tests:
| 64 | test_64_max_tokens_required, test_64_message_non_stream, test_64_stream_event_order (bytes),
|    | test_stream_sdk_equals_non_stream |
Beyond the checklist: tool_choice any / tool with a tool_result round trip (streamed and not), thinking
blocks, system blocks, stop_sequences → stop_reason stop_sequence, count_tokens, structured output
(output_config.format), error shapes, images refused by a model without vision, and the API key as the SDK sends it
(``x-api-key``).
"""
from __future__ import annotations

import base64
import json
import re
from typing import Any

import httpx
import pytest

from tests.api.compat_models import ADD, THINK_MODEL, TOOLS_MODEL, WEATHER, create_models
from tests.api.helpers import C, T
from tests.api.test_openai import sse_events

anthropic = pytest.importorskip("anthropic")
jsonschema = pytest.importorskip("jsonschema")

pytestmark = [pytest.mark.model, pytest.mark.slow]

HI = [{"role": "user", "content": "Say hi"}]
GREEDY = {"temperature": 0}          # the current SDK has no sampling arguments; the server still reads them
TOOLS = [{"name": "get_weather", "description": "Get the current weather for a city", "input_schema": WEATHER},
         {"name": "add", "description": "Add two integers", "input_schema": ADD}]
ORDER = re.compile(r"message_start (ping )*((content_block_start (content_block_delta )*content_block_stop )+)"
                   r"message_delta message_stop")


@pytest.fixture(scope="module")
def client(server) -> Any:
    create_models(server)
    c = anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0, timeout=300)
    yield c
    c.close()


def test_64_max_tokens_required(server):
    r = server.post("/v1/messages", json={"model": C, "messages": HI})
    assert r.status_code == 400
    body = r.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in body["error"]["message"] and body["request_id"].startswith("req_")


def test_64_message_non_stream(client):
    m = client.messages.create(model=C, max_tokens=64, messages=HI, extra_body=GREEDY)
    assert m.type == "message" and m.role == "assistant" and m.id.startswith("msg_") and m.model == C
    assert m.content[0].type == "text" and m.content[0].text
    assert m.stop_reason == "end_turn" and m.stop_sequence is None
    assert isinstance(m.usage.input_tokens, int) and m.usage.input_tokens > 0
    assert isinstance(m.usage.output_tokens, int) and m.usage.output_tokens > 0
    short = client.messages.create(model=C, max_tokens=3, messages=HI, extra_body=GREEDY)
    assert short.stop_reason == "max_tokens" and short.usage.output_tokens == 3


def test_64_stream_event_order(server):
    r = server.post("/v1/messages", json={"model": C, "max_tokens": 5, "messages": HI, "stream": True,
                                          "temperature": 0})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.content)
    datas = [json.loads(d) for _, d in events]
    names = [n for n, _ in events]
    assert names == [d["type"] for d in datas]                       # every event names its data's type
    assert ORDER.fullmatch(" ".join(names)), names
    start = datas[0]["message"]
    assert start["content"] == [] and start["stop_reason"] is None and start["usage"]["input_tokens"] > 0
    deltas = [d for d in datas if d["type"] == "content_block_delta"]
    assert all(d["index"] == 0 and d["delta"]["type"] == "text_delta" for d in deltas)
    md = datas[-2]
    assert md["delta"]["stop_reason"] == "max_tokens" and md["usage"]["output_tokens"] == 5


def test_stream_sdk_equals_non_stream(client):
    kw = {"model": C, "max_tokens": 24, "messages": HI, "extra_body": GREEDY}
    whole = client.messages.create(**kw)
    with client.messages.stream(**kw) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(pieces) == whole.content[0].text == final.content[0].text
    assert final.stop_reason == whole.stop_reason and final.usage.output_tokens == whole.usage.output_tokens
    kinds = [e.type for e in client.messages.create(**kw, stream=True)]
    assert ORDER.fullmatch(" ".join(kinds)), kinds


def _check_tool_use(block: Any, names: tuple[str, ...]) -> None:
    assert block.type == "tool_use" and block.name in names and block.id
    jsonschema.validate(block.input, WEATHER if block.name == "get_weather" else ADD)


def test_tool_choice_any_and_named_round_trip(client):
    q = [{"role": "user", "content": "What is the weather in Paris?"}]
    m = client.messages.create(model=TOOLS_MODEL, max_tokens=80, messages=q, tools=TOOLS,
                               tool_choice={"type": "any"}, extra_body=GREEDY)
    assert m.stop_reason == "tool_use"
    uses = [b for b in m.content if b.type == "tool_use"]
    assert len(uses) == 1
    _check_tool_use(uses[0], ("get_weather", "add"))

    q2 = [{"role": "user", "content": "What is 2 plus 3?"}]
    m2 = client.messages.create(model=TOOLS_MODEL, max_tokens=80, messages=q2, tools=TOOLS,
                                tool_choice={"type": "tool", "name": "add"}, extra_body=GREEDY)
    use = next(b for b in m2.content if b.type == "tool_use")
    assert use.name == "add"
    _check_tool_use(use, ("add",))
    follow = q2 + [{"role": "assistant", "content": [b.model_dump() for b in m2.content]},
                   {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "5"}]}]
    m3 = client.messages.create(model=TOOLS_MODEL, max_tokens=30, messages=follow, tools=TOOLS,
                                tool_choice={"type": "none"}, extra_body=GREEDY)
    assert m3.stop_reason in ("end_turn", "max_tokens") and m3.content[0].type == "text" and m3.content[0].text
    # The tool_result was rendered as the template's tool response (named after its tool_use).
    n = client.messages.count_tokens(model=TOOLS_MODEL, messages=follow)
    bare = client.messages.count_tokens(model=TOOLS_MODEL, messages=follow[:1])
    assert n.input_tokens > bare.input_tokens

    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(model=TOOLS_MODEL, max_tokens=8, messages=q2, tools=TOOLS,
                               tool_choice={"type": "tool", "name": "nope"})
    assert e.value.body["error"]["type"] == "invalid_request_error"


def test_tool_use_stream(client):
    q = [{"role": "user", "content": "What is 2 plus 3?"}]
    with client.messages.stream(model=TOOLS_MODEL, max_tokens=80, messages=q, tools=TOOLS,
                                tool_choice={"type": "tool", "name": "add"}, extra_body=GREEDY) as stream:
        kinds = [e.type for e in stream if e.type in ("message_start", "content_block_start", "content_block_delta",
                                                      "content_block_stop", "message_delta", "message_stop")]
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    use = next(b for b in final.content if b.type == "tool_use")
    _check_tool_use(use, ("add",))                    # the SDK assembled input_json_delta into the input
    assert ORDER.fullmatch(" ".join(kinds)), kinds


def test_thinking_blocks(client):
    m = client.messages.create(model=THINK_MODEL, max_tokens=10, messages=HI, extra_body=GREEDY,
                               thinking={"type": "enabled", "budget_tokens": 1024})
    assert m.content[0].type == "thinking" and m.content[0].thinking
    assert all("<think>" not in getattr(b, "text", "") for b in m.content)
    off = client.messages.create(model=THINK_MODEL, max_tokens=10, messages=HI, extra_body=GREEDY,
                                 thinking={"type": "disabled"})
    assert [b.type for b in off.content] == ["text"]
    with client.messages.stream(model=THINK_MODEL, max_tokens=6, messages=HI, extra_body=GREEDY,
                                thinking={"type": "enabled", "budget_tokens": 1024}) as stream:
        final = stream.get_final_message()
    assert final.content[0].type == "thinking" and final.content[0].thinking == m.content[0].thinking[
        :len(final.content[0].thinking)]
    # A model that cannot think: the request is served without thinking, as Ollama does.
    plain = client.messages.create(model=C, max_tokens=4, messages=HI, thinking={"type": "enabled",
                                                                                "budget_tokens": 1024})
    assert plain.content[0].type == "text"


def test_system_blocks_and_stop_sequences(client):
    kw = {"model": C, "max_tokens": 40, "messages": HI, "extra_body": GREEDY}
    plain = client.messages.create(**kw)
    text = plain.content[0].text
    words = text.split()
    assert len(words) >= 3
    stop = words[2]
    m = client.messages.create(**kw, stop_sequences=[stop, "zzz-never"])
    assert m.stop_reason == "stop_sequence" and m.stop_sequence == stop
    assert m.content[0].text == text[:text.index(stop)]
    with client.messages.stream(**kw, stop_sequences=[stop]) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "stop_sequence" and final.stop_sequence == stop
    a = client.messages.count_tokens(model=C, system="You are terse.", messages=HI)
    b = client.messages.count_tokens(model=C, system=[{"type": "text", "text": "You are terse."}], messages=HI)
    assert a.input_tokens == b.input_tokens > 0
    sys_msg = client.messages.create(**{**kw, "max_tokens": 2}, system=[{"type": "text", "text": "You are terse."}])
    assert sys_msg.usage.input_tokens == a.input_tokens


def test_structured_output_and_effort(client):
    schema = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30},
                                               "sunny": {"type": "boolean"}},
              "required": ["city", "sunny"], "additionalProperties": False}
    m = client.messages.create(model=C, max_tokens=60, messages=[{"role": "user", "content": "Weather in Rome?"}],
                               output_config={"format": {"type": "json_schema", "schema": schema}},
                               extra_body=GREEDY)
    jsonschema.validate(json.loads(m.content[0].text), schema)
    think = client.messages.create(model=THINK_MODEL, max_tokens=6, messages=HI, extra_body=GREEDY,
                                   output_config={"effort": "xhigh"})
    assert think.content[0].type == "thinking"


def test_errors_in_anthropic_shape(client, server):
    with pytest.raises(anthropic.NotFoundError) as e:
        client.messages.create(model="no-such-model", max_tokens=4, messages=HI)
    assert e.value.body["type"] == "error" and e.value.body["error"]["type"] == "not_found_error"
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()
    img = [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
           {"type": "text", "text": "What is this?"}]
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(model=C, max_tokens=4, messages=[{"role": "user", "content": img}])
    assert "vision" in e.value.body["error"]["message"]
    r = server.post("/v1/messages", json={"model": C, "max_tokens": 0, "messages": HI})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = server.post("/v1/messages", content=b"{nope")
    assert r.status_code == 400 and r.json()["type"] == "error"


def test_api_key_as_the_sdk_sends_it(serve):
    s = serve(PYOLLAMA_API_KEY="sekret")
    good = anthropic.Anthropic(base_url=s.url, api_key="sekret", max_retries=0)
    bad = anthropic.Anthropic(base_url=s.url, api_key="wrong", max_retries=0)
    try:
        assert good.messages.count_tokens(model=T, messages=HI).input_tokens > 0
        with pytest.raises(anthropic.AuthenticationError) as e:
            bad.messages.count_tokens(model=T, messages=HI)
        assert e.value.body["error"]["type"] == "authentication_error"
        r = httpx.post(s.url + "/v1/messages", json={}, headers={"x-api-key": "wrong"})
        assert r.status_code == 401 and r.json()["type"] == "error"
    finally:
        good.close()
        bad.close()
