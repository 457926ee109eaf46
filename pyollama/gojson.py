"""Go's ``encoding/json`` core and the ``strconv`` routines under it, byte for byte.

The store (manifests, params and messages blobs: same bytes as Ollama means same digests) and the
template engine (the ``json`` function, ``%v`` printing) both need Go's spelling of values; this module
is the one implementation of what they share:

* JSON strings: ``<``, ``>``, ``&`` as ``\\u003c`` ``\\u003e`` ``\\u0026`` (Go's HTML-safe default),
  U+2028/U+2029 escaped, other control characters as ``\\u00XX`` (:func:`encode_string`);
* JSON numbers: shortest digits, exponent form only below 1e-6 or from 1e21, ``e-7`` not ``e-07``,
  NaN and ±Inf refused (:func:`encode_float`);
* ``strconv.FormatFloat`` (what ``fmt``'s ``%v``/``%g``/``%e``/``%f`` print) and ``strconv.Quote``;
* map key order (:func:`sorted_keys`).

The value walkers stay with their callers: ``pyollama.store.gojson`` encodes plain Python data (dicts
in insertion order, as Go structs), ``pyollama.templates.gojson`` encodes template values (Go maps
sorted, structs, ``MISSING``).

Thread-safety: pure functions.
"""
from __future__ import annotations

import math
from typing import Any


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


def _shortest_digits(f: float) -> tuple[str, int]:
    """Shortest round-trip decimal digits of |f| and the decimal point position (strconv's digs.dp)."""
    r = repr(abs(f))
    exp = 0
    if "e" in r:
        r, e = r.split("e")
        exp = int(e)
    if "." in r:
        ip, fp = r.split(".")
    else:
        ip, fp = r, ""
    digits = ip + fp
    dp = len(ip) + exp
    stripped = digits.lstrip("0")
    dp -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    if not digits:
        return "0", 1
    return digits, dp


def _fmt_e(neg: bool, digits: str, dp: int, prec: int, ch: str) -> str:
    s = "-" if neg else ""
    s += digits[0]
    if prec > 0:
        frac = digits[1:prec + 1]
        s += "." + frac + "0" * (prec - len(frac))
    exp = dp - 1 if digits != "0" else 0
    sign = "-" if exp < 0 else "+"
    exp = abs(exp)
    return f"{s}{ch}{sign}{exp:02d}"


def _fmt_f(neg: bool, digits: str, dp: int, prec: int) -> str:
    s = "-" if neg else ""
    if dp > 0:
        ip = digits[:dp] + "0" * max(0, dp - len(digits))
    else:
        ip = "0"
    s += ip
    if prec > 0:
        frac = []
        for i in range(prec):
            j = dp + i
            frac.append(digits[j] if 0 <= j < len(digits) else "0")
        s += "." + "".join(frac)
    return s


def format_float(f: float, verb: str = "g", prec: int = -1) -> str:
    """strconv.FormatFloat(f, verb, prec, 64) for verbs e E f g G; ``format_float(f)`` is fmt's ``%v``."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    neg = f < 0 or (f == 0 and math.copysign(1.0, f) < 0)
    if prec >= 0:
        # Python's %-formatting rounds the exact binary value like strconv does.
        if verb in "eE":
            return format(f, f".{prec}{verb}")
        if verb in "fF":
            return format(f, f".{prec}f")
        if verb in "gG":
            # Go keeps exponents at two digits minimum, as Python does; no `#` handling here.
            return format(f, f".{max(prec, 1)}{verb}")
    digits, dp = _shortest_digits(f)
    if verb in "eE":
        return _fmt_e(neg, digits, dp, len(digits) - 1, verb)
    if verb in "fF":
        return _fmt_f(neg, digits, dp, max(len(digits) - dp, 0))
    # shortest %g (and %v): strconv switches to exponent form when exp < -4 || exp >= 6
    # ("if shortest { eprec = 6 }"), so 1e6 prints as "1e+06" (`PARAMETER rope_frequency_base 1e+06`).
    exp = dp - 1 if digits != "0" else 0
    if exp < -4 or exp >= 6:
        return _fmt_e(neg, digits, dp, len(digits) - 1, "E" if verb == "G" else "e")
    return _fmt_f(neg, digits, dp, max(len(digits) - dp, 0))


# --- strconv.Quote -----------------------------------------------------------------------------------
def is_print(c: str) -> bool:
    """strconv.IsPrint, as far as Python's Unicode tables follow Go's."""
    return c == " " or (c.isprintable() and not c.isspace())


_QUOTE_ESC = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def quote(s: str, ascii_only: bool = False) -> str:
    """strconv.Quote (``%q``, and ``%#v`` of a string); ``ascii_only`` is strconv.QuoteToASCII."""
    out = ['"']
    for c in s:
        o = ord(c)
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif 0xD800 <= o <= 0xDFFF:
            out.append("\\ufffd")
        elif is_print(c) and (o < 0x80 or not ascii_only):
            out.append(c)
        elif c in _QUOTE_ESC:
            out.append(_QUOTE_ESC[c])
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        elif o < 0x10000:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    out.append('"')
    return "".join(out)


# --- maps ----------------------------------------------------------------------------------------------
def sorted_keys(d: dict[Any, Any]) -> list[Any]:
    """Map keys in Go's order: strings bytewise (= code point order; encoding/json and fmtsort agree),
    numbers numerically (fmtsort)."""
    try:
        return sorted(d)
    except TypeError:
        return sorted(d, key=lambda k: (type(k).__name__, str(k)))


__all__ = ["UnsupportedValue", "encode_float", "encode_string", "format_float", "is_print", "quote",
           "sorted_keys"]
