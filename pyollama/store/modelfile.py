"""Modelfile parser and serializer (docs/contract.md §9; Ollama's ``parser/parser.go``).

Grammar, as Ollama reads it:

* lines ``INSTRUCTION args``; the instruction is case-insensitive letters followed by a space or tab;
  ``#`` starts a comment line; blank lines are skipped; a UTF-8 or UTF-16 BOM is honoured;
* a value is the rest of the line, trimmed — or ``"..."`` / ``\"\"\"...\"\"\"``, which may span lines: the
  value ends at the first newline where the text so far, trimmed, is completely quoted;
* ``PARAMETER <name> <value>`` (name ``[A-Za-z0-9_]+``), typed by :mod:`pyollama.store.options`; ``stop``
  repeats; removed legacy options are kept with a :class:`ModelfileWarning`;
* ``MESSAGE <role> <text>`` with role system/user/assistant;
* non-printable characters other than tab and newline are dropped (Go's ``strconv.IsPrint`` filter).

Errors raise :class:`~pyollama.errors.ModelfileError` with Ollama's ``(line N): ...`` prefix.

:func:`serialize` writes the form ``ollama show --modelfile`` prints; ``parse(serialize(m)) == m`` for
every value that the grammar can represent (see :func:`representable`).

Thread-safety: pure functions.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from typing import Any

from pyollama.errors import ModelfileError
from pyollama.store import options as opts

INSTRUCTIONS = ("from", "license", "template", "system", "adapter", "draft", "renderer", "parser",
                "parameter", "message", "requires")
ROLES = ("system", "user", "assistant")
_INVALID_COMMAND = ('command must be one of "from", "license", "template", "system", "adapter", "draft", '
                    '"renderer", "parser", "parameter", "message", or "requires"')
_SEMVER_RE = re.compile(r"v?(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*)){0,2}(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?")


class ModelfileWarning(UserWarning):
    """A Modelfile construct that is accepted but ignored (removed legacy PARAMETERs)."""


@dataclass(frozen=True)
class Command:
    """One instruction. ``key`` is the PARAMETER name or the MESSAGE role; ``value`` is unquoted text."""

    instruction: str            # upper case: FROM, PARAMETER, ...
    value: str
    key: str = ""
    line: int = field(default=0, compare=False)


@dataclass
class Modelfile:
    commands: list[Command] = field(default_factory=list)

    # -- typed views ------------------------------------------------------------------------------
    def values(self, instruction: str) -> list[str]:
        return [c.value for c in self.commands if c.instruction == instruction]

    def first(self, instruction: str) -> str | None:
        v = self.values(instruction)
        return v[-1] if v else None   # Ollama: a later TEMPLATE/SYSTEM/... replaces an earlier one

    @property
    def from_(self) -> str:
        v = self.values("FROM")
        if not v:
            raise ModelfileError("no FROM line")
        return v[0]

    def parameters(self) -> dict[str, Any]:
        """Typed PARAMETERs; ``stop`` accumulates into a list; removed options are left out."""
        out: dict[str, Any] = {}
        for c in self.commands:
            if c.instruction != "PARAMETER" or c.key in opts.REMOVED_OPTIONS:
                continue
            v = opts.parse_text(c.key, c.value)
            if c.key == "stop":
                out.setdefault("stop", []).append(v)
            else:
                out[c.key] = v
        return out

    def messages(self) -> list[dict[str, str]]:
        return [{"role": c.key, "content": c.value} for c in self.commands if c.instruction == "MESSAGE"]


# -- parsing --------------------------------------------------------------------------------------
def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    if data.startswith(b"\xef\xbb\xbf"):
        data, enc = data[3:], "utf-8"
    elif data.startswith(b"\xff\xfe"):
        data, enc = data[2:], "utf-16-le"
    elif data.startswith(b"\xfe\xff"):
        data, enc = data[2:], "utf-16-be"
    else:
        enc = "utf-8"
    try:
        return data.decode(enc)
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1 if enc == "utf-8" else 0
        raise ModelfileError(_at(line, f"invalid {enc.upper()} text")) from None


def _at(line: int, msg: str) -> str:
    return f"(line {line}): {msg}" if line > 0 else msg


def _quoted_complete(s: str) -> tuple[str, bool]:
    """Ollama's ``unquote``: (value, complete)."""
    if s.startswith('"""'):
        if len(s) >= 6 and s.endswith('"""'):
            return s[3:-3], True
        return "", False
    if s.startswith('"'):
        if len(s) >= 2 and s.endswith('"'):
            return s[1:-1], True
        return "", False
    return s, True


def _printable(s: str) -> str:
    if s.isprintable():
        return s
    return "".join(ch for ch in s if ch.isprintable() or ch == "\t")


_NAME_RE = re.compile(r"[A-Za-z]+")
_PARAM_RE = re.compile(r"[A-Za-z0-9_]+")
_WS = " \t"


