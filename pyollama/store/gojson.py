"""JSON and value formatting byte-compatible with Go (``encoding/json`` and ``fmt``).

Ollama writes manifests, config, params and messages blobs with Go's ``json.Encoder``. Producing the same
bytes for the same content means the same digests, so a model created here and the same model created by
Ollama share blobs. Go differs from Python's ``json`` in HTML escaping (``<`` → ``\\u003c``), float
formatting (``1e-7`` not ``1e-07``; no exponent below 1e21) and map key order (sorted).

``go_value`` / ``go_quote`` reproduce ``fmt``'s ``%v`` / ``%#v`` for the Modelfile and ``parameters`` text
that ``ollama show`` prints.

Thread-safety: pure functions.
"""
from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

_ESC = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f",
        "<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _str(s: str) -> str:
    out = ['"']
    for ch in s:
        e = _ESC.get(ch)
        if e is not None:
            out.append(e)
        elif ch < " ":
            out.append(f"\\u{ord(ch):04x}")
        elif "\ud800" <= ch <= "\udfff":   # lone surrogate: Go writes the replacement character
            out.append("\ufffd")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _digits(f: float) -> tuple[str, int]:
    """Shortest round-trip digits of abs(f) and the decimal point position (value = 0.DIGITS × 10^dp)."""
    t = Decimal(repr(abs(f))).as_tuple()
    digits = "".join(map(str, t.digits))
    dp = len(digits) + int(t.exponent)
    stripped = digits.rstrip("0") or "0"
    return stripped, dp


def _fixed(digits: str, dp: int) -> str:
    if digits == "0":
        return "0"
    if dp <= 0:
        return "0." + "0" * (-dp) + digits
    if dp >= len(digits):
        return digits + "0" * (dp - len(digits))
    return digits[:dp] + "." + digits[dp:]


def _exp(digits: str, dp: int, min_exp_digits: int) -> str:
    mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    e = dp - 1
    return f"{mant}e{'-' if e < 0 else '+'}{abs(e):0{min_exp_digits}d}"


def json_float(f: float) -> str:
    if math.isnan(f) or math.isinf(f):
        raise ValueError(f"JSON cannot represent {f!r}")
    if f == 0:
        return "-0" if math.copysign(1, f) < 0 else "0"
    digits, dp = _digits(f)
    sign = "-" if f < 0 else ""
    a = abs(f)
    if a < 1e-6 or a >= 1e21:
        return sign + _exp(digits, dp, 1)   # Go trims "e-07" to "e-7"
    return sign + _fixed(digits, dp)


def go_float(f: float) -> str:
    """``fmt.Sprint(float64)``: %g with the shortest digits, exponent form when exp < -4 or exp >= 21."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    if f == 0:
        return "0"
    digits, dp = _digits(f)
    sign = "-" if f < 0 else ""
    e = dp - 1
    # strconv 'g' with the shortest precision switches to the exponent form when exp < -4 or exp >= 6
    # ("if shortest { eprec = 6 }"), so 1e6 prints as "1e+06" (as in `PARAMETER rope_frequency_base 1e+06`).
    if e < -4 or e >= 6:
        return sign + _exp(digits, dp, 2)
    return sign + _fixed(digits, dp)


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
        return json_float(obj)
    if isinstance(obj, str):
        return _str(obj)
    if isinstance(obj, dict):
        items = sorted(obj.items()) if sort_keys else obj.items()
        return "{" + ",".join(_str(str(k)) + ":" + dumps(v, sort_keys=sort_keys) for k, v in items) + "}"
    if isinstance(obj, (list, tuple)):
        return "[" + ",".join(dumps(v, sort_keys=sort_keys) for v in obj) + "]"
    raise TypeError(f"cannot encode {type(obj).__name__} as JSON")


def encode(obj: Any, *, sort_keys: bool = False) -> bytes:
    """Go ``json.NewEncoder(w).Encode(obj)``: Marshal plus a trailing newline, UTF-8."""
    return (dumps(obj, sort_keys=sort_keys) + "\n").encode("utf-8")


def go_quote(s: str) -> str:
    """Go ``strconv.Quote`` (what ``%#v`` prints for a string)."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in "\a\b\f\n\r\t\v":
            out.append({"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
                        "\v": "\\v"}[ch])
        elif ch.isprintable() or ch == " ":
            out.append(ch)
        elif o < 0x80:
            out.append(f"\\x{o:02x}")
        elif o <= 0xFFFF:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    out.append('"')
    return "".join(out)


def go_value(v: Any, *, sharp: bool = False) -> str:
    """``fmt.Sprintf("%v", v)`` (or ``%#v`` with ``sharp``) for the JSON-ish values found in params."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return go_float(v)
    if isinstance(v, str):
        return go_quote(v) if sharp else v
    if v is None:
        return "<nil>"
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(go_value(x, sharp=sharp) for x in v) + "]"
    return str(v)
