"""Parser for Go's text/template (the grammar of text/template/parse/parse.go).

Errors keep Go's wording (`unexpected EOF`, `function "foo" not defined`, `unclosed action`) and
add the column: `template: NAME:LINE:COL: message`, with Go's convention of a 1-based line and a
0-based byte column.
"""
from __future__ import annotations

import re

from pyollama.errors import TemplateParseError
from pyollama.golang.strconv import quote
from pyollama.templates import golex as L
from pyollama.templates.gonodes import (
    ActionNode, BoolNode, BranchNode, BreakNode, ChainNode, CommandNode, ContinueNode, DotNode,
    ElseNode, EndNode, FieldNode, IdentifierNode, IfNode, ListNode, NilNode, Node, NumberNode,
    PipeNode, RangeNode, StringNode, TemplateNode, TextNode, VariableNode, WithNode,
)

MAX_STACK_DEPTH = 10000


class ParsedTemplate:
    """The result of parsing: the main tree plus the {{define}}/{{block}} trees, by name."""

    __slots__ = ("name", "text", "root", "trees")

    def __init__(self, name: str, text: str, root: ListNode, trees: dict[str, ListNode]):
        self.name = name
        self.text = text
        self.root = root
        self.trees = trees


def _err(name: str, text: str, pos: int, msg: str) -> TemplateParseError:
    line, col = L.line_col(text, min(pos, len(text)))
    return TemplateParseError(f"template: {name}:{line}:{col}: {msg}", line=line, col=col)


# -- literals --------------------------------------------------------------------------------------
_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
            "\\": "\\", "'": "'", '"': '"'}


def unquote(s: str) -> str:
    """strconv.Unquote for "..." , `...` and '...' literals; ValueError on bad syntax."""
    if len(s) < 2:
        raise ValueError("invalid syntax")
    q = s[0]
    if q != s[-1] or q not in "\"'`":
        raise ValueError("invalid syntax")
    body = s[1:-1]
    if q == "`":
        if "`" in body:
            raise ValueError("invalid syntax")
        return body.replace("\r", "")
    out = []
    i = 0
    n = len(body)
    while i < n:
        c = body[i]
        if c == q and q != "`":
            raise ValueError("invalid syntax")
        if c == "\n":
            raise ValueError("invalid syntax")
        if c != "\\":
            out.append(c)
            i += 1
            continue
        if i + 1 >= n:
            raise ValueError("invalid syntax")
        e = body[i + 1]
        if e in _ESCAPES:
            if (e == "'" and q == '"') or (e == '"' and q == "'"):
                raise ValueError("invalid syntax")
            out.append(_ESCAPES[e])
            i += 2
        elif e in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[e]
            h = body[i + 2:i + 2 + width]
            if len(h) != width or not all(ch in "0123456789abcdefABCDEF" for ch in h):
                raise ValueError("invalid syntax")
            v = int(h, 16)
            if e == "x":
                if q == "'":
                    out.append(chr(v))
                else:
                    out.append(bytes([v]).decode("latin-1") if v < 0x80 else chr(0xFFFD))
            else:
                if v > 0x10FFFF or 0xD800 <= v < 0xE000:
                    raise ValueError("invalid syntax")
                out.append(chr(v))
            i += 2 + width
        elif e in "01234567":
            o = body[i + 1:i + 4]
            if len(o) != 3 or not all(ch in "01234567" for ch in o) or int(o, 8) > 255:
                raise ValueError("invalid syntax")
            v = int(o, 8)
            out.append(chr(v) if v < 0x80 else chr(0xFFFD))
            i += 4
        else:
            raise ValueError("invalid syntax")
    r = "".join(out)
    if q == "'" and len(r) != 1:
        raise ValueError("invalid syntax")
    return r


_OCTAL = re.compile(r"^[+-]?0[0-7_]+$")


def _parse_int(text: str) -> int | None:
    t = text
    try:
        if _OCTAL.match(t):
            return int(t.replace("0", "0o", 1) if t[0] == "0" else t[0] + "0o" + t[2:], 0)
        return int(t, 0)
    except ValueError:
        return None


