"""The option table must match Ollama's exactly (names, types, defaults, removed keys), apart from the rows
marked as pyollama extensions. The reference is the shared OLLAMA.md §3 beside the checkout;
docs/contract.md §3 restates the same table in a form these parsers also read."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from pyollama.store import options

OLLAMA_MD = Path(__file__).resolve().parents[3] / "shared" / "OLLAMA.md"


def _section3() -> str:
    if not OLLAMA_MD.is_file():
        pytest.skip(f"{OLLAMA_MD} is not beside the checkout")
    text = OLLAMA_MD.read_text()
    start = text.index("## 3. Runtime options")
    return text[start:text.index("\n## 4.", start)]


def _default(cell: str) -> object:
    cell = cell.strip()
    if " if " in cell or cell.startswith(("`", "unset", "from the model")):
        return None            # decided at run time
    tok = cell.split()[0]
    return float(tok) if "." in tok else int(tok)


def test_table_matches_ollama_md() -> None:
    rows = {}
    for line in _section3().splitlines():
        m = re.match(r"\|\s*`(\w+)`\s*\|\s*([\w\[\]]+)\s*\|\s*(.*?)\s*\|", line)
        if m:
            rows[m.group(1)] = (m.group(2), _default(m.group(3)))
    assert rows, "no option rows found in OLLAMA.md §3"
    ours = {n: (o.type, o.default) for n, o in options.OPTIONS.items() if not o.extension}
    assert ours == rows
    # pyollama's own options are exactly the rows Ollama's table lacks; if Ollama adds one, it stops
    # being an extension and must follow Ollama's type and default.
    extensions = {n for n, o in options.OPTIONS.items() if o.extension}
    assert extensions == {"num_parallel", "tensor_split"} and not extensions & set(rows)


def test_removed_keys_match_ollama_md() -> None:
    sec = _section3()
    para = sec[sec.index("Removed keys"):sec.index("Old clients")]
    assert options.REMOVED_OPTIONS == set(re.findall(r"`(\w+)`", para))
    assert not options.REMOVED_OPTIONS & set(options.OPTIONS)


def test_runner_options_are_the_reload_set_of_section_4() -> None:
    # Section 4's list, plus num_parallel and tensor_split: another slot count or split needs another runner.
    assert options.RUNNER_OPTIONS == {"num_ctx", "num_batch", "num_gpu", "main_gpu", "use_mmap", "num_thread",
                                      "draft_num_predict", "num_parallel", "tensor_split"}


def test_num_parallel_is_a_modelfile_parameter() -> None:
    assert options.parse_text("num_parallel", "4") == 4
    assert options.coerce_json("num_parallel", 2.0) == 2
    # No fixed default: unset, the scheduler uses OLLAMA_NUM_PARALLEL.
    assert "num_parallel" not in options.defaults()
    with pytest.raises(options.OptionError, match="num_parallel"):
        options.parse_text("num_parallel", "two")


@pytest.mark.parametrize(("name", "text", "want"), [
    ("num_ctx", "2048", 2048), ("num_ctx", "-4", -4), ("top_p", "0.5", 0.5), ("top_p", "2", 2.0),
    ("top_p", "1E2", 100.0), ("use_mmap", "t", True), ("use_mmap", "FALSE", False), ("stop", "x y", "x y"),
])
def test_parse_text(name: str, text: str, want: object) -> None:
    assert options.parse_text(name, text) == want


@pytest.mark.parametrize(("name", "text"), [
    ("num_ctx", "2048.0"), ("num_ctx", "1_000"), ("num_ctx", " 1"), ("num_ctx", "0x10"), ("top_p", "nan"),
    ("top_p", "inf"), ("top_p", "1,5"), ("use_mmap", "yes"), ("use_mmap", "on"),
])
def test_parse_text_rejects(name: str, text: str) -> None:
    with pytest.raises(options.OptionError, match=name):
        options.parse_text(name, text)


def test_coerce_json() -> None:
    assert options.coerce_json("num_ctx", 4096.7) == 4096          # Ollama truncates JSON numbers for ints
    assert options.coerce_json("temperature", 1) == 1.0
    assert options.coerce_json("stop", "x") == ["x"]
    for name, bad in [("num_ctx", "4096"), ("num_ctx", True), ("temperature", "hot"), ("use_mmap", 1),
                      ("stop", [1]), ("temperature", float("nan"))]:
        with pytest.raises(options.OptionError, match=f'option "{name}" must be of type'):
            options.coerce_json(name, bad)
