"""text/template's builtin functions (funcs.go) with Go's argument rules and error messages.

Each function is registered with a signature: the kind of each parameter decides how the executor
converts arguments, exactly as reflect does in Go:
  "value"  reflect.Value parameter: a missing value stays MISSING (and, or, len, index, eq, ...);
  "any"    interface{} parameter: a missing value becomes nil (print, printf args, json);
  "string" string parameter: anything but a string is an error (printf's format).
Functions raise FuncError for Go's `error` results; the executor adds "error calling NAME: ".
"""
from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Any, Callable

from pyollama.golang.fmt import format_value, sprint, sprintf, sprintln
from pyollama.golang.strconv import is_print
from pyollama.golang.values import (
    K_BOOL, K_COMPLEX, K_FLOAT, K_INT, K_INVALID, K_STRING, MISSING, GoStruct,
    is_true, kind, type_name,
)


class FuncError(Exception):
    """A Go function returned a non-nil error."""


@dataclass(frozen=True)
class Signature:
    fn: Callable[..., Any]
    params: tuple[str, ...]      # kinds of the fixed parameters
    variadic: str | None = None  # kind of the variadic parameter, if any

    @property
    def fixed(self) -> int:
        return len(self.params)


# -- helpers ---------------------------------------------------------------------------------------
def _iface(v: Any) -> Any:
    """indirectInterface: a nil interface becomes the invalid value."""
    return MISSING if v is None else v


def truth(v: Any) -> bool:
    return is_true(v)


def _basic(v: Any) -> int:
    k = kind(v)
    if k in (K_BOOL, K_INT, K_FLOAT, K_COMPLEX, K_STRING):
        return k
    return K_INVALID


# -- builtins --------------------------------------------------------------------------------------
def f_not(v: Any) -> bool:
    return not is_true(v)


def f_len(v: Any) -> int:
    if v is None:
        raise FuncError("len of nil pointer")
    if v is MISSING:
        raise FuncError("reflect: call of reflect.Value.Type on zero Value")
    if isinstance(v, str):
        return len(v.encode("utf-8", "surrogatepass"))
    if isinstance(v, (list, tuple, dict)):
        return len(v)
    raise FuncError(f"len of type {type_name(v)}")


def _index_arg(i: Any, cap: int) -> int:
    i = _iface(i)
    if i is MISSING:
        raise FuncError("cannot index slice/array with nil")
    if kind(i) != K_INT:
        raise FuncError(f"cannot index slice/array with type {type_name(i)}")
    if i < 0 or i > cap:
        raise FuncError(f"index out of range: {i}")
    return int(i)


def f_index(item: Any, *indexes: Any) -> Any:
    item = _iface(item)
    if item is MISSING:
        raise FuncError("index of untyped nil")
    for idx in indexes:
        if item is None:
            raise FuncError("index of nil pointer")
        if isinstance(item, str):
            b = item.encode("utf-8", "surrogatepass")
            x = _index_arg(idx, len(b))
            if x == len(b):
                raise FuncError("reflect: string index out of range")
            item = b[x]
        elif isinstance(item, (list, tuple)):
            x = _index_arg(idx, len(item))
            if x == len(item):
                raise FuncError("reflect: slice index out of range")
            item = item[x]
        elif isinstance(item, dict):
            idx = _iface(idx)
            if idx is MISSING:
                raise FuncError("value is nil; should be of type string")
            if not isinstance(idx, str):
                raise FuncError(f"value has type {type_name(idx)}; should be string")
            item = item.get(idx)
        else:
            raise FuncError(f"can't index item of type {type_name(item)}")
    return item


def f_slice(item: Any, *indexes: Any) -> Any:
    item = _iface(item)
    if item is MISSING:
        raise FuncError("slice of untyped nil")
    if len(indexes) > 3:
        raise FuncError(f"too many slice indexes: {len(indexes)}")
    if isinstance(item, str):
        if len(indexes) == 3:
            raise FuncError("cannot 3-index slice a string")
        seq: Any = item.encode("utf-8", "surrogatepass")
    elif isinstance(item, (list, tuple)):
        seq = item
    else:
        raise FuncError(f"can't slice item of type {type_name(item)}")
    cap = len(seq)
    idx = [0, len(seq), 0]
    for i, x in enumerate(indexes):
        idx[i] = _index_arg(x, cap)
    if idx[0] > idx[1]:
        raise FuncError(f"invalid slice index: {idx[0]} > {idx[1]}")
    if len(indexes) == 3 and idx[1] > idx[2]:
        raise FuncError(f"invalid slice index: {idx[1]} > {idx[2]}")
    out = seq[idx[0]:idx[1]]
    if isinstance(out, bytes):
        return out.decode("utf-8", "replace")
    return list(out)


def _comparable(v: Any) -> bool:
    return not isinstance(v, (list, tuple, dict)) and not callable(v)


_FAST_EQ = (str, int, float)


