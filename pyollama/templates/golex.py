"""Lexer for Go's text/template syntax (the rules of text/template/parse/lex.go).

Trim markers are `{{- ` and ` -}}`: the dash must touch the delimiter and be followed (preceded) by
an ASCII space, tab, CR or LF, and only those four characters are trimmed from the neighbouring
text. `{{-3}}` is therefore the number -3, not a trim marker.
"""
from __future__ import annotations

import unicodedata
from typing import NamedTuple

from pyollama.golang.strconv import quote

# item types
ERROR, BOOL, CHAR, CHAR_CONSTANT, COMMENT, COMPLEX, ASSIGN, DECLARE, EOF, FIELD, IDENTIFIER, \
    LEFT_DELIM, LEFT_PAREN, NUMBER, PIPE, RAW_STRING, RIGHT_DELIM, RIGHT_PAREN, SPACE, STRING, \
    TEXT, VARIABLE = range(22)
KEYWORD = 100
BLOCK, BREAK, CONTINUE, DOT, DEFINE, ELSE, END, IF, NIL, RANGE, TEMPLATE, WITH = range(101, 113)

KEYWORDS = {".": DOT, "block": BLOCK, "break": BREAK, "continue": CONTINUE, "define": DEFINE,
            "else": ELSE, "end": END, "if": IF, "range": RANGE, "nil": NIL, "template": TEMPLATE,
            "with": WITH}

SPACE_CHARS = " \t\r\n"
LEFT, RIGHT = "{{", "}}"


class Item(NamedTuple):
    typ: int
    pos: int
    val: str
    line: int

    def __str__(self) -> str:
        if self.typ == EOF:
            return "EOF"
        if self.typ == ERROR:
            return self.val
        if self.typ > KEYWORD:
            return f"<{self.val}>"
        if len(self.val) > 10:
            return quote(self.val[:10]) + "..."
        return quote(self.val)


def _is_alnum(c: str) -> bool:
    return c == "_" or c.isalpha() or (c.isdigit() and unicodedata.category(c) == "Nd")


def _has_left_trim(s: str, i: int) -> bool:
    return len(s) >= i + 2 and s[i] == "-" and s[i + 1] in SPACE_CHARS


def _has_right_trim(s: str, i: int) -> bool:
    return len(s) >= i + 2 and s[i] in SPACE_CHARS and s[i + 1] == "-"


