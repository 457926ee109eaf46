"""A parsed Go template with Ollama's function map, cached by text (parse once, execute many).

    >>> GoTemplate("{{ .Prompt }}").execute({"Prompt": "hi"})
    'hi'

Ollama parses every TEMPLATE with `missingkey=zero` and the helpers `json`, `currentDate`,
`yesterdayDate` and `toTypeScriptType`; that is the default here too.
"""
from __future__ import annotations

import datetime as _dt
import threading
from collections import OrderedDict
from typing import Any, Callable

from pyollama.golang.json import marshal
from pyollama.templates.goexec import Program
from pyollama.templates.gofuncs import BUILTINS, Signature
from pyollama.templates.gonodes import FieldNode, ListNode, Node, VariableNode, walk
from pyollama.templates.goparse import ParsedTemplate, parse


def _json(v: Any) -> str:
    # Ollama ignores Marshal's error and prints the empty string (e.g. for NaN).
    try:
        return marshal(v)
    except ValueError:
        return ""


def _today() -> _dt.date:
    return _dt.date.today()


# Ollama accepts a format argument but ignores it (always YYYY-MM-DD); so do we.
def _current_date(*_fmt: str) -> str:
    return _today().strftime("%Y-%m-%d")


def _yesterday_date(*_fmt: str) -> str:
    return (_today() - _dt.timedelta(days=1)).strftime("%Y-%m-%d")


def _to_typescript(v: Any) -> str:
    from pyollama.templates.ollama_types import ToolProperty
    if isinstance(v, ToolProperty):
        return v.to_typescript()
    return "any"


OLLAMA_FUNCS: dict[str, Signature] = {
    "json": Signature(_json, ("any",)),
    "currentDate": Signature(_current_date, (), "string"),
    "yesterdayDate": Signature(_yesterday_date, (), "string"),
    "toTypeScriptType": Signature(_to_typescript, ("any",)),
}

DEFAULT_FUNCS: dict[str, Signature] = {**BUILTINS, **OLLAMA_FUNCS}


class GoTemplate:
    """Go text/template text, parsed and compiled; `execute(data)` renders it.

    `funcs` adds Python functions (name -> callable, all parameters interface{}); `missingkey` is
    Go's option: "zero" (Ollama's choice), "default"/"invalid", or "error".
    Any thread may call `execute` concurrently.
    """

    def __init__(self, text: str, *, funcs: dict[str, Callable[..., Any]] | None = None, name: str = "",
                 missingkey: str = "zero"):
        table = dict(DEFAULT_FUNCS)
        for k, fn in (funcs or {}).items():
            table[k] = Signature(fn, (), "any")
        self.text = text
        self.name = name
        self.funcs = table
        self.parsed: ParsedTemplate = parse(text, frozenset(table), name)
        self.program = Program(self.parsed, table, "default" if missingkey == "invalid" else missingkey)
        self._vars: list[str] | None = None

    @classmethod
    def from_parsed(cls, parsed: ParsedTemplate, funcs: dict[str, Signature] | None = None,
                    missingkey: str = "zero") -> GoTemplate:
        self = cls.__new__(cls)
        self.text = parsed.text
        self.name = parsed.name
        self.funcs = funcs or dict(DEFAULT_FUNCS)
        self.parsed = parsed
        self.program = Program(parsed, self.funcs, missingkey)
        self._vars = None
        return self

    def execute(self, data: Any) -> str:
        """Render with `data` as dot; raises TemplateExecError like Go's Execute would fail."""
        return self.program.execute(data)

    @property
    def root(self) -> ListNode:
        return self.parsed.root

    def vars(self) -> list[str]:
        """Ollama's Template.Vars: every field and variable identifier, lower-cased and sorted."""
        if self._vars is None:
            names: set[str] = set()
            roots: list[Node] = [self.parsed.root, *self.parsed.trees.values()]
            for r in roots:
                for n in walk(r):
                    if isinstance(n, (FieldNode, VariableNode)):
                        names.update(i.lower() for i in n.ident)
            self._vars = sorted(names)
        return self._vars


class _Cache:
    """A small LRU of parsed templates keyed by text: the server renders the same few many times."""

    def __init__(self, size: int = 256):
        self.size = size
        self.lock = threading.Lock()
        self.items: OrderedDict[str, GoTemplate] = OrderedDict()

    def get(self, text: str) -> GoTemplate:
        with self.lock:
            t = self.items.get(text)
            if t is not None:
                self.items.move_to_end(text)
                return t
        t = GoTemplate(text)
        with self.lock:
            self.items[text] = t
            if len(self.items) > self.size:
                self.items.popitem(last=False)
        return t

    def clear(self) -> None:
        with self.lock:
            self.items.clear()


_cache = _Cache()


def parse_cached(text: str) -> GoTemplate:
    """The GoTemplate for `text` with Ollama's defaults, parsed once per process (LRU of 256)."""
    return _cache.get(text)