def f_eq(arg1: Any, *arg2: Any) -> bool:
    if len(arg2) == 1:
        t = type(arg1)
        if t is type(arg2[0]) and t in _FAST_EQ:  # the common `eq .Role "user"`
            return arg1 == arg2[0]  # type: ignore[no-any-return]
    arg1 = _iface(arg1)
    if not arg2:
        raise FuncError("missing argument for comparison")
    k1 = _basic(arg1)
    for arg in arg2:
        arg = _iface(arg)
        k2 = _basic(arg)
        if k1 != k2:
            if arg1 is not MISSING and arg is not MISSING:
                raise FuncError(f"incompatible types for comparison: {type_name(arg1)} and {type_name(arg)}")
            continue
        if k1 != K_INVALID:
            if arg1 == arg:
                return True
            continue
        # both non-basic: same reflect kind, or one invalid
        ka, kb = kind(arg1), kind(arg)
        if ka != kb and ka != K_INVALID and kb != K_INVALID:
            raise FuncError(f"non-comparable types {format_value(arg1, 's')}: {type_name(arg1)}, "
                            f"{type_name(arg)}: {format_value(arg)}")
        if arg1 is MISSING or arg is MISSING:
            if (arg1 is MISSING) == (arg is MISSING):
                return True
            continue
        if not _comparable(arg):
            raise FuncError(f"non-comparable type {format_value(arg, 's')}: {type_name(arg)}")
        if arg1 is arg or (isinstance(arg1, GoStruct) and arg1 == arg):
            return True
    return False


def f_ne(a: Any, b: Any) -> bool:
    return not f_eq(a, b)


def f_lt(a: Any, b: Any) -> bool:
    a, b = _iface(a), _iface(b)
    k1, k2 = _basic(a), _basic(b)
    if k1 == K_INVALID or k2 == K_INVALID:
        raise FuncError("invalid type for comparison")
    if k1 != k2:
        raise FuncError(f"incompatible types for comparison: {type_name(a)} and {type_name(b)}")
    if k1 in (K_BOOL, K_COMPLEX):
        raise FuncError("invalid type for comparison")
    if k1 == K_STRING:
        return a.encode("utf-8", "surrogatepass") < b.encode("utf-8", "surrogatepass")  # type: ignore[no-any-return]
    return a < b  # type: ignore[no-any-return]


def f_le(a: Any, b: Any) -> bool:
    return f_lt(a, b) or f_eq(a, b)


def f_gt(a: Any, b: Any) -> bool:
    return not f_le(a, b)


def f_ge(a: Any, b: Any) -> bool:
    return not f_lt(a, b)


def _eval_args(args: tuple[Any, ...]) -> str:
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return sprint(list(args))


def html_escape(s: str) -> str:
    if not any(c in s for c in "'\"&<>\x00"):
        return s
    return (s.replace("&", "&amp;").replace("'", "&#39;").replace('"', "&#34;").replace("<", "&lt;")
            .replace(">", "&gt;").replace("\x00", "\ufffd"))


_JS_ESC = {"\\": "\\\\", "'": "\\'", '"': '\\"', "<": "\\u003C", ">": "\\u003E", "&": "\\u0026", "=": "\\u003D",
           **{chr(o): f"\\u{o:04X}" for o in range(0x20)}}


def js_escape(s: str) -> str:
    """text/template's JSEscapeString."""
    out = []
    for c in s:
        e = _JS_ESC.get(c)
        if e is None and c >= "\x80" and not is_print(c):
            e = f"\\u{ord(c):04X}"
        out.append(c if e is None else e)
    return "".join(out)


def f_html(*args: Any) -> str:
    return html_escape(_eval_args(args))


def f_js(*args: Any) -> str:
    return js_escape(_eval_args(args))


def f_urlquery(*args: Any) -> str:
    return urllib.parse.quote_plus(_eval_args(args), safe="~")


def f_print(*args: Any) -> str:
    return sprint(args)


def f_println(*args: Any) -> str:
    return sprintln(args)


def f_printf(fmt: str, *args: Any) -> str:
    return sprintf(fmt, args)


def f_call(name: str, fn: Any, *args: Any) -> Any:
    """call: `name` is how the template spelled the callee (Go quotes it in errors)."""
    fn = _iface(fn)
    if fn is MISSING:
        raise FuncError("call of nil")
    if not callable(fn):
        raise FuncError(f"non-function {name} of type {type_name(fn)}")
    try:
        return fn(*[None if a is MISSING else a for a in args])
    except FuncError:
        raise
    except Exception as e:  # a user function failed: Go's call returns its error
        raise FuncError(str(e)) from e


BUILTINS: dict[str, Signature] = {
    "and": Signature(lambda *a: None, ("value",), "value"),   # special-cased: short-circuits
    "or": Signature(lambda *a: None, ("value",), "value"),    # special-cased: short-circuits
    "call": Signature(f_call, ("value",), "value"),
    "html": Signature(f_html, (), "any"),
    "index": Signature(f_index, ("value",), "value"),
    "slice": Signature(f_slice, ("value",), "value"),
    "js": Signature(f_js, (), "any"),
    "len": Signature(f_len, ("value",)),
    "not": Signature(f_not, ("value",)),
    "print": Signature(f_print, (), "any"),
    "printf": Signature(f_printf, ("string",), "any"),
    "println": Signature(f_println, (), "any"),
    "urlquery": Signature(f_urlquery, (), "any"),
    "eq": Signature(f_eq, ("value",), "value"),
    "ge": Signature(f_ge, ("value", "value")),
    "gt": Signature(f_gt, ("value", "value")),
    "le": Signature(f_le, ("value", "value")),
    "lt": Signature(f_lt, ("value", "value")),
    "ne": Signature(f_ne, ("value", "value")),
}

__all__ = ["BUILTINS", "FuncError", "Signature", "truth"]
