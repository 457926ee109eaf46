"""Go's fmt package, as far as templates and ``ollama show`` reach it: Sprint, Sprintln, Sprintf and %v
printing (strconv's FormatFloat and Quote underneath).

Go prints values differently from Python in ways a prompt shows: floats as `3.24e+07`, nil as
`<nil>`, maps as `map[a:1 b:2]` in key order, slices as `[1 2]`, bad verbs as `%!d(string=x)`.
"""
from __future__ import annotations

import math
from typing import Any

from pyollama.golang.json import sorted_keys
from pyollama.golang.strconv import format_float, is_print, quote, quote_rune
from pyollama.golang.values import MISSING, GoSlice, GoStruct, OrderedMap, type_name


# ---------------------------------------------------------------------------------------------------
# printing values (%v and friends)


class _Spec:
    __slots__ = ("plus", "minus", "sharp", "space", "zero", "width", "prec")

    def __init__(self) -> None:
        self.plus = self.minus = self.sharp = self.space = self.zero = False
        self.width: int | None = None
        self.prec: int | None = None


_PLAIN = _Spec()


def _pad(s: str, sp: _Spec, numeric: bool = False) -> str:
    if sp.width is None or len(s) >= sp.width:
        return s
    n = sp.width - len(s)
    if sp.minus:
        return s + " " * n
    if sp.zero and numeric:
        if s and s[0] in "+- ":
            return s[0] + "0" * n + s[1:]
        return "0" * n + s
    if sp.zero and not numeric:
        return "0" * n + s
    return " " * n + s


def _bad(verb: str, v: Any) -> str:
    if v is None:
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({type_name(v)}={format_value(v, 'v')})"


def _fmt_int(v: int, verb: str, sp: _Spec) -> str:
    neg = v < 0
    a = -v if neg else v
    if verb in "vd":
        body = str(a)
    elif verb == "b":
        body = format(a, "b")
    elif verb == "o":
        body = format(a, "o")
        if sp.sharp:
            body = "0" + body
    elif verb == "O":
        body = "0o" + format(a, "o")
    elif verb == "x":
        body = format(a, "x")
        if sp.sharp:
            body = "0x" + body
    elif verb == "X":
        body = format(a, "X")
        if sp.sharp:
            body = "0X" + body
    elif verb == "c":
        return _pad(chr(v) if 0 <= v <= 0x10FFFF else "\ufffd", sp)
    elif verb == "q":
        return _pad(quote_rune(v), sp)
    elif verb == "U":
        s = "U+%04X" % v
        if sp.sharp and 0 <= v <= 0x10FFFF and is_print(chr(v)):
            s += " '" + chr(v) + "'"
        return _pad(s, sp)
    else:
        return _bad(verb, v)
    if sp.prec is not None:
        body = body.rjust(sp.prec, "0") if not (sp.prec == 0 and a == 0) else ""
    sign = "-" if neg else ("+" if sp.plus else (" " if sp.space else ""))
    s = sign + body
    return _pad(s, sp, numeric=sp.prec is None)


def _fmt_float(v: float, verb: str, sp: _Spec) -> str:
    if verb == "v":
        s = format_float(v, "g", -1 if sp.prec is None else sp.prec)
    elif verb in "gG":
        s = format_float(v, verb, -1 if sp.prec is None else sp.prec)
    elif verb in "eEfF":
        s = format_float(v, verb, 6 if sp.prec is None else sp.prec)
    else:
        return _bad(verb, v)
    if sp.plus and not s.startswith("-") and s != "NaN":
        s = "+" + s
    elif sp.space and not s.startswith("-"):
        s = " " + s
    numeric = not (math.isinf(v) or math.isnan(v))
    return _pad(s, sp, numeric=numeric)


def _fmt_complex(v: complex, verb: str, sp: _Spec) -> str:
    if verb not in "vbgGxXfFeE":
        return _bad(verb, v)
    re = _fmt_float(v.real, verb, sp)
    im = _fmt_float(v.imag, verb, sp)
    if not im.lstrip().startswith(("-", "+")):
        im = "+" + im
    return f"({re}{im}i)"


