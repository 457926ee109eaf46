"""Structured output: Ollama's `format` → a GBNF grammar for the grammar sampler.

`format: "json"` constrains to any JSON object (as Ollama does); `format: {JSON schema}` to
that schema, converted by llama.cpp's own json-schema-to-grammar (through the native shim), so
the accepted language is exactly upstream's. Raw GBNF is accepted too, for power users.
"""
from __future__ import annotations

import json
from functools import lru_cache

from pyollama.errors import InvalidRequest, SamplerError

_ANY_OBJECT = {"type": "object"}


@lru_cache(maxsize=256)
def _convert(schema_json: str) -> str:
    from pyollama import _native

    try:
        return _native.json_schema_to_grammar(schema_json)
    except SamplerError as e:
        raise InvalidRequest(str(e)) from None


def schema_to_gbnf(schema: dict | bool) -> str:
    """GBNF for a JSON schema (dict, or True for any JSON value)."""
    if schema is True:
        schema = {}
    if not isinstance(schema, dict):
        raise InvalidRequest(f"a JSON schema must be an object, not {type(schema).__name__}")
    return _convert(json.dumps(schema, sort_keys=True))


def format_to_gbnf(fmt) -> str | None:
    """Ollama's `format` field → GBNF, or None when there is no constraint.

    Accepts "" / None (no constraint), "json", a JSON schema object, or a JSON schema given as a
    JSON string (some clients send it that way). Anything else is an InvalidRequest naming it."""
    if fmt is None or fmt == "":
        return None
    if isinstance(fmt, str):
        if fmt == "json":
            return schema_to_gbnf(_ANY_OBJECT)
        try:
            parsed = json.loads(fmt)
        except ValueError:
            raise InvalidRequest(f'invalid format: {fmt!r}; expected "json" or a JSON schema') from None
        if not isinstance(parsed, dict):
            raise InvalidRequest(f'invalid format: {fmt!r}; expected "json" or a JSON schema')
        fmt = parsed
    if isinstance(fmt, dict):
        return schema_to_gbnf(fmt)
    raise InvalidRequest(f'invalid format: expected "json" or a JSON schema object, not {type(fmt).__name__}')
