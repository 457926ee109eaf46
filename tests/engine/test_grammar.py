"""Structured output: Ollama's `format` → GBNF (llama.cpp's converter) → constrained generation."""
from __future__ import annotations

import json

import jsonschema
import pytest

from pyollama.engine import LLM
from pyollama.engine.grammar import format_to_gbnf
from pyollama.errors import InvalidRequest

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 24},
        "age": {"type": "integer", "minimum": 0, "maximum": 130},
        "member": {"type": "boolean"},
        "color": {"enum": ["red", "green", "blue"]},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 3},
    },
    "required": ["name", "age", "member", "color", "tags"],
    "additionalProperties": False,
}


def test_no_format_is_no_grammar():
    assert format_to_gbnf(None) is None and format_to_gbnf("") is None


def test_json_and_schema_formats():
    assert "root ::=" in format_to_gbnf("json")
    g = format_to_gbnf(SCHEMA)
    assert "root ::=" in g and '"\\"age\\""' in g
    assert format_to_gbnf(json.dumps(SCHEMA)) == g          # a schema sent as a JSON string


@pytest.mark.parametrize("bad", ["yaml", 42, ["json"], "[1, 2]",
                                 {"type": "object", "properties": {"a": {"$ref": "#/missing"}}}])
def test_invalid_formats_name_the_problem(bad):
    with pytest.raises(InvalidRequest, match="format|schema"):
        format_to_gbnf(bad)


@pytest.mark.model
@pytest.mark.slow
def test_twenty_seeded_generations_validate(smollm2_path):
    grammar = format_to_gbnf(SCHEMA)
    prompt = ("<|im_start|>user\nDescribe a fictional club member as JSON with name, age, member, color "
              "and tags.<|im_end|>\n<|im_start|>assistant\n")
    with LLM(smollm2_path, num_ctx=1024) as llm:
        outputs = []
        for seed in range(20):
            g = llm.complete(prompt, num_predict=400, temperature=0.9, seed=seed, grammar=grammar)
            assert g.done_reason == "stop", g.text
            doc = json.loads(g.text)
            jsonschema.validate(doc, SCHEMA)
            outputs.append(g.text)
    assert len(set(outputs)) > 10                            # seeds matter: not one canned answer