def _parse_float(text: str) -> float | None:
    t = text.replace("_", "")
    try:
        if "x" in t.lower():
            return float.fromhex(t)
        return float(t)
    except ValueError:
        return None


def new_number(pos: int, text: str, typ: int) -> NumberNode:
    n = NumberNode(pos, text)
    if typ == L.CHAR_CONSTANT:
        r = unquote(text)
        n.is_int = n.is_uint = n.is_float = True
        n.int_val = ord(r)
        n.float_val = float(ord(r))
        return n
    if typ == L.COMPLEX:
        try:
            c = complex(text.replace("i", "j"))
        except ValueError:
            raise ValueError(f"illegal number syntax: {quote(text)}") from None
        n.is_complex = True
        n.complex_val = c
        if c.imag == 0:
            n.is_float = True
            n.float_val = c.real
            if c.real == int(c.real):
                n.is_int = True
                n.int_val = int(c.real)
        return n
    if text.endswith("i"):
        f = _parse_float(text[:-1])
        i = _parse_int(text[:-1])
        val = float(i) if i is not None else f
        if val is None:
            raise ValueError(f"illegal number syntax: {quote(text)}")
        n.is_complex = True
        n.complex_val = complex(0, val)
        return n
    i = _parse_int(text)
    if i is not None and -(1 << 63) <= i < (1 << 64):
        if i >= 0:
            n.is_uint = True
        if i < (1 << 63):
            n.is_int = True
            n.int_val = i
            n.is_float = True
            n.float_val = float(i)
        elif n.is_uint:
            n.is_float = True
            n.float_val = float(i)
            n.int_val = i
        return n
    f = _parse_float(text)
    if f is not None:
        if not any(c in text for c in ".eEpP"):
            raise ValueError(f"integer overflow: {quote(text)}")
        n.is_float = True
        n.float_val = f
        if f == int(f) and -(1 << 63) <= f < (1 << 63):
            n.is_int = True
            n.int_val = int(f)
        return n
    raise ValueError(f"illegal number syntax: {quote(text)}")


