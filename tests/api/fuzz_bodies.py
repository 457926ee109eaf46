"""Seeded request bodies for the API fuzzer (``tests/api/test_fuzz.py``): one ``Case`` at a time, the
same sequence for the same seed, covering every route of ``pyollama.api.app.ROUTES``.

    gen = Generator(seed=7, dead_registry="127.0.0.1:9")
    case = gen.case()            # Case(family, method, path, headers, body, route, note)

Families: ``bytes`` (random bytes, JSON-ish soup, other encodings), ``truncated`` (a valid body cut at a
random point), ``mutated`` (a body built from the route's schema of known fields, then 1-5 of its
values — at any depth — replaced by wrong types, huge or odd numbers, huge strings, deep nesting, lone
surrogate escapes, invalid UTF-8, empty values or nulls, keys deleted or unknown ones added),
``options`` (an ``options``/``parameters`` dict with random keys and values), ``valid`` (the body as
built), ``method`` (wrong methods, unknown paths), ``oversize`` (bodies over the 32 MiB limit).

Cost and safety: bodies that can start a generation name ``fz-tiny`` (the tiny random llama, created by
the fixture with ``num_predict 2``, ``num_ctx 128``, ``num_thread 1``) nine times in ten, and keep whatever
``num_predict`` the fuzzer picked; embedding bodies mostly name ``fz-minilm``. Bodies for the real models
get a short length field and no valid runner-sizing options, so no body generates for minutes or reloads
a runner. Names that mutating routes (create, copy, delete, pull, push) write or fetch are forced to
``fz-…`` models (never the fixture's) or to a registry on a loopback port where nothing listens.
"""
from __future__ import annotations

import base64
import copy
import hashlib
import json
import random
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyollama.errors import InvalidModelName
from pyollama.store.names import ModelName
from pyollama.store.options import OPTIONS, REMOVED_OPTIONS, RUNNER_OPTIONS

REAL = ("tiny", "smollm2:135m", "gemma3", "minilm")
# Made by the fuzz fixture: (base, parameters). One thread, so a decode never waits at a thread barrier
# for a core that other work holds; a small context bounds the longest generation (10 × num_ctx).
FIXTURES = {"fz-tiny": ("tiny", {"num_predict": 2, "num_ctx": 128, "num_thread": 1}),
            "fz-minilm": ("minilm", {"num_thread": 1})}
FZ_TINY, FZ_MINILM = "fz-tiny", "fz-minilm"
SAFE_SOURCES = {*REAL, *FIXTURES}         # always present, never written by the fuzzer
FZ_NAMES = ("fz-a", "fz-b:v1", "fz-c:latest", "fz/d", "FZ-E")
LENGTH_KEYS = {"/api/generate": "options.num_predict", "/api/chat": "options.num_predict",
               "/v1/chat/completions": "max_tokens", "/v1/completions": "max_tokens",
               "/v1/responses": "max_output_tokens", "/v1/messages": "max_tokens"}
MiB = 1 << 20


