"""Golden tests: every template in golden/<family>/ × every conversation shape in golden/shapes/,
rendered with Ollama's model, must equal the output Go's text/template produced (oracle/)."""
from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from pyollama.templates import gotemplate
from pyollama.templates.ollama_types import message_from_api, tools_from_api
from pyollama.templates.render import execute

GOLDEN = Path(__file__).parent / "golden"
SHAPES = sorted(p.stem for p in (GOLDEN / "shapes").glob("*.json"))
FAMILIES = sorted(p.parent.name for p in GOLDEN.glob("*/template.gotmpl"))
CASES = [(f, s) for f in FAMILIES for s in SHAPES]


@pytest.fixture(autouse=True)
def fixed_date(monkeypatch: pytest.MonkeyPatch) -> None:
    # The oracle pins currentDate/yesterdayDate to these days.
    monkeypatch.setattr(gotemplate, "_today", lambda: datetime.date(2025, 1, 2))


def render_shape(template: str, shape: dict) -> str:
    return execute(template, [message_from_api(m) for m in shape.get("messages") or []],
                   tools_from_api(shape.get("tools")), think=shape.get("think"),
                   prompt=shape.get("prompt", ""), suffix=shape.get("suffix", ""))


def test_enough_goldens() -> None:
    assert len(FAMILIES) >= 15
    assert {"tools", "tool_results", "thinking_on", "thinking_off", "multi_turn", "system"} <= set(SHAPES)
    for f in FAMILIES:
        missing = [s for s in SHAPES if not (GOLDEN / f / f"{s}.out").exists()]
        assert not missing, f"{f}: run the oracle (tests/templates/oracle/README.md) for {missing}"


@pytest.mark.parametrize("family,shape", CASES, ids=[f"{f}-{s}" for f, s in CASES])
def test_golden(family: str, shape: str) -> None:
    template = (GOLDEN / family / "template.gotmpl").read_text()
    data = json.loads((GOLDEN / "shapes" / f"{shape}.json").read_text())
    expected = (GOLDEN / family / f"{shape}.out").read_text()
    assert not expected.startswith("ERROR:"), expected
    assert render_shape(template, data) == expected
