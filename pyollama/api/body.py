"""Reading and checking request bodies: every field is type-checked here, before anything reaches the
scheduler or the engine. Messages follow Ollama's where clients may depend on them.

Thread-safety: pure functions (``read_json`` awaits the body on the event loop).
"""
from __future__ import annotations

import base64
import binascii
import datetime as _dt
import json
import logging
import re
import time
from collections.abc import Callable
from typing import Any

from starlette.requests import Request

from pyollama.errors import FeatureUnavailable, InvalidRequest
from pyollama.store import options as opts

log = logging.getLogger("pyollama.api")

THINK_LEVELS = ("low", "medium", "high", "max")
# Deeper than any real schema, tool call or message list nests, and shallow enough that everything
# recursive downstream (schema → grammar, template printing, json.dumps) stays far from Python's stack limit.
MAX_DEPTH = 128
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


async def read_json(request: Request) -> dict[str, Any]:
    """The body as a JSON object. Empty → ``missing request body``; malformed → the decoder's message."""
    return parse_json(await request.body())


def parse_json(raw: bytes) -> dict[str, Any]:
    """Decode a request body the way Go's encoding/json would let it through: ``NaN``/``Infinity`` are
    not JSON, invalid UTF-8 and lone UTF-16 surrogates (escaped or not) become U+FFFD (as Go decodes
    them; Python would keep a code point that no UTF-8 encoder accepts), and nesting deeper than
    ``MAX_DEPTH`` is refused."""
    if not raw.strip():
        raise InvalidRequest("missing request body")
    # Decoded here, not by json.loads: for bytes it uses "surrogatepass", which lets the raw UTF-8 form
    # of a surrogate (ED A0 80) through as a lone surrogate, and every later encode then fails.
    text = raw.decode(json.detect_encoding(raw), "replace")
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise InvalidRequest(f"invalid JSON: nested deeper than {MAX_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidRequest(f"invalid JSON: {e}") from None
    if not isinstance(value, dict):
        raise InvalidRequest(f"the request body must be a JSON object, not {_kind(value)}")
    if text.count("[") + text.count("{") > MAX_DEPTH:
        _check_depth(value)
    if _SURROGATE_ESCAPE.search(text):
        value = _replace_surrogates(value)
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _check_depth(value: Any) -> None:
    stack = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if d > MAX_DEPTH:
            raise InvalidRequest(f"invalid JSON: nested deeper than {MAX_DEPTH} levels")
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values() if isinstance(x, (dict, list)))
        elif isinstance(v, list):
            stack.extend((x, d + 1) for x in v if isinstance(x, (dict, list)))


def _replace_surrogates(v: Any) -> Any:
    """Every lone surrogate in keys and strings → U+FFFD (pairs were already joined by the decoder).
    Recursion is safe: the depth was checked first."""
    if isinstance(v, str):
        return _LONE_SURROGATE.sub("\ufffd", v)
    if isinstance(v, list):
        return [_replace_surrogates(x) for x in v]
    if isinstance(v, dict):
        return {_replace_surrogates(k): _replace_surrogates(x) for k, x in v.items()}
    return v


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    return "an object"


def _typed(body: dict[str, Any], key: str, default: Any, ok: Callable[[Any], bool], what: str) -> Any:
    """``body[key]``, ``default`` when absent or null, a 400 naming the key when ``ok`` refuses it."""
    v = body.get(key)
    if v is None:
        return default
    if not ok(v):
        raise InvalidRequest(f'"{key}" must be {what}, not {_kind(v)}')
    return v


def _is_integral(v: Any) -> bool:
    return not isinstance(v, bool) and (isinstance(v, int) or (isinstance(v, float) and v.is_integer()))


def string(body: dict[str, Any], key: str, default: str = "") -> str:
    return _typed(body, key, default, lambda v: isinstance(v, str), "a string")


def boolean(body: dict[str, Any], key: str, default: bool | None = None) -> bool | None:
    return _typed(body, key, default, lambda v: isinstance(v, bool), "true or false")


def integer(body: dict[str, Any], key: str, default: int = 0) -> int:
    return int(_typed(body, key, default, _is_integral, "an integer"))