def _fmt_str(v: str, verb: str, sp: _Spec) -> str:
    if sp.prec is not None and verb in "vsqxX":
        v = v[:sp.prec]
    if verb == "v" and sp.sharp:                # %#v: Go syntax, a quoted string
        return _pad(quote(v), sp)
    if verb in "vs":
        return _pad(v, sp)
    if verb == "q":
        if sp.sharp and "`" not in v and all(is_print(c) or c == "\t" for c in v):
            return _pad("`" + v + "`", sp)
        return _pad(quote(v, ascii_only=sp.plus), sp)
    if verb in "xX":
        h = v.encode("utf-8", "surrogatepass").hex()
        if verb == "X":
            h = h.upper()
        if sp.space:
            pre = "0x" if verb == "x" else "0X"
            h = " ".join((pre if sp.sharp else "") + h[i:i + 2] for i in range(0, len(h), 2))
        elif sp.sharp:
            h = ("0x" if verb == "x" else "0X") + h
        return _pad(h, sp)
    return _bad(verb, v)


def _fmt_bool(v: bool, verb: str, sp: _Spec) -> str:
    if verb in "vt":
        return _pad("true" if v else "false", sp)
    return _bad(verb, v)


def format_value(v: Any, verb: str = "v", sp: _Spec = _PLAIN, depth: int = 0) -> str:
    """Format one operand the way fmt does for `verb` (printValue / printArg)."""
    if v is None or v is MISSING:
        if verb in "vT" or depth > 0:  # a nil inside a container prints as <nil> for any verb
            return _pad("<nil>", sp)
        return _bad(verb, None)
    t = type(v)
    if t is str:
        return _fmt_str(v, verb, sp)
    if t is bool:
        return _fmt_bool(v, verb, sp)
    if t is int:
        return _fmt_int(v, verb, sp)
    if t is float:
        return _fmt_float(v, verb, sp)
    if isinstance(v, GoStruct):
        if verb in "vsqxX":
            s = v.go_string()
            if s is not None:
                return _fmt_str(s, "s" if verb == "v" else verb, sp)
        fields = " ".join(format_value(getattr(v, f), verb, sp, depth + 1) for f in v._go_fields)
        prefix = "&" if v._go_pointer and depth == 0 else ""
        if v._go_pointer and depth > 0:
            return "0xc000010000"
        return prefix + "{" + fields + "}"
    if isinstance(v, (GoSlice, OrderedMap)) and hasattr(v, "go_string"):
        s = v.go_string()
        if s is not None and verb in "vsqxX":
            return _fmt_str(s, "s" if verb == "v" else verb, sp)
    if isinstance(v, str):
        return _fmt_str(str(v), verb, sp)
    if isinstance(v, bool):
        return _fmt_bool(bool(v), verb, sp)
    if isinstance(v, int):
        return _fmt_int(int(v), verb, sp)
    if isinstance(v, float):
        return _fmt_float(float(v), verb, sp)
    if isinstance(v, complex):
        return _fmt_complex(v, verb, sp)
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(format_value(e, verb, sp, depth + 1) for e in v) + "]"
    if isinstance(v, dict):
        parts = []
        for k in sorted_keys(v):
            parts.append(format_value(k, verb, sp, depth + 1) + ":" + format_value(v[k], verb, sp, depth + 1))
        return "map[" + " ".join(parts) + "]"
    if callable(v):
        return "0x4a5b60"
    return _pad(str(v), sp)


def _is_string_operand(v: Any) -> bool:
    return isinstance(v, str)


def sprint(args: list[Any] | tuple[Any, ...]) -> str:
    """fmt.Sprint: a space between operands when neither side is a string."""
    out = []
    prev_str = True
    for i, a in enumerate(args):
        is_str = _is_string_operand(a)
        if i > 0 and not is_str and not prev_str:
            out.append(" ")
        out.append(format_value(a))
        prev_str = is_str
    return "".join(out)


def sprintln(args: list[Any] | tuple[Any, ...]) -> str:
    return " ".join(format_value(a) for a in args) + "\n"


