"""Go's ``strconv`` as the rest of the package needs it: ``FormatFloat`` (what ``fmt``'s ``%v``/``%g``/``%e``/
``%f`` print, and what ``encoding/json`` builds its numbers from), ``Quote``/``QuoteRune`` and ``IsPrint``.

Thread-safety: pure functions.
"""
from __future__ import annotations

import math


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


def quote_rune(r: int) -> str:
    """strconv.QuoteRune (``%q`` of an integer)."""
    c = chr(r)
    if c == "'":
        return "'\\''"
    if c == '"':
        return "'\"'"
    q = quote(c)
    return "'" + q[1:-1] + "'"
