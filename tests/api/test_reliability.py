"""Hostile and careless requests against a real server (issue 11's reproductions): each answers with a
4xx naming the problem (or succeeds where the request is legitimate), and a normal generate right after
it still works — on the same keep-alive connection.

One test per reproduction: a huge prompt/system/template/chat/body, deep JSON, lone surrogates, absurd
options, an oversized body with and without Content-Length, and a TEMPLATE whose printf width or range
would render gigabytes. The 500-keeps-the-connection guarantee is tested on the real app stack with a
route that fails the way a server bug does.
"""
from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.helpers import C, T, error_of

pytestmark = pytest.mark.model

MiB = 1024 * 1024


def _works(server: Any) -> None:
    """A normal, short generate on the shared connection."""
    r = server.post("/api/generate", json={"model": T, "prompt": "hello", "stream": False,
                                           "options": {"num_predict": 3, "temperature": 0}})
    assert r.status_code == 200, r.text
    assert r.json()["done"] is True


def _fails(r: Any, status: int, *words: str) -> str:
    assert r.status_code == status, (r.status_code, r.text[:300])
    msg = error_of(r)
    for w in words:
        assert w in msg, msg
    return msg


# --- 1: large payloads ------------------------------------------------------------------------------
def test_huge_prompt_is_a_400_and_the_model_keeps_working(server) -> None:
    r = server.post("/api/generate", json={"model": T, "prompt": "word " * (4 * MiB // 5), "stream": False})
    _fails(r, 400, "exceeds the context length")
    _works(server)
    assert [m["name"] for m in server.ps()] == [T + ":latest"]


@pytest.mark.parametrize("field", ["system", "template"])
def test_huge_system_or_template(server, field: str) -> None:
    big = "x" * (4 * MiB)
    model = C if field == "system" else T         # tiny's template has no .System
    r = server.post("/api/generate", json={"model": model, "prompt": "hi", field: big, "stream": False})
    _fails(r, 400, "exceeds the context length")
    _works(server)


def test_huge_stop_list_is_accepted_and_harmless(server) -> None:
    r = server.post("/api/generate", json={"model": T, "prompt": "hi", "stream": False,
                                           "options": {"num_predict": 3, "stop": ["zz" * 1000] * 2000}})
    assert r.status_code == 200, r.text[:300]
    _works(server)


def test_long_chat_is_truncated_not_wedged(server) -> None:
    """10,000 messages: Ollama's truncation keeps the newest that fit; the server stays responsive."""
    msgs = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i} " + "la " * 40}
            for i in range(10_000)]
    msgs.append({"role": "user", "content": "last"})
    done: dict[str, Any] = {}

    def chat() -> None:
        done["r"] = server.http.post("/api/chat", json={"model": C, "messages": msgs, "stream": False,
                                                        "options": {"num_predict": 2, "num_ctx": 256}},
                                     timeout=300)
    t = threading.Thread(target=chat)
    t.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    assert server.get("/api/version").status_code == 200     # the event loop is not busy rendering
    assert time.monotonic() - t0 < 5
    t.join(300)
    r = done["r"]
    assert r.status_code == 200, r.text[:300]
    assert r.json()["prompt_eval_count"] < 256
    _works(server)


def test_oversized_body_is_413_with_and_without_length(server) -> None:
    body = b'{"model": "tiny", "prompt": "' + b"a" * (33 * MiB) + b'"}'
    r = server.post("/api/generate", content=body)
    _fails(r, 413, "request body too large", "PYOLLAMA_MAX_BODY")

    def chunks() -> Iterator[bytes]:                       # no Content-Length: counted while reading
        for i in range(0, len(body), MiB):
            yield body[i:i + MiB]
    r = server.post("/api/generate", content=chunks())
    _fails(r, 413, "request body too large")
    _works(server)


def test_printf_width_in_a_template_is_capped_like_go(server) -> None:
    r = server.post("/api/generate", json={"model": T, "prompt": "hi", "stream": False, "raw": False,
                                           "template": '{{ printf "%*d" 100000000 1 }}{{ .Prompt }}',
                                           "options": {"num_predict": 2}})
    assert r.status_code == 200, r.text[:300]
    r = server.post("/api/generate", json={"model": T, "prompt": "hi", "_debug_render_only": True,
                                           "template": '{{ printf "%*d|" 100000000 1 }}{{ .Prompt }}'})
    assert r.json()["_debug_info"]["rendered_template"] == "%!(BADWIDTH)1|hi"
    _works(server)


def test_runaway_template_stops_early(server) -> None:
    t0 = time.monotonic()
    r = server.post("/api/generate", json={"model": T, "prompt": "hi", "stream": False,
                                           "template": '{{ range 100000 }}{{ printf "%1000000d" 1 }}{{ end }}'})
    _fails(r, 400, "rendering stopped", "characters")
    assert time.monotonic() - t0 < 60
    _works(server)


def test_deep_format_schema(server) -> None:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(300):
        schema = {"type": "object", "properties": {"a": schema}}
    r = server.post("/api/generate", json={"model": T, "prompt": "hi", "stream": False, "format": schema})
    _fails(r, 400, "nested deeper than")
    _works(server)


# --- 2, 3: deep JSON and invalid Unicode on every surface -------------------------------------------
SURFACES = [("/api/generate", "error"), ("/api/chat", "error"), ("/api/show", "error"),
            ("/v1/chat/completions", "openai"), ("/v1/messages", "anthropic")]


@pytest.mark.parametrize("path,shape", SURFACES)
def test_deep_json(server, path: str, shape: str) -> None:
    body = '{"model": "tiny", "x": ' + "[" * 5000 + "]" * 5000 + "}"
    r = server.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text[:300]
    err = r.json()
    if shape == "openai":
        assert err["error"]["type"] == "invalid_request_error" and "nested" in err["error"]["message"]
    elif shape == "anthropic":
        assert err["type"] == "error" and "nested" in err["error"]["message"]
    else:
        assert "nested deeper than" in err["error"]
    _works(server)


def test_lone_surrogates_become_replacement_characters(server) -> None:
    """Go's decoder turns a lone surrogate escape into U+FFFD, and so do we: the request succeeds."""
    body = '{"model": "tiny", "prompt": "a\\ud800b", "system": "\\udfff", "stream": false, "options": {"num_predict": 2}}'
    r = server.post("/api/generate", content=body)
    assert r.status_code == 200, r.text[:300]
    body = '{"model": "tiny", "prompt": "a\\ud800b", "raw": true, "_debug_render_only": true}'
    assert server.post("/api/generate", content=body).json()["_debug_info"]["rendered_template"] == "a\ufffdb"
    r = server.post("/api/chat", content='{"model": "tiny", "messages": [{"role": "user", "content": '
                                         '"\\ud83d"}], "stream": false, "options": {"num_predict": 2}}')
    assert r.status_code == 200, r.text[:300]
    for path, method in (("/api/show", "POST"), ("/api/delete", "DELETE")):
        r = server.request(method, path, content='{"model": "no\\ud800such"}')
        assert r.status_code in (400, 404), r.text[:300]
    r = server.post("/api/copy", content='{"source": "tiny", "destination": "x\\udc00y"}')
    assert r.status_code == 400, r.text[:300]
    _works(server)


def test_non_json_numbers_are_rejected(server) -> None:
    r = server.post("/api/generate", content='{"model": "tiny", "prompt": "hi", "options": {"temperature": NaN}}')
    _fails(r, 400, "invalid JSON")
    _works(server)


# --- 5: absurd options ------------------------------------------------------------------------------
@pytest.mark.parametrize("options,words", [
    ({"num_thread": 2 ** 40}, ["num_thread", "between"]),
    ({"num_thread": 10_000}, ["num_thread", "per CPU"]),
    ({"num_batch": 2 ** 40}, ["num_batch", "between"]),
    ({"num_parallel": 100_000}, ["num_parallel", "256"]),
    ({"num_ctx": -1}, ["num_ctx", "positive"]),
    ({"num_ctx": 10 ** 12}, ["num_ctx", "between"]),
    ({"num_ctx": 2 ** 63}, ["num_ctx", "between"]),
    ({"top_k": 2 ** 40}, ["top_k", "between"]),
    ({"num_predict": -2 ** 40}, ["num_predict", "between"]),
    ({"seed": 2 ** 40}, ["seed"]),
    ({"num_ctx": 8192, "num_parallel": 256}, ["num_ctx 8192", "num_parallel 256"]),
])
def test_absurd_options_are_400_naming_the_option(server, options: dict, words: list[str]) -> None:
    r = server.post("/api/generate", json={"model": C, "prompt": "hi", "stream": False, "options": options})
    _fails(r, 400, *words)
    _works(server)


@pytest.mark.parametrize("num_ctx", [0, 1, 2 ** 31 - 1])
def test_num_ctx_edges_are_clamped_like_ollama(server, num_ctx: int) -> None:
    """0 is the default, tiny values become Ollama's minimum (4), huge ones the trained context."""
    r = server.post("/api/generate", json={"model": C, "prompt": "hi", "stream": False, "raw": True,
                                           "options": {"num_ctx": num_ctx, "num_predict": 1}})
    assert r.status_code in (200, 400), r.text[:300]
    if r.status_code == 400:
        assert num_ctx == 1 and "exceeds the context length" in error_of(r)
    ctx = [m.get("context_length") for m in server.ps() if m["name"] == C]
    assert ctx and 4 <= ctx[0] <= 8192
    _works(server)


# --- 4: a 500 keeps the connection ------------------------------------------------------------------
@pytest.fixture
def app_server(tmp_path) -> Iterator[int]:
    """The real app stack (Guard → Starlette → CatchAll → routes) under uvicorn, plus a route that fails
    the way a server bug does (a plain exception) and one that fails after its response began."""
    import socket

    import uvicorn
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    from pyollama.api.app import create_app
    from pyollama.config import Config
    from pyollama.scheduler.memory import Memory

    async def boom(request):
        raise RuntimeError("a bug")

    async def boom_later(request):
        async def gen():
            yield b'{"a": 1}\n'
            raise RuntimeError("a bug mid-stream")
        return StreamingResponse(gen(), media_type="application/x-ndjson")

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = Config.from_env({"PYOLLAMA_MODELS": str(tmp_path / "models"), "PYOLLAMA_HOST": f"127.0.0.1:{port}"})
    outer = create_app(cfg, factory=lambda spec: None, memory=lambda: Memory(free=1 << 33, total=1 << 34))
    app = outer
    while not hasattr(app, "router"):          # through the middleware (metrics, the door) to Starlette
        app = app.app
    app.router.routes[:0] = [Route("/boom", boom, methods=["POST"]),
                                   Route("/v1/boom", boom, methods=["POST"]),
                                   Route("/boom-later", boom_later, methods=["GET"])]
    srv = uvicorn.Server(uvicorn.Config(outer, host="127.0.0.1", port=port, log_level="critical", lifespan="on"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    deadline = time.monotonic() + 30
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield port
    srv.should_exit = True
    th.join(10)


def test_a_500_keeps_the_keep_alive_connection(app_server: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", app_server, timeout=10)
    conn.request("POST", "/boom", body=b"{}")
    r = conn.getresponse()
    assert r.status == 500 and json.loads(r.read()) == {"error": "a bug"}
    assert (r.getheader("connection") or "").lower() != "close"
    sock = conn.sock
    conn.request("POST", "/v1/boom", body=b"{}")            # same socket: no reset, no reconnect
    r = conn.getresponse()
    assert conn.sock is sock
    assert r.status == 500 and json.loads(r.read())["error"]["type"] == "api_error"
    conn.request("GET", "/api/version")
    r = conn.getresponse()
    assert r.status == 200 and conn.sock is sock
    r.read()
    conn.request("GET", "/boom-later")                      # a stream that fails ends cleanly
    r = conn.getresponse()
    assert r.status == 200 and r.read() == b'{"a": 1}\n'
    conn.close()
