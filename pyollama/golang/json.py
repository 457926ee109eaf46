"""Go's ``encoding/json`` encoder, byte for byte.

Two walks share one set of rules. The store writes manifests, config, params and messages blobs as
Ollama's ``json.Encoder`` does — the same bytes for the same content means the same digests, so a model
created here and by Ollama share blobs (:func:`dumps`, :func:`encode`: plain Python data, dicts in
insertion order as Go structs unless ``sort_keys`` says they are Go maps). Templates hand Go values to
``json`` (:func:`marshal`: maps sorted, structs with their tags, ``MISSING``).

The rules, where Go differs from Python's ``json``:

* strings: ``<``, ``>``, ``&`` as ``\\u003c`` ``\\u003e`` ``\\u0026`` (Go's HTML-safe default),
  U+2028/U+2029 escaped, other control characters as ``\\u00XX`` (:func:`encode_string`);
* numbers: shortest digits, exponent form only below 1e-6 or from 1e21, ``e-7`` not ``e-07``,
  NaN and ±Inf refused (:func:`encode_float`);
* map keys sorted (:func:`sorted_keys`); no spaces after ``,`` and ``:``.

Thread-safety: pure functions.
"""
from __future__ import annotations

import math
from typing import Any

from pyollama.golang.strconv import format_float
from pyollama.golang.values import MISSING, GoSlice, GoStruct, OrderedMap


class UnsupportedValue(ValueError):
    """json: unsupported value (NaN, ±Inf) or type (functions, complex numbers)."""


# --- JSON strings ------------------------------------------------------------------------------------
def _escape_table(surrogate: str) -> dict[int, str]:
    table = {c: f"\\u{c:04x}" for c in range(0x20)}
    table.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t", ord("\b"): "\\b", ord("\f"): "\\f",
                  ord('"'): '\\"', ord("\\"): "\\\\", ord("<"): "\\u003c", ord(">"): "\\u003e",
                  ord("&"): "\\u0026", 0x2028: "\\u2028", 0x2029: "\\u2029"})
    for c in range(0xD800, 0xE000):
        table[c] = surrogate
    return table


# A lone surrogate stands for one of two things, and Go writes them differently:
# * in a template value it is a byte of invalid UTF-8, which encoding/json writes as the escape \ufffd;
# * in store data it came from a JSON "\ud800" escape, which Go's decoder had already turned into the
#   rune U+FFFD, so Go's encoder writes that character itself.
_ESCAPES = {"invalid": _escape_table("\\ufffd"), "decoded": _escape_table("\ufffd")}


def encode_string(s: str, *, surrogates: str = "invalid") -> str:
    """A JSON string literal as Go writes it; ``surrogates`` is ``"invalid"`` or ``"decoded"`` (above)."""
    return '"' + s.translate(_ESCAPES[surrogates]) + '"'


# --- numbers ---------------------------------------------------------------------------------------
def encode_float(f: float) -> str:
    """A float64 as encoding/json writes it."""
    if math.isnan(f) or math.isinf(f):
        raise UnsupportedValue(f"json: unsupported value: {f!r}")
    if f == 0:
        return "-0" if math.copysign(1.0, f) < 0 else "0"
    a = abs(f)
    if a < 1e-6 or a >= 1e21:
        # strconv 'e' shortest, then Go trims "e-07" to "e-7".
        mant, exp = format_float(f, "e", -1).split("e")
        return f"{mant}e{exp[0]}{exp[1:].lstrip('0') or '0'}"
    return format_float(f, "f", -1)


# --- maps ----------------------------------------------------------------------------------------------
def sorted_keys(d: dict[Any, Any]) -> list[Any]:
    """Map keys in Go's order: strings bytewise (= code point order; encoding/json and fmtsort agree),
    numbers numerically (fmtsort)."""
    try:
        return sorted(d)
    except TypeError:
        return sorted(d, key=lambda k: (type(k).__name__, str(k)))


# --- plain data (the store) ---------------------------------------------------------------------
def _str(s: str) -> str:
    # Store strings come from decoded JSON or text, where Go already holds U+FFFD for a lone surrogate.
    return encode_string(s, surrogates="decoded")


