"""Executes parsed Go templates with text/template's semantics (exec.go); arguments, fields and function
calls are compiled in gocall.py.

The parse tree is compiled once into nested Python closures, so rendering does no per-node type
dispatch: a 50-message chat renders in well under the 2 ms budget. Errors keep Go's format:
`template: NAME:LINE:COL: executing "NAME" at <CONTEXT>: message`.
"""
from __future__ import annotations

import time
from typing import Any, Callable

from pyollama.errors import TemplateExecError
from pyollama.golang.fmt import format_value
from pyollama.golang.json import sorted_keys
from pyollama.golang.strconv import quote
from pyollama.golang.values import MISSING, GoStruct, is_true, type_name
from pyollama.templates import golex
from pyollama.templates.gocall import NOFINAL, Calls
from pyollama.templates.gofuncs import Signature
from pyollama.templates.gonodes import (
    ActionNode, BreakNode, ChainNode, CommandNode, ContinueNode, DotNode, FieldNode, IdentifierNode, IfNode,
    ListNode, NilNode, Node, PipeNode, RangeNode, TemplateNode, TextNode, VariableNode, WithNode, walk,
)
from pyollama.templates.goparse import ParsedTemplate

MAX_EXEC_DEPTH = 100  # Go allows 100000; Python's stack is the limit here.
# Rendering is bounded so that a hostile or broken template (a request may carry one) cannot wedge the
# server: far more output than any context holds, or far more time than any real prompt takes, is an error.
MAX_OUTPUT = 1 << 26         # characters: 64 Mi, hundreds of times a 128k-token context
MAX_SECONDS = 10.0
_CHECK_EVERY = 64            # loop iterations / pipelines between two clock reads

class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _Meter:
    """Output size and elapsed time of one execution (shared by every template it calls)."""

    __slots__ = ("size", "ticks", "deadline", "limit", "prog")

    def __init__(self, prog: Program, limit: int, seconds: float):
        self.size = 0
        self.ticks = 0
        self.limit = limit
        self.deadline = time.monotonic() + seconds
        self.prog = prog

    def add(self, n: int) -> None:
        self.size += n
        if self.size > self.limit:
            raise self.prog.error(None, f"rendering stopped: the output passed {self.limit} characters, far "
                                        "more than any context holds (a runaway range, template or printf width)")

    def tick(self) -> None:
        self.ticks += 1
        if not self.ticks % _CHECK_EVERY and time.monotonic() > self.deadline:
            raise self.prog.error(None, "rendering stopped: it ran for longer than "
                                        f"{MAX_SECONDS:g} s (a runaway range or template)")


class _State:
    __slots__ = ("out", "vars", "depth", "meter")

    def __init__(self, out: list[str], vars: list[list[Any]], meter: _Meter, depth: int = 0):
        self.out = out
        self.vars = vars
        self.meter = meter
        self.depth = depth


Fn = Callable[[_State, Any], Any]