def obj(body: dict[str, Any], key: str) -> dict[str, Any] | None:
    return _typed(body, key, None, lambda v: isinstance(v, dict), "an object")


def array(body: dict[str, Any], key: str) -> list[Any] | None:
    return _typed(body, key, None, lambda v: isinstance(v, list), "an array")


def stream_flag(body: dict[str, Any]) -> bool:
    """Native endpoints stream unless ``"stream": false``."""
    v = boolean(body, "stream")
    return True if v is None else v


def model_name(body: dict[str, Any]) -> str:
    """``model``, or the legacy ``name``."""
    return string(body, "model") or string(body, "name")


def options(body: dict[str, Any]) -> dict[str, Any]:
    """Request ``options`` checked against the option table: known keys typed (ints accept integral
    numbers, floats accept ints), removed legacy keys and unknown keys dropped (logged), a wrong type
    rejected with Ollama's message (``option "x" must be of type integer``)."""
    raw = obj(body, "options") or {}
    out: dict[str, Any] = {}
    for k, v in raw.items():
        if v is None or k in opts.REMOVED_OPTIONS:
            continue
        if k not in opts.OPTIONS:
            log.info("ignoring unknown option %r", k)
            continue
        try:
            out[k] = opts.coerce_json(k, v)
        except opts.OptionError as e:
            raise InvalidRequest(str(e)) from None
    return out


def think(body: dict[str, Any]) -> bool | str | None:
    """``think``: true/false or a level; anything else is a 400."""
    v = body.get("think")
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, str):
        if v in THINK_LEVELS:
            return v
        if v in ("true", "false"):
            return v == "true"
    raise InvalidRequest(f"invalid think value: {json.dumps(v)} (must be \"high\", \"medium\", \"low\", "
                         "\"max\", true, or false)")


def think_on(value: bool | str | None) -> bool:
    return value is True or isinstance(value, str)


def top_logprobs(body: dict[str, Any]) -> int:
    n = integer(body, "top_logprobs", 0)
    if not 0 <= n <= 20:
        raise InvalidRequest("top_logprobs must be between 0 and 20")
    return n


def format_value(body: dict[str, Any]) -> str | dict[str, Any] | None:
    """``format``: ``"json"``, a JSON-schema object, or unset (``null``/``""``)."""
    v = body.get("format")
    if v is None or v == "" or v == "null":
        return None
    if v == "json" or isinstance(v, dict):
        return v
    raise InvalidRequest(f"invalid format: {json.dumps(v)}: must be \"json\" or a JSON schema object")


def grammar_for(fmt: str | dict[str, Any] | None) -> str | None:
    """The GBNF grammar for a ``format`` (the engine converts JSON schemas)."""
    if fmt is None:
        return None
    try:
        from pyollama.engine.grammar import format_to_gbnf
    except ImportError:
        raise FeatureUnavailable("structured outputs (format) are not available in this build: "
                                 "pyollama.engine.grammar is missing") from None
    return format_to_gbnf(fmt)


def images(value: Any, where: str = "images") -> list[bytes]:
    """Decode base64 images (invalid data is a 400)."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise InvalidRequest(f'"{where}" must be an array of base64 strings')
    out = []
    for x in value:
        try:
            out.append(base64.b64decode(x, validate=True))
        except (binascii.Error, ValueError):
            raise InvalidRequest(f"invalid image data in {where}: not valid base64") from None
    return out


_last_second: list = [None, ""]       # (second, its formatted prefix): one strftime per second, not per chunk


def now_rfc3339() -> str:
    """UTC with nanoseconds, trailing zeros trimmed (Go's RFC3339Nano, as ``created_at`` is written).
    Called for every streamed chunk, so the seconds part is formatted once per second."""
    ns = time.time_ns()
    secs, frac = divmod(ns, 1_000_000_000)
    cached = _last_second
    if cached[0] != secs:
        cached[1] = _dt.datetime.fromtimestamp(secs, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        cached[0] = secs
    f = f".{frac:09d}".rstrip("0") if frac else ""
    return f"{cached[1]}{f}Z"