class _Lexer:
    def __init__(self, text: str) -> None:
        self.s = text
        self.pos = 0
        self.start = 0
        self.line = 1
        self.start_line = 1
        self.items: list[Item] = []
        self.paren_depth = 0
        self.done = False

    # -- helpers ----------------------------------------------------------------------------------
    def emit(self, typ: int) -> None:
        self.items.append(Item(typ, self.start, self.s[self.start:self.pos], self.start_line))
        self.line += self.s.count("\n", self.start, self.pos)
        self.start = self.pos
        self.start_line = self.line

    def ignore(self) -> None:
        self.line += self.s.count("\n", self.start, self.pos)
        self.start = self.pos
        self.start_line = self.line

    def error(self, msg: str) -> None:
        self.items.append(Item(ERROR, self.start, msg, self.start_line))
        self.done = True

    def peek(self) -> str:
        return self.s[self.pos] if self.pos < len(self.s) else ""

    def at_right_delim(self) -> tuple[bool, bool]:
        s, p = self.s, self.pos
        if _has_right_trim(s, p) and s.startswith(RIGHT, p + 2):
            return True, True
        if s.startswith(RIGHT, p):
            return True, False
        return False, False

    def at_terminator(self) -> bool:
        c = self.peek()
        if c == "" or c in SPACE_CHARS or c in ".,|:)(":
            return True
        return self.s.startswith(RIGHT, self.pos)

    # -- states -----------------------------------------------------------------------------------
    def run(self) -> list[Item]:
        while not self.done:
            self.lex_text()
        return self.items

    def lex_text(self) -> None:
        s = self.s
        x = s.find(LEFT, self.pos)
        if x < 0:
            self.pos = len(s)
            if self.pos > self.start:
                self.emit(TEXT)
            self.items.append(Item(EOF, self.pos, "", self.line))
            self.done = True
            return
        if x > self.pos or x > self.start:
            self.pos = x
            trim = 0
            if _has_left_trim(s, x + len(LEFT)):
                text = s[self.start:x]
                trim = len(text) - len(text.rstrip(SPACE_CHARS))
            self.pos = x - trim
            if self.pos > self.start:
                self.emit(TEXT)
            self.pos = x
            self.ignore()
        self.lex_left_delim()

    def lex_left_delim(self) -> None:
        s = self.s
        self.pos += len(LEFT)
        trim = _has_left_trim(s, self.pos)
        after = 2 if trim else 0
        if s.startswith("/*", self.pos + after):
            self.pos += after
            self.ignore()
            self.lex_comment()
            return
        self.emit(LEFT_DELIM)
        self.pos += after
        self.ignore()
        self.paren_depth = 0
        self.lex_inside_action()

    def lex_comment(self) -> None:
        s = self.s
        self.pos += 2
        x = s.find("*/", self.pos)
        if x < 0:
            self.error("unclosed comment")
            return
        self.pos = x + 2
        delim, trim = self.at_right_delim()
        if not delim:
            self.error("comment ends before closing delimiter")
            return
        if trim:
            self.pos += 2
        self.pos += len(RIGHT)
        if trim:
            rest = s[self.pos:]
            self.pos += len(rest) - len(rest.lstrip(SPACE_CHARS))
        self.ignore()

    def lex_right_delim(self, trim: bool) -> None:
        if trim:
            self.pos += 2
            self.ignore()
        self.pos += len(RIGHT)
        self.emit(RIGHT_DELIM)
        if trim:
            rest = self.s[self.pos:]
            self.pos += len(rest) - len(rest.lstrip(SPACE_CHARS))
            self.ignore()

    def lex_inside_action(self) -> None:
        s = self.s
        while not self.done:
            delim, trim = self.at_right_delim()
            if delim:
                if self.paren_depth == 0:
                    self.lex_right_delim(trim)
                    return
                self.error("unclosed left paren")
                return
            if self.pos >= len(s):
                self.error("unclosed action")
                return
            c = s[self.pos]
            self.pos += 1
            if c in SPACE_CHARS:
                self.pos -= 1
                self.lex_space()
            elif c == "=":
                self.emit(ASSIGN)
            elif c == ":":
                if self.peek() != "=":
                    self.error("expected :=")
                    return
                self.pos += 1
                self.emit(DECLARE)
            elif c == "|":
                self.emit(PIPE)
            elif c == '"':
                self.lex_quote()
            elif c == "`":
                self.lex_raw_quote()
            elif c == "$":
                self.lex_variable()
            elif c == "'":
                self.lex_char()
            elif c == "." and self.pos < len(s) and not ("0" <= s[self.pos] <= "9"):
                self.lex_field_or_variable(FIELD)
            elif c in "+-." or "0" <= c <= "9":
                self.pos -= 1
                self.lex_number()
            elif _is_alnum(c):
                self.pos -= 1
                self.lex_identifier()
            elif c == "(":
                self.paren_depth += 1
                self.emit(LEFT_PAREN)
            elif c == ")":
                self.paren_depth -= 1
                if self.paren_depth < 0:
                    self.error("unexpected right paren")
                    return
                self.emit(RIGHT_PAREN)
            elif ord(c) < 0x80 and c.isprintable():
                self.emit(CHAR)
            else:
                self.error(f"unrecognized character in action: {_fmt_rune(c)}")
                return

    def lex_space(self) -> None:
        s = self.s
        n = 0
        while self.pos < len(s) and s[self.pos] in SPACE_CHARS:
            self.pos += 1
            n += 1
        # A trim-marked closing delimiter starts with a space: leave that space to it.
        if _has_right_trim(s, self.pos - 1) and s.startswith(RIGHT, self.pos + 1):
            self.pos -= 1
            if n == 1:
                return
        self.emit(SPACE)

    def lex_identifier(self) -> None:
        s = self.s
        while self.pos < len(s) and _is_alnum(s[self.pos]):
            self.pos += 1
        word = s[self.start:self.pos]
        if not self.at_terminator():
            self.error(f"bad character {_fmt_rune(self.peek())}")
            return
        if word in KEYWORDS and KEYWORDS[word] > KEYWORD:
            self.emit(KEYWORDS[word])
        elif word in ("true", "false"):
            self.emit(BOOL)
        else:
            self.emit(IDENTIFIER)

    def lex_variable(self) -> None:
        if self.at_terminator():
            self.emit(VARIABLE)
            return
        self.lex_field_or_variable(VARIABLE)

    def lex_field_or_variable(self, typ: int) -> None:
        if self.at_terminator():
            self.emit(VARIABLE if typ == VARIABLE else DOT)
            return
        s = self.s
        while self.pos < len(s) and _is_alnum(s[self.pos]):
            self.pos += 1
        if not self.at_terminator():
            self.error(f"bad character {_fmt_rune(self.peek())}")
            return
        self.emit(typ)

    def lex_char(self) -> None:
        self._lex_escaped("'", "unterminated character constant", CHAR_CONSTANT)

    def _lex_escaped(self, end: str, unterminated: str, typ: int) -> None:
        """Scan to the closing ``end``, past backslash escapes (Go's lexChar and lexQuote)."""
        s = self.s
        while True:
            c = s[self.pos] if self.pos < len(s) else ""
            self.pos += 1
            if c == "\\":
                c2 = s[self.pos] if self.pos < len(s) else ""
                if c2 and c2 != "\n":
                    self.pos += 1
                    continue
                self.error(unterminated)
                return
            if c in ("", "\n"):
                self.error(unterminated)
                return
            if c == end:
                break
        self.emit(typ)

    def _scan_number(self) -> bool:
        s = self.s

        def accept(valid: str) -> bool:
            if self.pos < len(s) and s[self.pos] in valid:
                self.pos += 1
                return True
            return False

        def accept_run(valid: str) -> None:
            while self.pos < len(s) and s[self.pos] in valid:
                self.pos += 1

        accept("+-")
        digits = "0123456789_"
        if accept("0"):
            if accept("xX"):
                digits = "0123456789abcdefABCDEF_"
            elif accept("oO"):
                digits = "01234567_"
            elif accept("bB"):
                digits = "01_"
        accept_run(digits)
        if accept("."):
            accept_run(digits)
        if len(digits) == 11 and accept("eE"):
            accept("+-")
            accept_run("0123456789_")
        if len(digits) == 23 and accept("pP"):
            accept("+-")
            accept_run("0123456789_")
        accept("i")
        if self.pos < len(s) and _is_alnum(s[self.pos]):
            self.pos += 1
            return False
        return True

    def lex_number(self) -> None:
        if not self._scan_number():
            self.error(f"bad number syntax: {quote(self.s[self.start:self.pos])}")
            return
        if self.peek() in ("+", "-") and self.peek() != "":
            if not self._scan_number() or self.s[self.pos - 1] != "i":
                self.error(f"bad number syntax: {quote(self.s[self.start:self.pos])}")
                return
            self.emit(COMPLEX)
            return
        self.emit(NUMBER)

    def lex_quote(self) -> None:
        self._lex_escaped('"', "unterminated quoted string", STRING)

    def lex_raw_quote(self) -> None:
        x = self.s.find("`", self.pos)
        if x < 0:
            self.error("unterminated raw quoted string")
            return
        self.pos = x + 1
        self.emit(RAW_STRING)


def _fmt_rune(c: str) -> str:
    """Go's %#U: U+0021 '!'."""
    if not c:
        return "U+FFFFFFFFFFFFFFFF"
    o = ord(c)
    s = "U+%04X" % o
    if c.isprintable():
        s += " '" + c + "'"
    return s


def lex(text: str) -> list[Item]:
    """All items of `text`, ending with EOF or with an ERROR item."""
    return _Lexer(text).run()


def line_col(text: str, pos: int) -> tuple[int, int]:
    """1-based line and 0-based byte column of `pos` (text/template's ErrorContext convention)."""
    before = text[:pos]
    nl = before.rfind("\n")
    line = before.count("\n") + 1
    col = len(before[nl + 1:].encode("utf-8", "surrogatepass"))
    return line, col
