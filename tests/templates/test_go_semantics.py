"""Focused Go text/template semantics, checked against outputs and errors Go itself produced
(gosem/cases.json → gosem/expected.json by the oracle): trimming, range over maps, eq with several
arguments, printf of maps and floats, missing keys, and/or short-circuit, parse errors."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pyollama.errors import TemplateError, TemplateExecError, TemplateParseError
from pyollama.templates.gotemplate import GoTemplate

HERE = Path(__file__).parent / "gosem"
CASES = json.loads((HERE / "cases.json").read_text())
EXPECTED = json.loads((HERE / "expected.json").read_text())


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_matches_go(case: dict) -> None:
    want = EXPECTED[case["name"]]
    try:
        got = GoTemplate(case["template"]).execute(case.get("data"))
    except TemplateParseError as e:
        assert want.get("phase") == "parse", f"Go rendered {want.get('out')!r}, we failed to parse: {e}"
        # Go names only the line; we add the column after it.
        assert re.sub(r"^(template: [^:]*:\d+):\d+:", r"\1:", str(e)) == want["error"]
        assert e.line >= 1
        return
    except TemplateExecError as e:
        assert want.get("phase") == "exec", f"Go gave {want}, we failed: {e}"
        assert str(e) == want["error"]
        return
    assert "error" not in want, f"Go failed with {want['error']!r}, we rendered {got!r}"
    assert got == want["out"]


def test_parse_error_names_line_and_column() -> None:
    with pytest.raises(TemplateParseError) as ei:
        GoTemplate("line one\n  {{ .X | nosuch }}")
    e = ei.value
    assert (e.line, e.col) == (2, 10)
    assert str(e) == 'template: :2:10: function "nosuch" not defined'
    assert isinstance(e, TemplateError) and e.status == 400


def test_unterminated_action_names_start() -> None:
    with pytest.raises(TemplateParseError, match=r"template: :1:\d+: unclosed action"):
        GoTemplate("abc {{ .X ")
