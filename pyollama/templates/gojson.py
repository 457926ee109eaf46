"""Go's encoding/json Marshal, byte for byte, for the values templates hand to `json`.

Differences from Python's json.dumps that show in prompts: no spaces after `,` and `:`, map keys
sorted, `<`, `>` and `&` escaped as \\u003c \\u003e \\u0026 (HTML-safe), U+2028/U+2029 escaped,
floats as Go formats them (`1e+21`, `1e-7`, `3`), and NaN/Inf refused. Those rules are shared with the
store in `pyollama.gojson`; here is the walk over template values (Go maps, structs, MISSING).
"""
from __future__ import annotations

from typing import Any

from pyollama.gojson import UnsupportedValue, encode_float, encode_string, sorted_keys
from pyollama.templates.govalues import MISSING, GoSlice, GoStruct, OrderedMap


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
