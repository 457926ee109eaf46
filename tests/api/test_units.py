"""Pieces of the API that need no server: the status table, Host/CORS rules and the NDJSON writer's
error handling (driven through its ASGI interface)."""
from __future__ import annotations

import asyncio
import json

import pytest

from pyollama import errors as E
from pyollama.api.errors import status_of
from pyollama.api.ndjson import Chunks
from pyollama.api.security import allowed_host, origin_allowed
from pyollama.config import Config


def test_status_table_follows_classes_not_messages():
    assert status_of(E.ModelNotFound("x")) == 404
    assert status_of(E.QueueFull("x")) == 503
    assert status_of(E.RequestCancelled("x")) == 499
    assert status_of(E.InvalidRequest("model not found")) == 400      # the text does not matter
    assert status_of(E.RequestTooLarge("x")) == 413
    assert status_of(E.ModelLoadError("x")) == 500                     # API override of the class default
    assert status_of(E.FeatureUnavailable("x")) == 501
    assert status_of(KeyError("x")) == 500 and status_of(NotImplementedError()) == 501


@pytest.mark.parametrize("host, ok", [
    ("localhost:11434", True), ("127.0.0.1", True), ("[::1]:11434", True), ("10.1.2.3:80", True),
    ("192.168.0.7", True), ("0.0.0.0", True), ("", True), ("box.local", True), ("a.b.internal:1", True),
    ("app.localhost", True), ("evil.example", False), ("8.8.8.8", False), ("localhost.evil.com", False),
])
def test_allowed_hosts(host, ok):
    assert allowed_host(host) is ok


def test_origins_with_wildcards():
    pats = Config(origins=("chrome-extension://*", "https://x.example")).allowed_origins
    for o in ("http://localhost", "http://localhost:3000", "https://127.0.0.1:8443", "app://anything",
              "vscode-webview://abc", "chrome-extension://id", "https://x.example"):
        assert origin_allowed(o, pats), o
    for o in ("https://evil.example", "http://localhost.evil.com", "moz-extension://id", "https://x.example.org"):
        assert not origin_allowed(o, pats), o
    assert origin_allowed("https://anything", ("*",))


def _drive(app: Chunks) -> tuple[int, str, bytes]:
    sent: list[dict] = []
    done = asyncio.Event()

    async def receive():
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(msg):
        sent.append(msg)

    async def main():
        await app({"type": "http"}, receive, send)
        done.set()
    asyncio.run(main())
    start = sent[0]
    ctype = dict(start["headers"]).get(b"content-type", b"").decode()
    return start["status"], ctype, b"".join(m.get("body", b"") for m in sent[1:])


async def _items(n: int, fail_after: int | None = None, exc: Exception | None = None):
    for i in range(n):
        if fail_after is not None and i == fail_after:
            raise exc
        yield {"i": i, "done": i == n - 1}


def test_stream_is_ndjson_one_object_per_line():
    status, ctype, body = _drive(Chunks(_items(3), stream=True))
    assert status == 200 and ctype == "application/x-ndjson"
    lines = body.decode().splitlines()
    assert [json.loads(x)["i"] for x in lines] == [0, 1, 2] and body.endswith(b"\n")


def test_error_before_first_chunk_gets_its_status():
    status, ctype, body = _drive(Chunks(_items(3, 0, E.ModelNotFound("model 'x' not found")), stream=True))
    assert status == 404 and ctype.startswith("application/json")
    assert json.loads(body) == {"error": "model 'x' not found"}


def test_error_after_streaming_began_is_one_more_line():
    status, _, body = _drive(Chunks(_items(3, 2, E.RunnerDied("runner exited")), stream=True))
    lines = [json.loads(x) for x in body.decode().splitlines()]
    assert status == 200 and lines[-1] == {"error": "runner exited"} and len(lines) == 3


def test_no_stream_aggregates_or_reports_the_error():
    status, ctype, body = _drive(Chunks(_items(3), stream=False, aggregate=lambda xs: {"n": len(xs)}))
    assert status == 200 and ctype.startswith("application/json") and json.loads(body) == {"n": 3}
    status, _, body = _drive(Chunks(_items(3, 2, E.QueueFull("server busy")), stream=False))
    assert status == 503 and json.loads(body) == {"error": "server busy"}


def test_on_close_runs_even_if_the_producer_never_started():
    closed = []

    async def main():
        app = Chunks(_items(3), stream=True, on_close=lambda: closed.append(1))

        async def receive():
            return {"type": "http.disconnect"}       # the client is already gone

        async def send(msg):
            await asyncio.sleep(0)
        await app({"type": "http"}, receive, send)
    asyncio.run(main())
    assert closed == [1]


def test_output_parser_splits_thinking_then_tool_calls():
    from pyollama.api.inference import OutputParser
    from pyollama.templates import ThinkingParser, ToolCallParser

    template = ("{{ range .Messages }}{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ .Content }}"
                "{{ if .ToolCalls }}<tool_call>{{ range .ToolCalls }}{{ json .Function }}{{ end }}</tool_call>"
                "{{ end }}{{ end }}{{ .Tools }}")
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    p = OutputParser(ThinkingParser.for_prompt(template, "prompt"), ToolCallParser.for_template(template, tools))
    out = [p.feed(x) for x in ["<think>It is", " cold.</think>", "Let me check.<tool", "_call>{\"name\": ",
                               "\"get_weather\", \"arguments\": {\"city\": \"Paris\"}}</tool_call>"]]
    out.append(p.finish())
    assert "".join(d.thinking for d in out) == "It is cold."
    assert "".join(d.content for d in out) == "Let me check."
    calls = [c for d in out for c in d.tool_calls]
    assert len(calls) == 1 and calls[0]["function"] == {"index": 0, "name": "get_weather",
                                                         "arguments": {"city": "Paris"}}
    assert calls[0]["id"].startswith("call_")