def parse(data: bytes | str) -> Modelfile:
    """Parse a Modelfile. Raises ModelfileError (with the line number) on the first problem."""
    text = _decode(data).replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    commands: list[Command] = []
    i = 0
    while i < len(lines):
        lineno = i + 1
        line = _printable(lines[i]).lstrip(_WS)
        i += 1
        if not line or line.startswith("#"):
            continue
        m = _NAME_RE.match(line)
        if not m or m.end() == len(line) or line[m.end()] not in _WS:
            if m and m.group().lower() in INSTRUCTIONS and m.end() == len(line):
                raise ModelfileError(_at(lineno, f"{m.group().upper()} needs a value"))
            raise ModelfileError(_at(lineno, _INVALID_COMMAND))
        instruction = m.group().lower()
        if instruction not in INSTRUCTIONS:
            raise ModelfileError(_at(lineno, _INVALID_COMMAND))
        rest = line[m.end():].lstrip(_WS)
        key = ""
        if instruction in ("parameter", "message"):
            km = (_PARAM_RE if instruction == "parameter" else _NAME_RE).match(rest)
            if not km or km.end() == len(rest) or rest[km.end()] not in _WS:
                what = "a name and a value" if instruction == "parameter" else "a role and a message"
                raise ModelfileError(_at(lineno, f"{instruction.upper()} needs {what}"))
            key = km.group()
            rest = rest[km.end():].lstrip(_WS)
            if instruction == "message":
                key = key.lower()
                if key not in ROLES:
                    raise ModelfileError(_at(lineno, 'message role must be one of "system", "user", or '
                                                     f'"assistant" (got "{km.group()}")'))
        # The value runs on over following lines while a quote is still open.
        buf = rest
        value, complete = _quoted_complete(buf.strip(_WS + "\n"))
        while not complete:
            if i >= len(lines):
                quote = '"""' if buf.lstrip(_WS).startswith('"""') else '"'
                raise ModelfileError(_at(lineno, f"unterminated {quote} value (unexpected end of file)"))
            buf += "\n" + _printable(lines[i])
            i += 1
            value, complete = _quoted_complete(buf.strip(_WS + "\n"))
        commands.append(_check(instruction, key, value, lineno))
    if not any(c.instruction == "FROM" for c in commands):
        raise ModelfileError("no FROM line")
    return Modelfile(commands)


def _check(instruction: str, key: str, value: str, lineno: int) -> Command:
    if instruction == "parameter":
        if key in opts.REMOVED_OPTIONS:
            warnings.warn(f"line {lineno}: parameter {key} is deprecated and ignored", ModelfileWarning,
                          stacklevel=3)
        elif key not in opts.OPTIONS:
            raise ModelfileError(_at(lineno, f"unknown parameter '{key}'"))
        else:
            try:
                opts.parse_text(key, value)
            except opts.OptionError as e:
                raise ModelfileError(_at(lineno, str(e))) from None
    elif instruction == "requires" and not _SEMVER_RE.fullmatch(value):
        raise ModelfileError(_at(lineno, f"requires must be a valid semver (e.g. 0.14.0), got {value!r}"))
    elif instruction in ("from", "adapter", "draft") and not value:
        raise ModelfileError(_at(lineno, f"{instruction.upper()} needs a value"))
    return Command(instruction.upper(), value, key, lineno)


# -- serializing ----------------------------------------------------------------------------------
def _nonfinal_lines(s: str) -> list[str]:
    return s.split("\n")[:-1]


def quote(s: str) -> str:
    """Ollama's ``quote``: values with a newline or edge whitespace get ``"..."``, or ``\"\"\"...\"\"\"`` if
    they contain a quote. Two additions keep ``parse(serialize(x)) == x``: a value starting with ``"`` is
    quoted too, and the triple form is avoided when an inner line would close it early."""
    if "\n" not in s and "\r" not in s and s == s.strip(_WS) and not s.startswith('"'):
        return s
    # The parser ends a line at \r as at \n (as Ollama's does): a value holding one must be quoted too.
    lines = s.replace("\r\n", "\n").replace("\r", "\n")
    triple_ok = not any(line.rstrip(_WS).endswith('"""') for line in _nonfinal_lines('"""' + lines))
    single_ok = '"' not in s or not any(
        line.rstrip(_WS).endswith('"') and len(line.rstrip(_WS)) >= 2 for line in _nonfinal_lines('"' + lines))
    if '"' in s and triple_ok or not single_ok:
        return '"""' + s + '"""'
    return '"' + s + '"'


def representable(s: str) -> bool:
    """Whether ``parse`` gives back exactly ``s`` from ``quote(s)`` (some values cannot be written in
    the Modelfile grammar, e.g. one whose inner lines end in both ``"`` and ``\"\"\"``, or that contains a
    carriage return or a non-printable character)."""
    if any(not (ch.isprintable() or ch in "\t\n") for ch in s):
        return False
    try:
        m = parse("FROM x\nSYSTEM " + quote(s) + "\n")
    except ModelfileError:
        return False
    return m.commands[-1].value == s


def command_line(c: Command) -> str:
    if c.instruction == "PARAMETER":
        return f"PARAMETER {c.key} {quote(c.value)}"
    if c.instruction == "MESSAGE":
        return f"MESSAGE {c.key} {quote(c.value)}"
    return f"{c.instruction} {quote(c.value)}"


def serialize(mf: Modelfile) -> str:
    """One line (or quoted block) per command, each ending in a newline (Go's ``Modelfile.String``)."""
    return "".join(command_line(c) + "\n" for c in mf.commands)
