"""GGUF Jinja chat templates (`tokenizer.chat_template`), rendered as HF transformers renders them.

Used when a model has no Go TEMPLATE. The environment matches transformers' `apply_chat_template`:
an ImmutableSandboxedEnvironment with trim_blocks and lstrip_blocks, loop controls, a `tojson`
that does not HTML-escape (ensure_ascii=False, indent, separators, sort_keys), the globals
`raise_exception` and `strftime_now`, a no-op `{% generation %}` block, and the variables
`messages`, `tools`, `add_generation_prompt`, `bos_token`, `eos_token` (plus any extra kwargs).
Every failure comes out as a TemplateError: syntax errors name the line, runtime errors (an
unknown function, raise_exception, a sandbox violation) say what went wrong; nothing else escapes.
"""
from __future__ import annotations

import datetime as _dt
import json
import threading
from pathlib import Path
from typing import Any

import jinja2
import jinja2.ext
import jinja2.sandbox
from jinja2 import nodes

from pyollama.errors import TemplateError, TemplateExecError, TemplateParseError


class _TemplateRaised(Exception):
    """raise_exception() was called by the template."""


def _raise_exception(message: str) -> None:
    raise _TemplateRaised(message)


def _tojson(x: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None,
            sort_keys: bool = False) -> str:
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt: str) -> str:
    return _dt.datetime.now().strftime(fmt)


class _GenerationBlock(jinja2.ext.Extension):
    """`{% generation %}...{% endgeneration %}` marks assistant text for training masks in HF;
    for inference it just renders its body."""

    tags = {"generation"}

    def parse(self, parser: Any) -> nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.Scope(body, lineno=lineno)


_env_lock = threading.Lock()
_env: jinja2.sandbox.ImmutableSandboxedEnvironment | None = None


def environment() -> jinja2.sandbox.ImmutableSandboxedEnvironment:
    global _env
    with _env_lock:
        if _env is None:
            env = jinja2.sandbox.ImmutableSandboxedEnvironment(
                trim_blocks=True, lstrip_blocks=True,
                extensions=[_GenerationBlock, jinja2.ext.loopcontrols])
            env.filters["tojson"] = _tojson
            env.globals["raise_exception"] = _raise_exception
            env.globals["strftime_now"] = _strftime_now
            _env = env
        return _env


class JinjaTemplate:
    """A compiled chat template; `render(...)` may be called from any thread."""

    def __init__(self, source: str, *, bos_token: str = "", eos_token: str = "",
                 special_tokens: dict[str, str] | None = None):
        self.source = source
        self.tokens = {"bos_token": bos_token, "eos_token": eos_token, **(special_tokens or {})}
        try:
            self._tmpl = environment().from_string(source)
        except jinja2.TemplateSyntaxError as e:
            raise TemplateParseError(f"chat template: line {e.lineno}: {e.message}", line=e.lineno or 0) from None

    @classmethod
    def from_gguf(cls, path: str | Path) -> JinjaTemplate:
        """The `tokenizer.chat_template` of a GGUF file, with its BOS/EOS token texts."""
        source, tokens = read_gguf_chat_template(path)
        if source is None:
            raise TemplateError(f"{path}: no tokenizer.chat_template in the GGUF metadata")
        return cls(source, **tokens)

    def render(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, *,
               add_generation_prompt: bool = True, **kwargs: Any) -> str:
        """Render like transformers' apply_chat_template(tokenize=False)."""
        ctx = {**self.tokens, **kwargs, "messages": messages, "tools": tools or None,
               "add_generation_prompt": add_generation_prompt}
        try:
            return self._tmpl.render(**ctx)
        except _TemplateRaised as e:
            raise TemplateExecError(f"chat template raised an exception: {e}") from None
        except jinja2.TemplateSyntaxError as e:
            raise TemplateParseError(f"chat template: line {e.lineno}: {e.message}", line=e.lineno or 0) from None
        except jinja2.sandbox.SecurityError as e:
            raise TemplateExecError(f"chat template: unsafe operation: {e}") from None
        except jinja2.UndefinedError as e:
            raise TemplateExecError(f"chat template: {e.message}") from None
        except jinja2.TemplateError as e:
            raise TemplateExecError(f"chat template: {e}") from None
        except RecursionError:
            raise TemplateExecError("chat template: recursion too deep") from None
        except Exception as e:  # any other failure inside user-supplied template code
            raise TemplateExecError(f"chat template failed: {type(e).__name__}: {e}") from None


_compiled: dict[tuple[str, str, str], JinjaTemplate] = {}


def render_jinja_chat(source: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, *,
                      add_generation_prompt: bool = True, bos_token: str = "", eos_token: str = "",
                      **kwargs: Any) -> str:
    """Render a GGUF chat template (compiled once per source) like apply_chat_template(tokenize=False)."""
    key = (source, bos_token, eos_token)
    t = _compiled.get(key)
    if t is None:
        t = JinjaTemplate(source, bos_token=bos_token, eos_token=eos_token)
        if len(_compiled) > 64:
            _compiled.clear()
        _compiled[key] = t
    return t.render(messages, tools, add_generation_prompt=add_generation_prompt, **kwargs)


def read_gguf_chat_template(path: str | Path) -> tuple[str | None, dict[str, str]]:
    """(chat template or None, {"bos_token", "eos_token"}) from a GGUF's metadata."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))

    def field_str(key: str) -> str | None:
        f = reader.fields.get(key)
        if f is None or not f.data:
            return None
        return bytes(f.parts[f.data[0]]).decode("utf-8", "replace")

    def token_text(key: str) -> str:
        f = reader.fields.get(key)
        toks = reader.fields.get("tokenizer.ggml.tokens")
        if f is None or toks is None:
            return ""
        tid = int(f.parts[f.data[0]][0])
        if tid < 0 or tid >= len(toks.data):
            return ""
        return bytes(toks.parts[toks.data[tid]]).decode("utf-8", "replace")

    return field_str("tokenizer.chat_template"), {
        "bos_token": token_text("tokenizer.ggml.bos_token_id"),
        "eos_token": token_text("tokenizer.ggml.eos_token_id"),
    }
