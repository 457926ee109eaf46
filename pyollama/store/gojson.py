"""Go's ``encoding/json`` and ``fmt`` for store data: the bytes Ollama writes and the text it shows.

Ollama writes manifests, config, params and messages blobs with Go's ``json.Encoder``. Producing the same
bytes for the same content means the same digests, so a model created here and the same model created by
Ollama share blobs. Go differs from Python's ``json`` in HTML escaping (``<`` → ``\\u003c``), float
formatting (``1e-7`` not ``1e-07``; no exponent below 1e21) and map key order (sorted); those rules live
in :mod:`pyollama.gojson`, shared with the template engine. Here: the walk over plain Python data, whose
dicts are Go structs (fields in order) unless ``sort_keys`` says they are Go maps.

``go_value`` reproduces ``fmt``'s ``%v`` / ``%#v`` for the Modelfile and ``parameters`` text that
``ollama show`` prints.

Thread-safety: pure functions.
"""
from __future__ import annotations

from typing import Any

from pyollama.gojson import encode_float, encode_string, format_float, quote, sorted_keys


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


def go_value(v: Any, *, sharp: bool = False) -> str:
    """``fmt.Sprintf("%v", v)`` (or ``%#v`` with ``sharp``) for the JSON-ish values found in params."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return format_float(v)
    if isinstance(v, str):
        return quote(v) if sharp else v
    if v is None:
        return "<nil>"
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(go_value(x, sharp=sharp) for x in v) + "]"
    return str(v)
