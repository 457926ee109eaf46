"""How Python values stand in for Go values inside the template engine.

Go's text/template works on reflect.Values; we map them onto plain Python objects:

    Go                         Python
    invalid reflect.Value      MISSING (prints "<no value>")
    nil interface / pointer    None
    string, bool, int          str, bool, int
    float64, complex128        float, complex
    []T                        list / tuple
    map[string]T               dict (ranged and printed in sorted key order, as Go does)
    struct / *struct           a GoStruct subclass (fixed fields, optional String() method)
    func                       a Python callable (for the `call` builtin)

Keeping the mapping in one place lets the executor, fmt and json modules agree on kinds and on the
type names that appear in Go's error messages.
"""
from __future__ import annotations

from typing import Any, Callable, ClassVar


class _Missing:
    """Go's invalid reflect.Value: what a missing key or a nil interface becomes in a pipeline."""

    __slots__ = ()
    _instance: ClassVar[_Missing | None] = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING = _Missing()


class GoStruct:
    """Base for Python objects that behave like Go structs in templates.

    Subclasses list their exported Go fields, in Go's order, as `_json_fields` (field, json name,
    omitempty; attribute names equal Go names) — `_go_fields` is derived from it — and may define
    `go_string()` when the Go type is a fmt.Stringer (then templates print that instead of `{f1 f2}`).
    """

    __slots__ = ()
    _go_type: ClassVar[str] = "struct"
    _go_pointer: ClassVar[bool] = False
    _go_fields: ClassVar[tuple[str, ...]] = ()
    _json_fields: ClassVar[tuple[tuple[str, str, bool], ...]] = ()
    _go_methods: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if "_json_fields" in cls.__dict__:
            cls._go_fields = tuple(f for f, _, _ in cls._json_fields)

    def go_string(self) -> str | None:
        """The result of the Go type's String() method, or None when it is not a Stringer."""
        return None

    def go_json(self) -> Any:
        """A JSON-marshallable stand-in (None means: use `_json_fields`)."""
        return None


class OrderedMap(dict):  # type: ignore[type-arg]
    """A JSON object whose keys keep insertion order when marshalled (Ollama's ordered arguments).

    `range` still visits keys in sorted order, like the Go map it replaces in templates.
    """

    __slots__ = ()
    go_type = "map[string]interface {}"

    def go_json(self) -> Any:
        return self


class GoSlice(list):  # type: ignore[type-arg]
    """A list with a Go type name and an optional String() method (e.g. api.Tools)."""

    __slots__ = ()
    go_type = "[]interface {}"

    def go_string(self) -> str | None:
        return None

    def go_json(self) -> Any:
        return list(self)


# Python type → Go's name for it, in test order (bool before int: a bool is an int in Python).
_GO_NAMES: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (bool, "bool"), (int, "int"), (float, "float64"), (complex, "complex128"), (str, "string"),
    ((list, tuple), "[]interface {}"), (dict, "map[string]interface {}"))


def type_name(v: Any) -> str:
    """Go's spelling of the dynamic type of `v`, for error messages and %T-like output."""
    if v is None or v is MISSING:
        return "<nil>"
    if isinstance(v, GoStruct):
        return v._go_type
    if isinstance(v, (GoSlice, OrderedMap)):
        return v.go_type
    for t, name in _GO_NAMES:
        if isinstance(v, t):
            return name
    if callable(v):
        return "func(...interface {}) interface {}"
    return type(v).__name__


# Kinds, as reflect.Kind would classify the values (only the ones templates care about).
K_INVALID, K_NIL, K_BOOL, K_INT, K_FLOAT, K_COMPLEX, K_STRING, K_SLICE, K_MAP, K_STRUCT, K_FUNC = range(11)


def kind(v: Any) -> int:
    if v is MISSING:
        return K_INVALID
    if v is None:
        return K_NIL
    t = type(v)
    if t is str:
        return K_STRING
    if t is bool:
        return K_BOOL
    if t is int:
        return K_INT
    if t is float:
        return K_FLOAT
    if isinstance(v, str):
        return K_STRING
    if isinstance(v, bool):
        return K_BOOL
    if isinstance(v, int):
        return K_INT
    if isinstance(v, float):
        return K_FLOAT
    if isinstance(v, complex):
        return K_COMPLEX
    if isinstance(v, (list, tuple)):
        return K_SLICE
    if isinstance(v, dict):
        return K_MAP
    if isinstance(v, GoStruct):
        return K_STRUCT
    if callable(v):
        return K_FUNC
    return K_STRUCT


def is_true(v: Any) -> bool:
    """Go's template truth: false, 0, nil, and empty string/slice/map are false; structs are true."""
    t = type(v)
    if t is str or t is bool or t is int or t is list:
        return bool(v)
    if v is None or v is MISSING:
        return False
    if isinstance(v, GoStruct):
        return True
    if isinstance(v, (str, list, tuple, dict, bool, int, float, complex)):
        return bool(v)
    return True


Func = Callable[..., Any]