class Program(Calls):
    """A compiled template: call `execute(data)`; thread-safe (all run state is per call)."""

    def __init__(self, parsed: ParsedTemplate, funcs: dict[str, Signature], missingkey: str = "zero"):
        self.parsed = parsed
        self.name = parsed.name
        self.text = parsed.text
        self.funcs = funcs
        self.missingkey = missingkey
        self._trees: dict[str, Fn] = {}
        self.root = self._compile(parsed.root)

    # -- errors ---------------------------------------------------------------------------------
    def error(self, node: Node | None, msg: str) -> TemplateExecError:
        name = self.name
        if node is None:
            return TemplateExecError(f"template: {name}: {msg}")
        line, col = golex.line_col(self.text, node.pos)
        ctx = str(node)
        return TemplateExecError(
            f"template: {name}:{line}:{col}: executing {quote(name)} at <{ctx}>: {msg}", line=line, col=col)

    # -- entry ----------------------------------------------------------------------------------
    def execute(self, data: Any, *, max_output: int = MAX_OUTPUT, max_seconds: float = MAX_SECONDS) -> str:
        if data is None:
            data = MISSING  # reflect.ValueOf(nil) is the invalid value
        out: list[str] = []
        st = _State(out, [["$", data]], _Meter(self, max_output, max_seconds))
        try:
            self.root(st, data)
        except RecursionError:
            raise self.error(None, "exceeded maximum template depth") from None
        return "".join(out)

    def tree(self, name: str) -> Fn | None:
        fn = self._trees.get(name)
        if fn is None:
            node = self.parsed.trees.get(name)
            if node is None:
                return None
            fn = self._compile(node)
            self._trees[name] = fn
        return fn

    # -- statements -----------------------------------------------------------------------------
    def _compile(self, n: Node) -> Fn:
        if isinstance(n, ListNode):
            fns = [self._compile(c) for c in n.nodes]
            if len(fns) == 1:
                return fns[0]

            def run_list(st: _State, dot: Any) -> None:
                for f in fns:
                    f(st, dot)
            return run_list
        if isinstance(n, TextNode):
            text = n.text

            size = len(text)

            def run_text(st: _State, dot: Any) -> None:
                st.out.append(text)
                st.meter.add(size)
            return run_text
        if isinstance(n, ActionNode):
            return self._compile_action(n)
        if isinstance(n, (IfNode, WithNode)):
            return self._compile_if_with(n, isinstance(n, WithNode))
        if isinstance(n, RangeNode):
            return self._compile_range(n)
        if isinstance(n, TemplateNode):
            return self._compile_template(n)
        if isinstance(n, BreakNode):
            def run_break(st: _State, dot: Any) -> None:
                raise _Break
            return run_break
        if isinstance(n, ContinueNode):
            def run_continue(st: _State, dot: Any) -> None:
                raise _Continue
            return run_continue
        raise self.error(n, f"unknown node: {n}")

    def _compile_action(self, n: ActionNode) -> Fn:
        pipe = self._pipe(n.pipe)
        if n.pipe.decl:
            def run_decl(st: _State, dot: Any) -> None:
                pipe(st, dot)
            return run_decl
        prog = self

        def run_action(st: _State, dot: Any) -> None:
            v = pipe(st, dot)
            if type(v) is not str:
                if v is MISSING:
                    v = "<no value>"
                elif callable(v) and not isinstance(v, GoStruct):
                    raise prog.error(n, f"can't print {n} of type {type_name(v)}")
                else:
                    v = format_value(v)
            st.out.append(v)
            st.meter.add(len(v))
        return run_action

    def _compile_if_with(self, n: IfNode | WithNode, is_with: bool) -> Fn:
        pipe = self._pipe(n.pipe)
        body = self._compile(n.list)
        other = self._compile(n.else_list) if n.else_list is not None else None

        def run_if(st: _State, dot: Any) -> None:
            vars = st.vars
            mark = len(vars)
            v = pipe(st, dot)
            if is_true(v):
                body(st, v if is_with else dot)
            elif other is not None:
                other(st, dot)
            del vars[mark:]
        return run_if

    def _compile_range(self, n: RangeNode) -> Fn:
        pipe = self._pipe(n.pipe)
        body = self._compile(n.list)
        other = self._compile(n.else_list) if n.else_list is not None else None
        decl = [d.ident[0] for d in n.pipe.decl]
        is_assign = n.pipe.is_assign
        prog = self
        has_loop_ctl = any(isinstance(x, (BreakNode, ContinueNode)) for x in walk(n.list))
        # Go reports the error at the last node the pipeline evaluated.
        last_node = n.pipe.cmds[-1].args[-1] if n.pipe.cmds else n

        def set_vars(st: _State, index: Any, elem: Any) -> None:
            if not decl:
                return
            if is_assign:
                if len(decl) > 1:
                    prog._set_var(st, n, decl[0], index)
                    prog._set_var(st, n, decl[1], elem)
                else:
                    prog._set_var(st, n, decl[0], elem)
            else:
                st.vars[-1][1] = elem
                if len(decl) > 1:
                    st.vars[-2][1] = index

        def one(st: _State, index: Any, elem: Any, mark: int) -> bool:
            st.meter.tick()
            set_vars(st, index, elem)
            if has_loop_ctl:
                try:
                    body(st, elem)
                except _Continue:
                    pass
                except _Break:
                    del st.vars[mark:]
                    return False
            else:
                body(st, elem)
            del st.vars[mark:]
            return True

        def run_range(st: _State, dot: Any) -> None:
            vars = st.vars
            outer = len(vars)
            val = pipe(st, dot)
            mark = len(vars)
            ran = False
            if isinstance(val, (list, tuple)):
                if val:
                    ran = True
                    for i, e in enumerate(val):
                        if not one(st, i, e, mark):
                            break
            elif isinstance(val, dict):
                if val:
                    ran = True
                    for k in sorted_keys(val):
                        if not one(st, k, val[k], mark):
                            break
            elif type(val) is int:
                if len(decl) > 1:
                    raise prog.error(n, f"can't use {val} to iterate over more than one variable")
                if val > 0:
                    ran = True
                    for i in range(val):
                        if not one(st, MISSING, i, mark):
                            break
            elif val is MISSING or val is None:
                pass
            else:
                raise prog.error(last_node, f"range can't iterate over {format_value(val)}")
            if not ran and other is not None:
                other(st, dot)
            del vars[outer:]
        return run_range

    def _compile_template(self, n: TemplateNode) -> Fn:
        pipe = self._pipe(n.pipe) if n.pipe is not None else None
        prog = self
        name = n.name

        def run_template(st: _State, dot: Any) -> None:
            fn = prog.tree(name)
            if fn is None:
                        raise prog.error(n, f"template {quote(name)} not defined")
            if st.depth >= MAX_EXEC_DEPTH:
                raise prog.error(n, f"exceeded maximum template depth ({MAX_EXEC_DEPTH})")
            st.meter.tick()
            newdot = pipe(st, dot) if pipe is not None else MISSING
            fn(_State(st.out, [["$", newdot]], st.meter, st.depth + 1), newdot)
        return run_template

    # -- variables ------------------------------------------------------------------------------
    def _var(self, st: _State, node: Node, name: str) -> Any:
        vars = st.vars
        for i in range(len(vars) - 1, -1, -1):
            if vars[i][0] == name:
                return vars[i][1]
        raise self.error(node, f"undefined variable: {name}")

    def _set_var(self, st: _State, node: Node, name: str, value: Any) -> None:
        vars = st.vars
        for i in range(len(vars) - 1, -1, -1):
            if vars[i][0] == name:
                vars[i][1] = value
                return
        raise self.error(node, f"undefined variable: {name}")

    # -- pipelines ------------------------------------------------------------------------------
    def _pipe(self, pipe: PipeNode) -> Callable[[_State, Any], Any]:
        cmds = [self._command(c) for c in pipe.cmds]
        decl = [d.ident[0] for d in pipe.decl]
        is_assign = pipe.is_assign
        prog = self
        if len(cmds) == 1 and not decl:
            c0 = cmds[0]

            def run_pipe1(st: _State, dot: Any) -> Any:
                st.meter.tick()
                v = c0(st, dot, NOFINAL)
                return MISSING if v is None else v
            return run_pipe1

        def run_pipe(st: _State, dot: Any) -> Any:
            st.meter.tick()
            v: Any = NOFINAL
            for c in cmds:
                v = c(st, dot, v)
                if v is None:
                    v = MISSING  # a nil interface unwraps to the invalid value
            for name in decl:
                if is_assign:
                    prog._set_var(st, pipe, name, v)
                else:
                    st.vars.append([name, v])
            return v
        return run_pipe

    def _not_a_function(self, node: Node, nargs: int, final: Any) -> None:
        if nargs > 1 or final is not NOFINAL:
            raise self.error(node, f"can't give argument to non-function {node}")

    def _command(self, cmd: CommandNode) -> Callable[[_State, Any, Any], Any]:
        first = cmd.args[0]
        nargs = len(cmd.args)
        prog = self
        if isinstance(first, FieldNode):
            ident = first.ident
            if nargs == 1 and len(ident) == 1:
                name = ident[0]

                def run_field1(st: _State, dot: Any, final: Any) -> Any:
                    if final is NOFINAL:
                        if type(dot) is dict:
                            v = dot.get(name, NOFINAL)
                            if v is not NOFINAL:
                                return v
                        elif isinstance(dot, GoStruct) and name in dot._go_fields:
                            return getattr(dot, name)
                    return prog._field(dot, name, first, 1, final, dot, st)
                return run_field1
            argfns = [self._arg(a, "any") for a in cmd.args[1:]]

            def run_field(st: _State, dot: Any, final: Any) -> Any:
                return prog._field_chain(st, dot, dot, first, ident, nargs, final, argfns)
            return run_field
        if isinstance(first, ChainNode):
            if isinstance(first.node, NilNode):
                def run_nilchain(st: _State, dot: Any, final: Any) -> Any:
                    raise prog.error(first, f"indirection through explicit nil in {first}")
                return run_nilchain
            recv = self._arg(first.node, "raw")
            fields = first.fields
            argfns = [self._arg(a, "any") for a in cmd.args[1:]]

            def run_chain(st: _State, dot: Any, final: Any) -> Any:
                return prog._field_chain(st, dot, recv(st, dot), first, fields, nargs, final, argfns)
            return run_chain
        if isinstance(first, IdentifierNode):
            return self._call(first, cmd)
        if isinstance(first, PipeNode):
            inner = self._pipe(first)

            def run_paren(st: _State, dot: Any, final: Any) -> Any:
                prog._not_a_function(first, nargs, final)
                return inner(st, dot)
            return run_paren
        if isinstance(first, VariableNode):
            vname = first.ident[0]
            rest = first.ident[1:]
            argfns = [self._arg(a, "any") for a in cmd.args[1:]]

            def run_var(st: _State, dot: Any, final: Any) -> Any:
                v = prog._var(st, first, vname)
                if not rest:
                    prog._not_a_function(first, nargs, final)
                    return v
                return prog._field_chain(st, dot, v, first, rest, nargs, final, argfns)
            return run_var

        const = self._literal(first)

        def run_literal(st: _State, dot: Any, final: Any) -> Any:
            prog._not_a_function(first, nargs, final)
            if isinstance(first, DotNode):
                return dot
            if isinstance(first, NilNode):
                raise prog.error(first, "nil is not a command")
            return const
        return run_literal