# -- the parser ------------------------------------------------------------------------------------
class _Parser:
    def __init__(self, text: str, name: str, funcs: frozenset[str] | set[str]):
        self.text = text
        self.name = name
        self.funcs = funcs
        self.items = L.lex(text)
        self.i = 0
        self.vars = ["$"]
        self.range_depth = 0
        self.action_line = 0
        self.trees: dict[str, ListNode] = {}
        self.depth = 0

    # -- token stream ---------------------------------------------------------------------------
    def next(self) -> L.Item:
        if self.i < len(self.items):
            it = self.items[self.i]
            self.i += 1
            return it
        self.i = len(self.items) + 1
        return self.items[-1]

    def backup(self) -> None:
        self.i -= 1

    def peek(self) -> L.Item:
        it = self.next()
        self.backup()
        return it

    def next_non_space(self) -> L.Item:
        while True:
            it = self.next()
            if it.typ != L.SPACE:
                return it

    def peek_non_space(self) -> L.Item:
        it = self.next_non_space()
        self.backup()
        return it

    # -- errors ---------------------------------------------------------------------------------
    def _cur(self) -> L.Item:
        return self.items[min(max(self.i - 1, 0), len(self.items) - 1)]

    def errorf(self, msg: str, pos: int | None = None) -> TemplateParseError:
        return _err(self.name, self.text, self._cur().pos if pos is None else pos, msg)

    def unexpected(self, token: L.Item, context: str) -> TemplateParseError:
        if token.typ == L.ERROR:
            extra = ""
            if self.action_line and self.action_line != token.line:
                extra = f" in action started at {self.name}:{self.action_line}"
                if token.val.endswith(" action"):
                    extra = extra[len(" in action"):]
            return _err(self.name, self.text, token.pos, token.val + extra)
        return _err(self.name, self.text, token.pos, f"unexpected {token} in {context}")

    def expect(self, typ: int, context: str) -> L.Item:
        tok = self.next_non_space()
        if tok.typ != typ:
            raise self.unexpected(tok, context)
        return tok

    # -- grammar --------------------------------------------------------------------------------
    def parse(self) -> ParsedTemplate:
        root = ListNode(self.peek().pos)
        while self.peek().typ != L.EOF:
            if self.peek().typ == L.LEFT_DELIM:
                mark = self.i
                self.next()
                if self.next_non_space().typ == L.DEFINE:
                    self.parse_definition()
                    continue
                self.i = mark
            n = self.text_or_action()
            if isinstance(n, (EndNode, ElseNode)):
                raise self.errorf(f"unexpected {n}", n.pos)
            if n is not None:
                root.nodes.append(n)
        return ParsedTemplate(self.name, self.text, root, self.trees)

    def _add_tree(self, name: str, root: ListNode, pos: int) -> None:
        old = self.trees.get(name)
        if old is None or _is_empty_tree(old):
            self.trees[name] = root
        elif not _is_empty_tree(root):
            raise self.errorf(f"template: multiple definition of template {quote(name)}", pos)

    def _sub_tree(self) -> tuple[ListNode, Node]:
        saved = (self.vars, self.range_depth)
        self.vars, self.range_depth = ["$"], 0
        try:
            return self.item_list()
        finally:
            self.vars, self.range_depth = saved

    def parse_definition(self) -> None:
        context = "define clause"
        tok = self.next_non_space()
        if tok.typ not in (L.STRING, L.RAW_STRING):
            raise self.unexpected(tok, context)
        try:
            name = unquote(tok.val)
        except ValueError as e:
            raise self.errorf(str(e), tok.pos) from None
        self.expect(L.RIGHT_DELIM, context)
        root, end = self._sub_tree()
        if not isinstance(end, EndNode):
            raise self.errorf(f"unexpected {end} in {context}", end.pos)
        self._add_tree(name, root, tok.pos)

    def item_list(self) -> tuple[ListNode, Node]:
        lst = ListNode(self.peek_non_space().pos)
        while self.peek_non_space().typ != L.EOF:
            n = self.text_or_action()
            if isinstance(n, (EndNode, ElseNode)):
                return lst, n
            if n is not None:
                lst.nodes.append(n)
        raise self.errorf("unexpected EOF")

    def text_or_action(self) -> Node | None:
        tok = self.next_non_space()
        if tok.typ == L.TEXT:
            return TextNode(tok.pos, tok.val)
        if tok.typ == L.LEFT_DELIM:
            self.action_line = tok.line
            try:
                return self.action()
            finally:
                self.action_line = 0
        if tok.typ == L.COMMENT:
            return None
        raise self.unexpected(tok, "input")

    def action(self) -> Node:
        tok = self.next_non_space()
        t = tok.typ
        if t == L.BLOCK:
            return self.block_control()
        if t == L.BREAK:
            return self.loop_control(tok, BreakNode, "{{break}}")
        if t == L.CONTINUE:
            return self.loop_control(tok, ContinueNode, "{{continue}}")
        if t == L.ELSE:
            return self.else_control()
        if t == L.END:
            return EndNode(self.expect(L.RIGHT_DELIM, "end").pos)
        if t == L.IF:
            return self.control("if", IfNode)
        if t == L.RANGE:
            return self.control("range", RangeNode)
        if t == L.TEMPLATE:
            return self.template_control()
        if t == L.WITH:
            return self.control("with", WithNode)
        self.backup()
        tok = self.peek()
        return ActionNode(tok.pos, tok.line, self.pipeline("command", L.RIGHT_DELIM))

    def loop_control(self, tok: L.Item, cls: type, name: str) -> Node:
        nxt = self.next_non_space()
        if nxt.typ != L.RIGHT_DELIM:
            raise self.unexpected(nxt, name)
        if self.range_depth == 0:
            raise self.errorf(f"{name} outside {{{{range}}}}", tok.pos)
        return cls(tok.pos, tok.line)  # type: ignore[no-any-return]

    def else_control(self) -> Node:
        pk = self.peek_non_space()
        if pk.typ in (L.IF, L.WITH):
            return ElseNode(pk.pos, pk.line)
        tok = self.expect(L.RIGHT_DELIM, "else")
        return ElseNode(tok.pos, tok.line)

    def control(self, context: str, cls: type[BranchNode]) -> BranchNode:
        mark = len(self.vars)
        try:
            pipe = self.pipeline(context, L.RIGHT_DELIM)
            if context == "range":
                self.range_depth += 1
            lst, nxt = self.item_list()
            if context == "range":
                self.range_depth -= 1
            else_list = None
            if isinstance(nxt, ElseNode):
                if context == "if" and self.peek().typ == L.IF:
                    self.next()
                    else_list = ListNode(nxt.pos, [self.control("if", IfNode)])
                elif context == "with" and self.peek().typ == L.WITH:
                    self.next()
                    else_list = ListNode(nxt.pos, [self.control("with", WithNode)])
                else:
                    else_list, end = self.item_list()
                    if not isinstance(end, EndNode):
                        raise self.errorf(f"expected end; found {end}", end.pos)
            return cls(pipe.pos, pipe.line, pipe, lst, else_list)
        finally:
            del self.vars[mark:]

    def block_control(self) -> Node:
        context = "block clause"
        tok = self.next_non_space()
        name = self.template_name(tok, context)
        pipe = self.pipeline(context, L.RIGHT_DELIM)
        root, end = self._sub_tree()
        if not isinstance(end, EndNode):
            raise self.errorf(f"unexpected {end} in {context}", end.pos)
        self._add_tree(name, root, tok.pos)
        return TemplateNode(tok.pos, tok.line, name, pipe)

    def template_control(self) -> Node:
        context = "template clause"
        tok = self.next_non_space()
        name = self.template_name(tok, context)
        pipe = None
        if self.next_non_space().typ != L.RIGHT_DELIM:
            self.backup()
            pipe = self.pipeline(context, L.RIGHT_DELIM)
        return TemplateNode(tok.pos, tok.line, name, pipe)

    def template_name(self, tok: L.Item, context: str) -> str:
        if tok.typ in (L.STRING, L.RAW_STRING):
            try:
                return unquote(tok.val)
            except ValueError as e:
                raise self.errorf(str(e), tok.pos) from None
        raise self.unexpected(tok, context)

    def pipeline(self, context: str, end: int) -> PipeNode:
        tok = self.peek_non_space()
        pipe = PipeNode(tok.pos, tok.line)
        while True:  # the `decls:` label of parse.go
            v = self.peek_non_space()
            if v.typ != L.VARIABLE:
                break
            mark = self.i
            self.next()
            nxt = self.peek_non_space()
            if nxt.typ in (L.ASSIGN, L.DECLARE):
                pipe.is_assign = nxt.typ == L.ASSIGN
                self.next_non_space()
                pipe.decl.append(VariableNode(v.pos, [v.val]))
                self.vars.append(v.val)
                break
            if nxt.typ == L.CHAR and nxt.val == ",":
                self.next_non_space()
                pipe.decl.append(VariableNode(v.pos, [v.val]))
                self.vars.append(v.val)
                if context == "range" and len(pipe.decl) < 2:
                    if self.peek_non_space().typ in (L.VARIABLE, L.RIGHT_DELIM, L.RIGHT_PAREN):
                        continue
                    raise self.errorf("range can only initialize variables")
                raise self.errorf(f"too many declarations in {context}")
            self.i = mark  # not a declaration: back up to the variable
            break
        while True:
            tok = self.next_non_space()
            if tok.typ == end:
                self.check_pipeline(pipe, context)
                return pipe
            if tok.typ in (L.BOOL, L.CHAR_CONSTANT, L.COMPLEX, L.DOT, L.FIELD, L.IDENTIFIER, L.NUMBER,
                           L.NIL, L.RAW_STRING, L.STRING, L.VARIABLE, L.LEFT_PAREN):
                self.backup()
                pipe.cmds.append(self.command())
            else:
                raise self.unexpected(tok, context)

    def check_pipeline(self, pipe: PipeNode, context: str) -> None:
        if not pipe.cmds:
            raise self.errorf(f"missing value for {context}")
        for i, c in enumerate(pipe.cmds[1:]):
            if isinstance(c.args[0], (BoolNode, DotNode, NilNode, NumberNode, StringNode)):
                raise self.errorf(f"non executable command in pipeline stage {i + 2}", c.pos)

    def command(self) -> CommandNode:
        cmd = CommandNode(self.peek_non_space().pos)
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                cmd.args.append(operand)
            tok = self.next()
            if tok.typ == L.SPACE:
                continue
            if tok.typ in (L.RIGHT_DELIM, L.RIGHT_PAREN):
                self.backup()
            elif tok.typ != L.PIPE:
                raise self.unexpected(tok, "operand")
            break
        if not cmd.args:
            raise self.errorf("empty command")
        return cmd

    def operand(self) -> Node | None:
        node = self.term()
        if node is None:
            return None
        if self.peek().typ == L.FIELD:
            fields = []
            pos = self.peek().pos
            while self.peek().typ == L.FIELD:
                fields.append(self.next().val[1:])
            # Go positions the merged node at its first trailing field (chain.Position()).
            if isinstance(node, FieldNode):
                return FieldNode(pos, node.ident + fields)
            if isinstance(node, VariableNode):
                return VariableNode(pos, node.ident + fields)
            if isinstance(node, (BoolNode, StringNode, NumberNode, NilNode, DotNode)):
                raise self.errorf(f"unexpected . after term {quote(str(node))}", pos)
            return ChainNode(pos, node, fields)
        return node

    def term(self) -> Node | None:
        tok = self.next_non_space()
        t = tok.typ
        if t == L.IDENTIFIER:
            if tok.val not in self.funcs:
                raise self.errorf(f"function {quote(tok.val)} not defined", tok.pos)
            return IdentifierNode(tok.pos, tok.val)
        if t == L.DOT:
            return DotNode(tok.pos)
        if t == L.NIL:
            return NilNode(tok.pos)
        if t == L.VARIABLE:
            if tok.val not in self.vars:
                raise self.errorf(f"undefined variable {quote(tok.val)}", tok.pos)
            return VariableNode(tok.pos, [tok.val])
        if t == L.FIELD:
            return FieldNode(tok.pos, [tok.val[1:]])
        if t == L.BOOL:
            return BoolNode(tok.pos, tok.val == "true")
        if t in (L.CHAR_CONSTANT, L.COMPLEX, L.NUMBER):
            try:
                return new_number(tok.pos, tok.val, t)
            except ValueError as e:
                raise self.errorf(str(e), tok.pos) from None
        if t == L.LEFT_PAREN:
            if self.depth >= MAX_STACK_DEPTH:
                raise self.errorf("max expression depth exceeded")
            self.depth += 1
            try:
                return self.pipeline("parenthesized pipeline", L.RIGHT_PAREN)
            finally:
                self.depth -= 1
        if t in (L.STRING, L.RAW_STRING):
            try:
                return StringNode(tok.pos, tok.val, unquote(tok.val))
            except ValueError as e:
                raise self.errorf(str(e), tok.pos) from None
        self.backup()
        return None


def _is_empty_tree(n: ListNode) -> bool:
    for c in n.nodes:
        if isinstance(c, TextNode):
            if c.text.strip(" \t\r\n\v\f"):
                return False
        else:
            return False
    return True


def parse(text: str, funcs: frozenset[str] | set[str], name: str = "") -> ParsedTemplate:
    """Parse `text`; raises TemplateParseError naming line and column."""
    return _Parser(text, name, funcs).parse()