class Raw:
    """A JSON fragment written into the body verbatim (deep nesting, 1e400, invalid UTF-8, NaN)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes):
        self.data = data

    def __repr__(self) -> str:
        return f"Raw({self.data[:60]!r}{'...' if len(self.data) > 60 else ''} {len(self.data)} bytes)"


@dataclass
class Case:
    family: str
    method: str
    path: str
    route: str                                # the route template (or "unknown")
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    obj: Any = None                           # the JSON value before encoding (for shrinking), else None
    ascii: bool = True
    note: str = ""


def encode(obj: Any, *, ascii: bool = True) -> bytes:
    """JSON bytes; ``Raw`` fragments are spliced in; with ``ascii=False`` lone surrogates go out as
    their raw (invalid) UTF-8 bytes instead of ``\\ud800`` escapes."""
    raws: list[bytes] = []

    def swap(v: Any) -> Any:
        if isinstance(v, Raw):
            raws.append(v.data)
            return f"@@RAW{len(raws) - 1}@@"
        if isinstance(v, dict):
            return {k: swap(x) for k, x in v.items()}
        if isinstance(v, list):
            return [swap(x) for x in v]
        return v
    text = json.dumps(swap(obj), ensure_ascii=ascii)
    out = text.encode("utf-8", "surrogatepass")
    for i, data in enumerate(raws):
        out = out.replace(f'"@@RAW{i}@@"'.encode(), data, 1)
    return out


# --- value pools --------------------------------------------------------------------------------
WRONG_TYPES: list[Any] = [None, True, False, 0, 1, -1, 0.5, "", "x", "true", "null", "1", [], {}, [1, "a"],
                          {"a": 1}, [None], [[]], {"": ""}, [{}], "NaN"]
NUMBERS: list[Any] = [2 ** 63, 2 ** 63 - 1, -2 ** 63, -2 ** 63 - 1, 2 ** 64, 10 ** 30, 1e308, -1e308, 5e-324,
                      2 ** 31, 2 ** 31 - 1, -2 ** 31, -2 ** 31 - 1, 2 ** 32, -1, 0, -0.0, 1.5, 0.1, -0.5, 1e-9,
                      Raw(b"1e400"), Raw(b"-1e400"), Raw(b"1e-400"), Raw(b"9" * 5000), Raw(b"-0"), Raw(b"1E+2"),
                      Raw(b"1.0"), Raw(b"12345678901234567890.5")]
NON_JSON: list[bytes] = [b"NaN", b"Infinity", b"-Infinity", b"undefined", b"'single'", b"0x10", b"+1", b".5",
                         b"01", b"1.", b"True", b"\"\x00\"", b"\"\t\"", b"\"\\x41\"", b"\"\\u12\""]
STRINGS: list[str] = ["../../etc/passwd", "sha256:" + "0" * 64, "%s%n%x", "{{ .Prompt }}", "{{ range .Messages }}",
                      "{{", "{% for x in y %}", "<|im_start|>", "<|im_end|>", "<think>", "</think>", "<tool_call>",
                      "[TOOL_CALLS]", "\x00", "\u202e\u200b", "\U0001f600" * 3, "  ", "null", "1e999", "-1",
                      "model:tag:tag", "a" * 300, "UPPER/Case:Tag", "http://127.0.0.1:9/x", "data:image/png;base64,",
                      "data:image/png;base64,AAAA", "iVBORw0KGgo=", "5m", "-1m", "1h30m", "0s", "99999999h", "1ms",
                      "json", "high", "auto", "none", "required", "function", "text", "user", "assistant", "tool"]
BAD_UTF8: list[bytes] = [b"\xff", b"\xfe\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\xf4\x90\x80\x80",
                         b"\x80", b"\xf8\x88\x80\x80\x80"]
SURROGATES = ["\ud800", "\udfff", "\udbff", "\udc00", "\ud83d", "\ude00\ud83d"]
CHARS = "abc xyz 0123 ,.;:!?'\"\\/{}[]<>|\n\t\u00e9\u4e2d\U0001f600\u200d"
CONTENT_TYPES = ["application/json", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                 "application/json; charset=latin-1", "application/json; charset=utf-16", "", ";;;", "*/*",
                 "application/x-ndjson", "text/event-stream"]
# Only tokens uvicorn's HTTP parser (llhttp) knows: any other method is refused by the parser itself with
# a plain-text 400 and a closed connection, before the application sees it (like a bad Content-Length).
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "PROPFIND", "TRACE"]
UNKNOWN_PATHS = ["/api/generat", "/api/", "/api", "/v1", "/v1/", "/v2/x", "/api/generate/extra", "//api//generate",
                 "/api/blobs/", "/api/blobs/a/b", "/%ff", "/api/%00", "/" + "a" * 5000, "/v1/chat", "/v1/messages/x",
                 "/api/chat?x=1", "/api/tags/", "/api/ps/x", "/v1/models/", "/../api/tags", "/api/generate%20"]


class Generator:
    """The seeded source of cases. ``dead_registry`` is ``host:port`` of a loopback port with nothing
    listening (where every pull, push and create-from-remote is sent); ``blob_digests`` are digests of
    blobs in the store (so ``files`` can name one)."""

    def __init__(self, seed: int, dead_registry: str, blob_digests: tuple[str, ...] = ()):
        self.r = random.Random(seed)
        self.dead = dead_registry
        self.blobs = blob_digests or ("sha256:" + "a" * 64,)
        self.uploaded: tuple[str, ...] = ()       # digests of the fuzzer's own blob uploads (the last 20)
        self.schemas: dict[str, Callable[[], dict[str, Any]]] = {
            "/api/generate": self._generate, "/api/chat": self._chat, "/api/embed": self._embed,
            "/api/embeddings": self._embeddings, "/api/tokenize": self._tokenize,
            "/api/detokenize": self._detokenize, "/api/show": self._show, "/api/create": self._create,
            "/api/copy": self._copy, "/api/delete": self._delete, "/api/pull": self._pull,
            "/api/push": self._pull, "/v1/chat/completions": self._oa_chat, "/v1/completions": self._oa_completion,
            "/v1/embeddings": self._oa_embeddings, "/v1/responses": self._responses,
            "/v1/messages": self._messages, "/v1/messages/count_tokens": self._count_tokens}
        # (route, method, weight): generation routes weigh most, as they have the most fields.
        self.routes: list[tuple[str, str, int]] = [
            ("/api/generate", "POST", 12), ("/api/chat", "POST", 12), ("/api/embed", "POST", 4),
            ("/api/embeddings", "POST", 2), ("/api/tokenize", "POST", 3), ("/api/detokenize", "POST", 3),
            ("/api/show", "POST", 4), ("/api/create", "POST", 5), ("/api/copy", "POST", 2),
            ("/api/delete", "DELETE", 2), ("/api/pull", "POST", 2), ("/api/push", "POST", 2),
            ("/v1/chat/completions", "POST", 12), ("/v1/completions", "POST", 5), ("/v1/embeddings", "POST", 3),
            ("/v1/responses", "POST", 8), ("/v1/messages", "POST", 10), ("/v1/messages/count_tokens", "POST", 3),
            ("/api/blobs/{digest}", "POST", 2), ("/api/blobs/{digest}", "HEAD", 1), ("/v1/models/{model}", "GET", 1),
            ("/", "GET", 1), ("/api/version", "GET", 1), ("/api/tags", "GET", 1), ("/api/ps", "GET", 1),
            ("/v1/models", "GET", 1)]
        self._route_weights = [w for _, _, w in self.routes]

    # --- small helpers ------------------------------------------------------------------------
    def chance(self, p: float) -> bool:
        return self.r.random() < p

    def text(self, n: int | None = None) -> str:
        n = self.r.choice([0, 1, 2, 5, 12, 40]) if n is None else n
        return "".join(self.r.choice(CHARS) for _ in range(n))

    def prompt(self) -> str:
        return self.r.choice(["hi", "Hello", "Why is the sky blue?", "1 2 3", self.text()])

    def gen_model(self) -> str:
        # The real models rarely: each of their generations costs 100x one of fz-tiny's. The fz-… names
        # are what the fuzzer's own /api/create bodies made (templates, parameters, messages of its own).
        return self.r.choices([FZ_TINY, "FZ-TINY", "smollm2:135m", "gemma3", "minilm", FZ_MINILM, "fz-missing",
                               self.r.choice(FZ_NAMES)], weights=[900, 20, 2, 2, 10, 10, 30, 3])[0]

    def embed_model(self) -> str:
        return self.r.choices([FZ_MINILM, FZ_TINY, "fz-missing", "minilm", "smollm2:135m"],
                              weights=[600, 300, 80, 5, 1])[0]

    def fz_name(self) -> str:
        return self.r.choice([*FZ_NAMES, f"{self.dead}/fz/m:t"])

    def small_options(self) -> dict[str, Any]:
        o: dict[str, Any] = {}
        if self.chance(0.5):
            o["temperature"] = self.r.choice([0, 0.5, 1.0])
        if self.chance(0.3):
            o["seed"] = self.r.randint(0, 100)
        if self.chance(0.3):   # the fuzzer's own lengths; fz-tiny's context (512) bounds the longest
            o["num_predict"] = self.r.choices([1, 2, 4, 8, 0, -1, -2, 1000, 2 ** 31 - 1], [40, 40, 20, 10, 4, 1, 1, 1, 1])[0]
        if self.chance(0.1):
            o["stop"] = self.r.choice(["\n", ["a", "b"], []])
        if self.chance(0.1):
            o[self.r.choice(["top_k", "top_p", "min_p", "repeat_penalty", "repeat_last_n"])] = self.r.choice([1, 0.5, 40])
        return o

    def schema(self) -> dict[str, Any]:
        return self.r.choice([{"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
                              {"type": "integer"}, {"type": "array", "items": {"type": "boolean"}}, {}])

    def tool(self) -> dict[str, Any]:
        return {"type": "function", "function": {"name": self.r.choice(["get_weather", "f"]), "description": "d",
                                                 "parameters": self.schema()}}

    def blob(self) -> str:
        return self.r.choice(self.blobs + self.uploaded)

    def image(self) -> str:
        return base64.b64encode(self.r.randbytes(self.r.randint(0, 24))).decode()

    # --- per-route schemas of known fields (valid bodies) -------------------------------------
    def _generate(self) -> dict[str, Any]:
        b: dict[str, Any] = {"model": self.gen_model(), "prompt": self.prompt()}
        r = self.r
        opt = {"stream": lambda: r.choice([True, False]), "system": self.text, "suffix": self.text,
               "template": lambda: r.choice(["{{ .Prompt }}", "{{ .System }} {{ .Prompt }}", "{{ if .Suffix }}x{{ end }}"]),
               "raw": lambda: r.choice([True, False]), "context": lambda: [1, r.randint(2, 500)],
               "keep_alive": lambda: r.choice(["5m", 300, -1, "1h"]), "think": lambda: False,
               "top_logprobs": lambda: r.randint(0, 3), "logprobs": lambda: True, "truncate": lambda: r.choice([True, False]),
               "_debug_render_only": lambda: True, "images": lambda: [self.image()],
               "format": lambda: r.choice(["json", self.schema()]), "options": self.small_options}
        for k, f in opt.items():
            if self.chance(0.5 if k in ("stream", "options") else 0.08):
                b[k] = f()
        return b

    def message(self, roles: tuple[str, ...] = ("user", "assistant", "system", "tool")) -> dict[str, Any]:
        m: dict[str, Any] = {"role": self.r.choice(roles), "content": self.prompt()}
        if self.chance(0.05):
            m["images"] = [self.image()]
        if self.chance(0.05):
            m["thinking"] = self.text()
        if self.chance(0.05):
            m["tool_calls"] = [{"function": {"name": "f", "arguments": {"a": 1}}}]
        if self.chance(0.03):
            m["tool_name"] = "f"
        return m

    def _chat(self) -> dict[str, Any]:
        r = self.r
        msgs = [self.message() for _ in range(r.choice([0, 1, 1, 1, 2, 3]))]
        if msgs:
            msgs[-1]["role"] = "user"
        b: dict[str, Any] = {"model": self.gen_model(), "messages": msgs}
        opt = {"stream": lambda: r.choice([True, False]), "tools": lambda: [self.tool()],
               "think": lambda: r.choice([False, None]), "format": lambda: r.choice(["json", self.schema()]),
               "keep_alive": lambda: r.choice(["5m", 300]), "logprobs": lambda: True,
               "top_logprobs": lambda: r.randint(0, 3), "truncate": lambda: r.choice([True, False]),
               "_debug_render_only": lambda: True, "options": self.small_options}
        for k, f in opt.items():
            if self.chance(0.5 if k in ("stream", "options") else 0.08):
                b[k] = f()
        return b

    def _embed(self) -> dict[str, Any]:
        b: dict[str, Any] = {"model": self.embed_model(), "input": self.r.choice(["hi", ["a", "b"], [], ""])}
        for k, v in (("truncate", True), ("dimensions", self.r.choice([0, 8, 384])), ("keep_alive", "5m"),
                     ("options", {"temperature": 0})):
            if self.chance(0.15):
                b[k] = v
        return b

    def _embeddings(self) -> dict[str, Any]:
        return {"model": self.embed_model(), "prompt": self.r.choice(["hi", ""]), "options": {}}

    def _tokenize(self) -> dict[str, Any]:
        b = {"model": self.r.choices([FZ_TINY, FZ_MINILM, "smollm2:135m"], [60, 38, 2])[0], "content": self.prompt()}
        if self.chance(0.3):
            b.update(add_special=self.r.choice([True, False]), parse_special=self.r.choice([True, False]))
        return b

    def _detokenize(self) -> dict[str, Any]:
        return {"model": self.r.choice([FZ_TINY, FZ_MINILM]), "tokens": [self.r.randint(0, 600) for _ in range(3)]}

    def _show(self) -> dict[str, Any]:
        b: dict[str, Any] = {"model": self.r.choice([*REAL, *FIXTURES, *FZ_NAMES])}
        for k, v in (("verbose", True), ("system", "s"), ("template", "{{ .Prompt }}"), ("options", {"top_k": 3})):
            if self.chance(0.1):
                b[k] = v
        return b

    def _create(self) -> dict[str, Any]:
        r = self.r
        b: dict[str, Any] = {"model": self.fz_name()}
        if self.chance(0.8):     # mostly fz-tiny: a model made from it shares its runner when generating
            b["from"] = r.choices([FZ_TINY, "tiny", "fz-a", f"{self.dead}/fz/base:1"], [70, 10, 10, 10])[0]
        else:
            b["files"] = {"model.gguf": self.blob()}
        opt = {"stream": lambda: r.choice([True, False]), "template": lambda: "{{ .Prompt }}", "system": self.text,
               "license": lambda: r.choice(["MIT", ["a", "b"]]), "parameters": lambda: {**FIXTURES[FZ_TINY][1], "stop": ["x"]},
               "messages": lambda: [{"role": "user", "content": "hi"}], "quantize": lambda: r.choice(["q8_0", "Q4_K_M"]),
               "adapters": lambda: {"a.gguf": self.blob()}, "renderer": lambda: "x", "parser": lambda: "x",
               "requires": lambda: "0.1.0"}
        for k, f in opt.items():
            if self.chance(0.5 if k == "stream" else 0.04 if k in ("quantize", "adapters") else 0.1):
                b[k] = f()
        return b

    def _copy(self) -> dict[str, Any]:
        return {"source": self.r.choice([FZ_TINY, "tiny", *FZ_NAMES]), "destination": self.fz_name()}

    def _delete(self) -> dict[str, Any]:
        return {self.r.choice(["model", "name"]): self.fz_name()}

    def _pull(self) -> dict[str, Any]:
        b: dict[str, Any] = {"model": self.r.choice([f"{self.dead}/fz/m:t", *FZ_NAMES, f"http://{self.dead}/fz/m"])}
        for k, v in (("insecure", self.r.choice([True, False])), ("stream", self.r.choice([True, False]))):
            if self.chance(0.5):
                b[k] = v
        return b

    def oa_messages(self) -> list[dict[str, Any]]:
        r = self.r
        msgs: list[dict[str, Any]] = []
        if self.chance(0.3):
            msgs.append({"role": r.choice(["system", "developer"]), "content": self.text()})
        content: Any = self.prompt()
        if self.chance(0.2):
            content = [{"type": "text", "text": self.prompt()}]
            if self.chance(0.3):
                content.append({"type": "image_url", "image_url": {"url": "data:image/png;base64," + self.image()}})
        msgs.append({"role": "user", "content": content})
        if self.chance(0.1):
            msgs += [{"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "42"}]
        return msgs

    def _sampling(self, b: dict[str, Any], keys: tuple[str, ...]) -> None:
        r = self.r
        pool = {"temperature": lambda: r.choice([0, 0.7, 2]), "top_p": lambda: r.choice([0.1, 1]),
                "max_tokens": lambda: r.choice([1, 2, 4, 16]), "max_completion_tokens": lambda: r.choice([1, 3]),
                "max_output_tokens": lambda: r.choice([1, 2, 8]), "seed": lambda: r.randint(0, 2 ** 40),
                "stop": lambda: r.choice(["\n", ["a", "b"]]), "n": lambda: 1, "frequency_penalty": lambda: 0.5,
                "presence_penalty": lambda: -0.5, "stream": lambda: r.choice([True, False]),
                "stream_options": lambda: {"include_usage": r.choice([True, False])}, "user": lambda: "u",
                "logprobs": lambda: True, "top_logprobs": lambda: r.randint(0, 5)}
        for k in keys:
            if self.chance(0.5 if k in ("stream", "max_tokens", "max_output_tokens") else 0.12):
                b[k] = pool[k]()

    def _oa_chat(self) -> dict[str, Any]:
        r = self.r
        b: dict[str, Any] = {"model": self.gen_model(), "messages": self.oa_messages()}
        self._sampling(b, ("temperature", "top_p", "max_tokens", "max_completion_tokens", "seed", "stop", "n",
                           "frequency_penalty", "presence_penalty", "stream", "stream_options", "user", "logprobs",
                           "top_logprobs"))
        opt = {"tools": lambda: [self.tool()], "tool_choice": lambda: r.choice(["auto", "none", "required"]),
               "response_format": lambda: r.choice([{"type": "json_object"}, {"type": "text"},
                                                    {"type": "json_schema", "json_schema": {"schema": self.schema()}}]),
               "reasoning_effort": lambda: r.choice(["none", "low"]), "reasoning": lambda: {"effort": "none"}}
        for k, f in opt.items():
            if self.chance(0.08):
                b[k] = f()
        return b

    def _oa_completion(self) -> dict[str, Any]:
        b: dict[str, Any] = {"model": self.gen_model(), "prompt": self.r.choice([self.prompt(), [self.prompt()]])}
        self._sampling(b, ("temperature", "top_p", "max_tokens", "seed", "stop", "n", "stream", "stream_options",
                           "frequency_penalty"))
        if self.chance(0.1):
            b["suffix"] = self.text()
        if self.chance(0.1):
            b["logprobs"] = self.r.randint(0, 5)
        return b

    def _oa_embeddings(self) -> dict[str, Any]:
        b: dict[str, Any] = {"model": self.embed_model(), "input": self.r.choice(["hi", ["a", "b c"]])}
        if self.chance(0.3):
            b["encoding_format"] = self.r.choice(["float", "base64"])
        if self.chance(0.2):
            b["dimensions"] = self.r.choice([1, 8, 384])
        return b

    def _responses(self) -> dict[str, Any]:
        r = self.r
        inp: Any = self.prompt()
        if self.chance(0.4):
            inp = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": self.prompt()}]}]
            if self.chance(0.2):
                inp = [{"type": "reasoning", "summary": [{"type": "summary_text", "text": "t"}]},
                       {"type": "function_call", "name": "f", "call_id": "c", "arguments": "{}"},
                       {"type": "function_call_output", "call_id": "c", "output": "1"}, *inp]
        b: dict[str, Any] = {"model": self.gen_model(), "input": inp}
        self._sampling(b, ("temperature", "top_p", "max_output_tokens", "stream"))
        opt = {"instructions": self.text, "tools": lambda: [{"type": "function", "name": "f", "parameters": self.schema()}],
               "tool_choice": lambda: r.choice(["auto", "none", {"type": "function", "name": "f"}]),
               "text": lambda: {"format": r.choice([{"type": "text"}, {"type": "json_object"},
                                                    {"type": "json_schema", "name": "x", "schema": self.schema()}])},
               "reasoning": lambda: {"effort": "none"}, "metadata": lambda: {"k": "v"},
               "parallel_tool_calls": lambda: False, "store": lambda: False}
        for k, f in opt.items():
            if self.chance(0.08):
                b[k] = f()
        return b

    def anthropic_messages(self) -> list[dict[str, Any]]:
        content: Any = self.prompt()
        if self.chance(0.3):
            content = [{"type": "text", "text": self.prompt()}]
            if self.chance(0.2):
                content.append({"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                            "data": self.image()}})
        msgs = [{"role": "user", "content": content}]
        if self.chance(0.1):
            msgs = [{"role": "user", "content": "q"},
                    {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": ""},
                                                      {"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "1"}]}]
        return msgs

    def _count_tokens(self) -> dict[str, Any]:
        r = self.r
        b: dict[str, Any] = {"model": self.gen_model(), "messages": self.anthropic_messages()}
        opt = {"system": lambda: r.choice([self.text(), [{"type": "text", "text": "s"}]]),
               "tools": lambda: [{"name": "f", "description": "d", "input_schema": self.schema()}],
               "tool_choice": lambda: r.choice([{"type": "auto"}, {"type": "none"}, {"type": "any"}]),
               "thinking": lambda: r.choice([{"type": "disabled"}, {"type": "enabled", "budget_tokens": 1024}]),
               "output_config": lambda: r.choice([{"effort": "low"}, {"format": {"type": "json_schema",
                                                                                 "schema": self.schema()}}]),
               "temperature": lambda: r.choice([0, 1]), "top_p": lambda: 0.9, "top_k": lambda: 5,
               "stop_sequences": lambda: ["\n"], "metadata": lambda: {"user_id": "u"}}
        for k, f in opt.items():
            if self.chance(0.08):
                b[k] = f()
        return b

    def _messages(self) -> dict[str, Any]:
        b = self._count_tokens()
        b["max_tokens"] = self.r.choice([1, 2, 4, 16])
        if self.chance(0.5):
            b["stream"] = self.r.choice([True, False])
        return b

    # --- fuzz values --------------------------------------------------------------------------
    def fuzz_value(self) -> Any:
        r = self.r
        kind = r.choices(["wrong", "number", "string", "huge", "deep", "surrogate", "utf8", "empty", "nonjson",
                          "random"], weights=[20, 16, 12, 5, 5, 8, 8, 8, 4, 14])[0]
        if kind == "wrong":               # a copy: a later mutation may add keys to it
            return copy.deepcopy(r.choice(WRONG_TYPES))
        if kind == "number":
            return r.choice(NUMBERS)
        if kind == "string":
            return r.choice(STRINGS)
        if kind == "huge":
            n = r.choices([2_000, 70_000, 300_000, 3 * MiB], weights=[50, 30, 15, 1])[0]
            unit = r.choice(["a", "word ", "\U0001f600", "<|im_start|>", "{{ .Prompt }}", self.text(7) or "z"])
            if unit == "\U0001f600":
                # A run of byte-fallback characters tokenizes in quadratic time in llama.cpp's SPM
                # tokenizer at the pin (llama-vocab.cpp: output.reserve(output.size() + symbol.n) per
                # symbol defeats the vector's geometric growth): 70k take ~3 s, 300k ~50 s. Reported.
                n = min(n, 70_000)
            return (unit * (n // len(unit) + 1))[:n]
        if kind == "deep":
            depth = r.choice([10, 127, 128, 129, 500, 2000, 20000])
            open_, close = r.choice([(b"[", b"]"), (b'{"a":', b"}"), (b'[{"a":', b"}]")])
            reps = depth if open_ != b'[{"a":' else depth // 2
            return Raw(open_ * reps + b"1" + close * reps)
        if kind == "surrogate":
            return self.text(3) + r.choice(SURROGATES) + self.text(2)
        if kind == "utf8":
            return Raw(b'"' + self.text(3).encode() + r.choice(BAD_UTF8) + b'"')
        if kind == "empty":
            return r.choice(["", [], {}, None])
        if kind == "nonjson":
            return Raw(r.choice(NON_JSON))
        return self.random_json(3)

    def random_json(self, depth: int) -> Any:
        r = self.r
        k = r.randint(0, 6 if depth > 0 else 3)
        if k == 0:
            return None
        if k == 1:
            return r.choice([True, False])
        if k == 2:
            return r.choice([r.randint(-10, 10), r.random(), r.choice(NUMBERS)])
        if k == 3:
            return self.text()
        if k in (4, 5):
            return [self.random_json(depth - 1) for _ in range(r.randint(0, 3))]
        return {self.text(r.randint(0, 6)): self.random_json(depth - 1) for _ in range(r.randint(0, 3))}

    def random_options(self) -> dict[str, Any]:
        r = self.r
        out: dict[str, Any] = {}
        for _ in range(r.randint(1, 4)):
            key = r.choices([r.choice(sorted(OPTIONS)), r.choice(sorted(REMOVED_OPTIONS)), self.text(r.randint(0, 8))],
                            weights=[75, 10, 15])[0]
            if key in RUNNER_OPTIONS and self.chance(0.5):
                # Valid values that keep fz-tiny's runner (a reload costs ~0.5 s); mostly wrong ones.
                out[key] = r.choice({"num_ctx": [0, 128], "num_batch": [512], "num_gpu": [-1], "num_thread": [1],
                                     "num_parallel": [1], "use_mmap": [True], "main_gpu": [0],
                                     "draft_num_predict": [0], "tensor_split": [""]}[key])
            else:
                out[key] = self.fuzz_value() if self.chance(0.7) else self.random_json(2)
        return out

    # --- mutation -----------------------------------------------------------------------------
    @staticmethod
    def paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
        out = []
        if isinstance(obj, dict):
            for k, v in obj.items():
                out.append(prefix + (k,))
                out += Generator.paths(v, prefix + (k,))
        elif isinstance(obj, list):
            for i, v in enumerate(obj):
                out.append(prefix + (i,))
                out += Generator.paths(v, prefix + (i,))
        return out

    def mutate(self, body: dict[str, Any]) -> str:
        r = self.r
        notes = []
        for _ in range(r.choices([1, 2, 3, 5], weights=[60, 25, 10, 5])[0]):
            op = r.choices(["replace", "delete", "extra"], weights=[80, 8, 12])[0]
            ps = self.paths(body)
            if op == "extra" or not ps:
                parent = self._at(body, r.choice([()] + [p for p in ps if isinstance(self._at(body, p), dict)]))
                key = r.choice(["x_unknown", "", "model ", "\u00e9", "stream\x00", self.text(5), "options"])
                parent[key] = self.fuzz_value()
                notes.append(f"extra {key!r}")
                continue
            p = r.choice(ps)
            parent = self._at(body, p[:-1])
            if op == "delete":
                del parent[p[-1]]
                notes.append(f"delete {p}")
            else:
                parent[p[-1]] = self.fuzz_value()
                notes.append(f"replace {p}")
        return "; ".join(notes)

    @staticmethod
    def _at(obj: Any, path: tuple) -> Any:
        for k in path:
            obj = obj[k]
        return obj

    # --- guards: cost and safety --------------------------------------------------------------
    def guard(self, route: str, body: dict[str, Any]) -> None:
        """Keep real models' generations short, their runners as loaded, and every write or fetch away
        from the shared models and real registries."""
        model = body.get("model")
        if route in LENGTH_KEYS and model != FZ_TINY:
            key = LENGTH_KEYS[route]
            host = body
            if key.startswith("options."):
                if body.get("options") is None:
                    body["options"] = {}
                host, key = body["options"], key[len("options."):]
            if isinstance(host, dict):
                v = host.get(key)
                if not isinstance(v, bool) and (v is None or isinstance(v, (int, float)) and not 1 <= v <= 8):
                    host[key] = self.r.randint(1, 4)
        opts = body.get("options")
        if model != FZ_TINY and isinstance(opts, dict):
            for k in [k for k, v in opts.items() if k in RUNNER_OPTIONS and isinstance(v, (int, float))]:
                del opts[k]                        # a valid size would reload that model's runner
        name_keys = {"/api/create": ("model", "name"), "/api/copy": ("destination",), "/api/delete": ("model", "name"),
                     "/api/pull": ("model", "name"), "/api/push": ("model", "name")}.get(route, ())
        for k in name_keys:
            if isinstance(body.get(k), str):
                body[k] = self._safe_target(body[k], remote=route in ("/api/pull", "/api/push"))
        if route == "/api/create" and isinstance(body.get("from"), str):
            body["from"] = self._safe_source(body["from"])

    def _parse(self, s: str) -> ModelName | None:
        try:
            return ModelName.parse(s)
        except InvalidModelName:
            return None

    def _dead(self, n: ModelName) -> str:
        return f"{self.dead}/fz/{n.model}:{n.tag}"

    def _safe_target(self, s: str, *, remote: bool) -> str:
        n = self._parse(s)
        if n is None:
            return s                              # an invalid name: refused before any I/O
        if remote and f"{n.host}" != self.dead:
            return self._dead(n)
        safe = n.namespace.lower() == "fz" or n.model.lower().startswith("fz-")
        return s if safe and all(n.key != ModelName.parse(x).key for x in FIXTURES) else self.fz_name()

    def _safe_source(self, s: str) -> str:
        n = self._parse(s)
        if n is None or n.host == self.dead or any(n.key == ModelName.parse(x).key for x in SAFE_SOURCES):
            return s
        return self._dead(n)                      # a missing base model is pulled: only from the dead port

    # --- cases --------------------------------------------------------------------------------
    def case(self) -> Case:
        r = self.r
        family = r.choices(["bytes", "truncated", "mutated", "options", "valid", "method"],
                           weights=[12, 12, 52, 10, 7, 7])[0]
        route, method, _ = r.choices(self.routes, weights=self._route_weights)[0]
        if family == "method":
            return self._method_case()
        c = self._json_case(route, method, family)
        if self.chance(0.08):
            c.headers["Content-Type"] = r.choice(CONTENT_TYPES)
        if self.chance(0.03):
            c.headers[r.choice(["Accept", "Authorization", "x-api-key", "anthropic-version", "User-Agent"])] = \
                r.choice(["", "*/*", "Bearer x", "\u00e9t\u00e9", "x" * 2000, "text/event-stream"])
        return c

    def _path(self, route: str) -> str:
        r = self.r
        if route == "/api/blobs/{digest}":
            seg = r.choice([self.blob(), f"sha256:{r.getrandbits(256):064x}", "sha256-" + "F" * 64,
                            "sha256:xyz", "md5:00", "", "..", "sha256:" + "0" * 63, "%00", "x" * 3000])
        elif route == "/v1/models/{model}":
            seg = r.choice([*REAL, FZ_TINY, "fz-missing", "a/b/c/d/e", ":", "x" * 2000, "%ff%fe", "\u00e9"])
        else:
            return route
        return route.split("{")[0] + urllib.parse.quote(seg, safe="/:%")

    def _json_case(self, route: str, method: str, family: str) -> Case:
        r = self.r
        path = self._path(route)
        if route not in self.schemas:            # GET routes, blobs: no JSON schema of their own
            if route == "/api/blobs/{digest}" and method == "POST":
                data = r.randbytes(r.randint(0, 4096))
                if self.chance(0.5):              # the right digest: stored (201/200), then named by creates
                    digest = "sha256:" + hashlib.sha256(data).hexdigest()
                    path = "/api/blobs/" + digest
                    self.uploaded = (*self.uploaded[-19:], digest)
                return Case("bytes", method, path, route, data)
            body = None if self.chance(0.7) else self.random_bytes(route)
            return Case("valid" if body is None else "bytes", method, path, route, body)
        if family == "bytes":
            return Case(family, method, path, route, self.random_bytes(route))
        obj = self.schemas[route]()
        note = ""
        if family == "mutated":
            note = self.mutate(obj)
        elif family == "options":
            key = "parameters" if route == "/api/create" else "options"
            obj[key] = self.random_options()
            note = f"{key}={obj[key]!r}"[:200]
        self.guard(route, obj)
        ascii_ = self.chance(0.7)
        data = encode(obj, ascii=ascii_)
        if family == "truncated":
            cut = r.randint(0, max(0, len(data) - 1))
            return Case(family, method, path, route, data[:cut], note=f"cut at {cut} of {len(data)}")
        return Case(family, method, path, route, data, obj=obj, ascii=ascii_, note=note)

    def random_bytes(self, route: str) -> bytes:
        r = self.r
        writes = ("/api/pull", "/api/push", "/api/create", "/api/delete", "/api/copy")
        model = f"{self.dead}/fz/m" if route in writes else FZ_TINY
        kind = r.randint(0, 6)
        n = r.choice([0, 1, 2, 10, 100, 1000, 8000])
        if kind == 0:
            return r.randbytes(n)
        if kind == 1:                             # JSON-ish token soup
            toks = [b"{", b"}", b"[", b"]", b'"', b":", b",", b"null", b"true", b"1", b"-", b"e", b"\\", b"\\u", b" "]
            return b"".join(r.choice(toks) for _ in range(n))
        if kind == 2:                             # a valid object in another encoding (or with a BOM)
            text = json.dumps({"model": model, "prompt": "hi", "stream": False})
            return r.choice([b"\xef\xbb\xbf" + text.encode(), text.encode("utf-16"), text.encode("utf-32-le"),
                             text.encode("utf-16-be")])
        if kind == 3:                             # top-level values that are not objects
            return r.choice([b"[]", b'"x"', b"1", b"null", b"true", b"[{}]", b"1" * 10000, b"{} {}", b"{}x", b" "])
        if kind == 4:
            return bytes(r.choice(b" \t\r\n") for _ in range(n))
        if kind == 5:                             # valid JSON with raw control characters and bad UTF-8
            return b'{"model": "' + model.encode() + b'", "prompt": "' + r.choice(BAD_UTF8 + [b"\x00", b"\x1f", b"\n"]) + b'"}'
        return "".join(r.choice(CHARS) for _ in range(n)).encode()

    def _method_case(self) -> Case:
        r = self.r
        if self.chance(0.5):
            route, good, _ = r.choice(self.routes)
            method = r.choice([m for m in METHODS if m != good and not (good == "GET" and m == "HEAD")])
            path = self._path(route)
        else:
            route, method, path = "unknown", r.choice(METHODS), r.choice(UNKNOWN_PATHS)
        body = None if method in ("GET", "HEAD") and self.chance(0.7) else encode({"model": FZ_TINY, "prompt": "hi"})
        return Case("method", method, path, route, body)

    def oversize(self, limit: int) -> Case:
        """A body just over ``limit`` (a JSON object; sent with Content-Length)."""
        data = b'{"model": "fz-tiny", "prompt": "' + b"a" * (limit + 1 - 34) + b'"}'
        route = self.r.choice(["/api/generate", "/api/chat", "/v1/chat/completions", "/v1/messages", "/api/create"])
        return Case("oversize", "POST", route, route, data)