def dumps(obj: Any, *, sort_keys: bool = False) -> str:
    """Go ``json.Marshal``. Dicts keep insertion order (struct fields) unless ``sort_keys`` (Go maps)."""
    if obj is None:
        return "null"
    if obj is True:
        return "true"
    if obj is False:
        return "false"
    if isinstance(obj, int):
        return str(obj)
    if isinstance(obj, float):
        return encode_float(obj)
    if isinstance(obj, str):
        return _str(obj)
    if isinstance(obj, dict):
        keys = sorted_keys(obj) if sort_keys else obj
        return "{" + ",".join(_str(str(k)) + ":" + dumps(obj[k], sort_keys=sort_keys) for k in keys) + "}"
    if isinstance(obj, (list, tuple)):
        return "[" + ",".join(dumps(v, sort_keys=sort_keys) for v in obj) + "]"
    raise TypeError(f"cannot encode {type(obj).__name__} as JSON")


def encode(obj: Any, *, sort_keys: bool = False) -> bytes:
    """Go ``json.NewEncoder(w).Encode(obj)``: Marshal plus a trailing newline, UTF-8."""
    return (dumps(obj, sort_keys=sort_keys) + "\n").encode("utf-8")


# --- template values ---------------------------------------------------------------------------------
def marshal(v: Any) -> str:
    """json.Marshal(v) as a str; raises UnsupportedValue where Go returns an error."""
    out: list[str] = []
    _enc(v, out)
    return "".join(out)


def _enc(v: Any, out: list[str]) -> None:
    if v is None or v is MISSING:
        out.append("null")
        return
    t = type(v)
    if t is str:
        out.append(encode_string(v))
    elif t is bool:
        out.append("true" if v else "false")
    elif t is int:
        out.append(str(v))
    elif t is float:
        out.append(encode_float(v))
    elif isinstance(v, GoStruct):
        _enc_struct(v, out)
    elif isinstance(v, (GoSlice, OrderedMap)):
        custom = v.go_json()
        if custom is None:
            out.append("null")
        elif isinstance(custom, OrderedMap):
            _enc_object(list(custom.items()), out)
        else:
            _enc(custom, out)
    elif isinstance(v, dict):
        _enc_object([(k, v[k]) for k in sorted_keys(v)], out)
    elif isinstance(v, (list, tuple)):
        out.append("[")
        for i, e in enumerate(v):
            if i:
                out.append(",")
            _enc(e, out)
        out.append("]")
    elif isinstance(v, str):
        out.append(encode_string(str(v)))
    elif isinstance(v, bool):
        out.append("true" if v else "false")
    elif isinstance(v, int):
        out.append(str(int(v)))
    elif isinstance(v, float):
        out.append(encode_float(float(v)))
    else:
        raise UnsupportedValue(f"json: unsupported type: {type(v).__name__}")


def _enc_object(items: list[tuple[Any, Any]], out: list[str]) -> None:
    out.append("{")
    first = True
    for k, val in items:
        if not first:
            out.append(",")
        first = False
        out.append(encode_string(k if isinstance(k, str) else str(k)))
        out.append(":")
        _enc(val, out)
    out.append("}")


def is_empty(v: Any) -> bool:
    """encoding/json's omitempty test: false, 0, "", nil, and empty slices and maps."""
    if v is None or v is MISSING:
        return True
    if getattr(type(v), "go_pointer", False):     # a non-nil pointer is never empty
        return False
    if isinstance(v, (str, list, tuple, dict)):
        return len(v) == 0
    if isinstance(v, bool):
        return not v
    if isinstance(v, (int, float)):
        return v == 0
    return False


def _enc_struct(s: GoStruct, out: list[str]) -> None:
    custom = s.go_json()
    if custom is not None:
        _enc(custom, out)
        return
    items = []
    for field, name, omitempty in s._json_fields:
        val = getattr(s, field)
        if omitempty and is_empty(val):
            continue
        items.append((name, val))
    _enc_object(items, out)