def _arg_number(fmt: str, i: int) -> tuple[int, int] | None:
    """An explicit argument index ``[n]`` at ``fmt[i]`` (Go's argNumber): (0-based index, end) or None."""
    if i < len(fmt) and fmt[i] == "[":
        k = fmt.find("]", i)
        if k > 0 and fmt[i + 1:k].isdigit():
            return int(fmt[i + 1:k]) - 1, k + 1
    return None


# Go's fmt refuses widths and precisions beyond a million (tooLarge): without the cap a 40-byte template
# could render gigabytes.
MAX_WIDTH = 1_000_000


def _parse_num(fmt: str, i: int) -> tuple[int | None, int]:
    """The decimal number at ``fmt[i]`` (Go's parsenum): (the number, or None without digits; end). As in
    Go, a number that grows past MAX_WIDTH gives up and consumes the rest of the format."""
    n = len(fmt)
    num: int | None = None
    while i < n and "0" <= fmt[i] <= "9":
        if num is not None and num > MAX_WIDTH:
            return None, n
        num = (num or 0) * 10 + ord(fmt[i]) - 48
        i += 1
    return num, i


def _int_arg(args: list[Any] | tuple[Any, ...], argi: int) -> int | None:
    """The operand of a ``*`` width or precision (Go's intFromArg); None when it is missing, no int, or
    beyond ±MAX_WIDTH."""
    if argi < len(args) and isinstance(args[argi], int) and not isinstance(args[argi], bool):
        v = int(args[argi])
        return v if -MAX_WIDTH <= v <= MAX_WIDTH else None
    return None


def sprintf(fmt: str, args: list[Any] | tuple[Any, ...]) -> str:
    """fmt.Sprintf, including Go's in-band error strings for bad verbs and argument counts."""
    out: list[str] = []
    n = len(fmt)
    i = 0
    argi = 0
    reordered = False
    while i < n:
        j = fmt.find("%", i)
        if j < 0:
            out.append(fmt[i:])
            break
        out.append(fmt[i:j])
        i = j + 1
        if i >= n:
            out.append("%!(NOVERB)")
            break
        sp = _Spec()
        while i < n and fmt[i] in "+-# 0":
            c = fmt[i]
            if c == "+":
                sp.plus = True
            elif c == "-":
                sp.minus = True
                sp.zero = False
            elif c == "#":
                sp.sharp = True
            elif c == " ":
                sp.space = True
            elif c == "0":
                sp.zero = not sp.minus
            i += 1
        found = _arg_number(fmt, i)
        if found is not None:
            (argi, i), reordered = found, True
        if i < n and fmt[i] == "*":
            i += 1
            sp.width = _int_arg(args, argi)
            if sp.width is None:
                out.append("%!(BADWIDTH)")
            elif sp.width < 0:
                sp.minus, sp.width, sp.zero = True, -sp.width, False
            argi += 1
        else:
            sp.width, i = _parse_num(fmt, i)
        if i + 1 < n and fmt[i] == ".":
            i += 1
            if fmt[i] == "*":
                i += 1
                sp.prec = _int_arg(args, argi)
                if sp.prec is not None and sp.prec < 0:      # Go: a negative precision is a bad one
                    sp.prec = None
                if sp.prec is None:
                    out.append("%!(BADPREC)")
                if argi < len(args):
                    argi += 1
            else:
                prec, i = _parse_num(fmt, i)
                sp.prec = prec or 0
        found = _arg_number(fmt, i)
        if found is not None:
            (argi, i), reordered = found, True
        if i >= n:
            out.append("%!(NOVERB)")
            break
        verb = fmt[i]
        i += 1
        if verb == "%":
            out.append("%")
            continue
        if argi >= len(args) or argi < 0:
            out.append(f"%!{verb}(MISSING)")
            continue
        a = args[argi]
        argi += 1
        if verb == "T":
            out.append(_pad(type_name(a), sp))
            continue
        if verb == "v" and sp.plus:
            sp.plus = False  # %+v only changes struct printing, which prompts never use
        out.append(format_value(a, verb, sp))
    if not reordered and argi < len(args):
        extra = ", ".join(("<nil>" if a is None else f"{type_name(a)}={format_value(a)}") for a in args[argi:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


__all__ = ["format_value", "quote_rune", "sprint", "sprintf", "sprintln"]
