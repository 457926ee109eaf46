"""Compiling a Go template's arguments, field lookups and function calls (exec.go's evalArg, evalField,
evalCall) into closures: the part of :class:`pyollama.templates.goexec.Program` that turns one command's
operands into values. Kept apart from the control flow (if/range/with/template) in goexec.py.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from pyollama.golang.fmt import format_value
from pyollama.golang.values import MISSING, GoSlice, GoStruct, OrderedMap, is_true, type_name
from pyollama.templates.gofuncs import FuncError, f_not
from pyollama.templates.gonodes import (
    BoolNode, ChainNode, CommandNode, DotNode, FieldNode, IdentifierNode, NilNode, Node, NumberNode, PipeNode,
    StringNode, VariableNode,
)

if TYPE_CHECKING:
    from pyollama.templates.goexec import _State

NOFINAL = object()  # Go's missingVal: "no value piped in from the previous command"


class Calls:
    """Mixin of Program: needs ``error``, ``missingkey``, ``funcs``, ``_pipe``, ``_command`` and ``_var``."""

    def _literal(self, n: Node) -> Any:
        if isinstance(n, BoolNode):
            return n.value
        if isinstance(n, StringNode):
            return n.text
        if isinstance(n, NumberNode):
            return self._ideal(n)
        return None

    def _ideal(self, n: NumberNode) -> Any:
        t = n.text
        if n.is_complex:
            return n.complex_val
        is_hex_int = len(t) > 2 and t[0] == "0" and t[1] in "xX" and not any(c in t for c in "pP")
        if n.is_float and not is_hex_int and not t.startswith("'") and any(c in t for c in ".eEpP"):
            return n.float_val
        if n.is_int:
            return n.int_val
        # Deferred like Go: only an error if the constant is actually evaluated.
        return Overflow(t)

    # -- fields ---------------------------------------------------------------------------------
    def _field_chain(self, st: _State, dot: Any, recv: Any, node: Node, ident: list[str], nargs: int,
                     final: Any, argfns: list[Any]) -> Any:
        for name in ident[:-1]:
            recv = self._field(dot, name, node, 0, NOFINAL, recv, st)
        return self._field(dot, ident[-1], node, nargs, final, recv, st, argfns)

    def _field(self, dot: Any, name: str, node: Node, nargs: int, final: Any, recv: Any, st: _State,
               argfns: list[Any] | None = None) -> Any:
        if recv is MISSING:
            if self.missingkey == "error":
                raise self.error(node, f'nil data; no entry for key "{name}"')
            return MISSING
        has_args = nargs > 1 or final is not NOFINAL
        if recv is None:
            raise self.error(node, f"nil pointer evaluating interface {{}}.{name}")
        if isinstance(recv, GoStruct):
            if name in recv._go_methods:
                if has_args:
                    raise self.error(node, f"wrong number of args for {name}: want 0 got {nargs - 1}")
                return getattr(recv, name)()
            if name in recv._go_fields:
                if has_args:
                    raise self.error(node, f"{name} has arguments but cannot be invoked as function")
                return getattr(recv, name)
            raise self.error(node, f"can't evaluate field {name} in type {recv._go_type}")
        if isinstance(recv, dict):
            if has_args:
                raise self.error(node, f"{name} is not a method but has arguments")
            v = recv.get(name, NOFINAL)
            if v is NOFINAL:
                if self.missingkey == "zero":
                    return None
                if self.missingkey == "error":
                    raise self.error(node, f'map has no entry for key "{name}"')
                return MISSING
            return v
        # Plain data (JSON-like maps and lists) reaches fields as interface{} values, so Go
        # names that static type; typed values (Ollama's structs) keep their own type name.
        tname = type_name(recv) if isinstance(recv, (GoSlice, OrderedMap)) else "interface {}"
        raise self.error(node, f"can't evaluate field {name} in type {tname}")

    # -- arguments ------------------------------------------------------------------------------
    def _arg(self, n: Node, kind: str) -> Callable[[_State, Any], Any]:
        """Compile an argument for a parameter of `kind` ("value", "any", "string" or "raw")."""
        prog = self

        def convert(v: Any, node: Node) -> Any:
            if kind == "any":
                if v is MISSING:
                    return None
                if isinstance(v, Overflow):
                    raise prog.error(node, f"{v.text} overflows int")
                return v
            if kind == "string":
                if v is MISSING:
                    raise prog.error(node, "invalid value; expected string")
                if not isinstance(v, str):
                    raise prog.error(node, f"wrong type for value; expected string; got {type_name(v)}")
                return v
            if isinstance(v, Overflow):
                raise prog.error(node, f"{v.text} overflows int")
            return v

        # Only literals can overflow; computed values need at most the MISSING -> nil step.
        computed = isinstance(n, (FieldNode, VariableNode, PipeNode, IdentifierNode, ChainNode))
        if computed and kind in ("value", "raw"):
            conv = _keep  # reflect.Value parameters take the value as it is
        elif computed and kind == "any":
            conv = _nil_if_missing
        else:
            conv = convert
        if isinstance(n, DotNode):
            return lambda st, dot: conv(dot, n)
        if isinstance(n, NilNode):
            def nil_arg(st: _State, dot: Any) -> Any:
                if kind == "string":
                    raise prog.error(n, "cannot assign nil to string")
                return None if kind == "any" else MISSING
            return nil_arg
        if isinstance(n, FieldNode):
            ident = n.ident
            first = ident[0] if len(ident) == 1 else None

            def field_arg(st: _State, dot: Any) -> Any:
                # The common case first: a plain field of a struct (.Role); the general walk
                # handles maps, methods, missing keys and errors.
                if first is not None and isinstance(dot, GoStruct) and first in dot._go_fields \
                        and first not in dot._go_methods:
                    return conv(getattr(dot, first), n)
                return conv(prog._field_chain(st, dot, dot, n, ident, 1, NOFINAL, []), n)
            return field_arg
        if isinstance(n, VariableNode):
            vname, rest = n.ident[0], n.ident[1:]
            one = rest[0] if len(rest) == 1 else None

            def var_arg(st: _State, dot: Any) -> Any:
                v = prog._var(st, n, vname)
                if one is not None and isinstance(v, GoStruct) and one in v._go_fields \
                        and one not in v._go_methods:
                    return conv(getattr(v, one), n)
                if rest:
                    v = prog._field_chain(st, dot, v, n, rest, 1, NOFINAL, [])
                return conv(v, n)
            return var_arg
        if isinstance(n, PipeNode):
            inner = self._pipe(n)
            return lambda st, dot: conv(inner(st, dot), n)
        if isinstance(n, IdentifierNode):
            call = self._call(n, CommandNode(n.pos, [n]))
            return lambda st, dot: conv(call(st, dot, NOFINAL), n)
        if isinstance(n, ChainNode):
            cmd = self._command(CommandNode(n.pos, [n]))
            return lambda st, dot: conv(cmd(st, dot, NOFINAL), n)
        if kind == "string" and not isinstance(n, StringNode):
            def bad_string(st: _State, dot: Any) -> Any:
                raise prog.error(n, f"expected string; found {n}")
            return bad_string
        const = self._literal(n)
        return lambda st, dot: conv(const, n)

    def _call(self, ident: IdentifierNode, cmd: CommandNode) -> Callable[[_State, Any, Any], Any]:
        name = ident.ident
        sig = self.funcs.get(name)
        prog = self
        arg_nodes = cmd.args[1:]
        if sig is None:
            def undefined(st: _State, dot: Any, final: Any) -> Any:
                raise prog.error(ident, f'"{name}" is not a defined function')
            return undefined
        kinds = [sig.params[i] if i < sig.fixed else (sig.variadic or "any") for i in range(len(arg_nodes))]
        argfns = [self._arg(a, k) for a, k in zip(arg_nodes, kinds)]
        nfixed = sig.fixed

        def arity_ok(num_in: int) -> bool:
            return num_in >= nfixed if sig.variadic is not None else num_in == nfixed

        ok_without_final = arity_ok(len(arg_nodes))

        def check_arity(final: Any) -> None:
            if final is NOFINAL and ok_without_final:
                return
            num_in = len(arg_nodes) + (final is not NOFINAL)
            if sig.variadic is not None:
                if num_in < nfixed:
                    raise prog.error(cmd, f"wrong number of args for {name}: want at least {nfixed} "
                                          f"got {len(arg_nodes)}")
            elif num_in != nfixed:
                raise prog.error(cmd, f"wrong number of args for {name}: want {nfixed} got {num_in}")

        def final_arg(final: Any) -> Any:
            k = sig.params[len(arg_nodes)] if len(arg_nodes) < nfixed else (sig.variadic or "any")
            if k == "any":
                return None if final is MISSING else final
            if k == "string" and not isinstance(final, str):
                if final is MISSING:
                    raise prog.error(cmd, "invalid value; expected string")
                raise prog.error(cmd, f"wrong type for value; expected string; got {type_name(final)}")
            return final

        if name in ("and", "or"):
            want = name == "or"

            def run_andor(st: _State, dot: Any, final: Any) -> Any:
                check_arity(final)
                v: Any = MISSING
                for f in argfns:
                    v = f(st, dot)
                    if is_true(v) == want:
                        return v
                if final is not NOFINAL:
                    v = final
                return v
            return run_andor

        fn = sig.fn
        if name == "call":
            callee = str(arg_nodes[0]) if arg_nodes else ""
            fn = lambda *a: sig.fn(callee or format_value(a[0]), *a)  # noqa: E731
        if name == "not" and len(argfns) == 1:
            a0 = argfns[0]

            def run_not(st: _State, dot: Any, final: Any) -> Any:
                check_arity(final)
                return f_not(a0(st, dot))
            return run_not

        if len(argfns) == 2 and ok_without_final:
            a0, a1 = argfns

            def run_call2(st: _State, dot: Any, final: Any) -> Any:
                if final is not NOFINAL:
                    return run_call(st, dot, final)
                try:
                    return fn(a0(st, dot), a1(st, dot))
                except FuncError as e:
                    raise prog.error(cmd, f"error calling {name}: {e}") from None
            fast: Any = run_call2
        elif len(argfns) == 1 and ok_without_final:
            b0 = argfns[0]

            def run_call1(st: _State, dot: Any, final: Any) -> Any:
                if final is not NOFINAL:
                    return run_call(st, dot, final)
                try:
                    return fn(b0(st, dot))
                except FuncError as e:
                    raise prog.error(cmd, f"error calling {name}: {e}") from None
            fast = run_call1
        else:
            fast = None

        def run_call(st: _State, dot: Any, final: Any) -> Any:
            check_arity(final)
            args = [f(st, dot) for f in argfns]
            if final is not NOFINAL:
                args.append(final_arg(final))
            try:
                return fn(*args)
            except FuncError as e:
                raise prog.error(cmd, f"error calling {name}: {e}") from None
        return fast or run_call


def _keep(v: Any, node: Node) -> Any:
    return v


def _nil_if_missing(v: Any, node: Node) -> Any:
    return None if v is MISSING else v


class Overflow:
    """An integer constant too large for Go's int; evaluating it is an error."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text
