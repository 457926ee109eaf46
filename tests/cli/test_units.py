"""The CLI's pure parts: sizes, times, durations, the word wrapper, plain progress lines, table rows,
flag parsing. No server needed."""
from __future__ import annotations

import datetime as dt
import io

import pytest

from pyollama.cli import fmt
from pyollama.cli.display import AnswerView, WordWrapper, stats_lines
from pyollama.cli.progress import PlainProgress, progress_for
from pyollama.cli.run import parse_format, parse_keepalive, parse_think
from pyollama.cli.tables import list_rows, ps_rows, show_sections
from pyollama.errors import ClientError

NOW = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize("n, text", [(0, "0 B"), (999, "999 B"), (1000, "1 KB"), (1500, "1.5 KB"),
                                     (97_800_000, "97 MB"), (4_700_000_000, "4.7 GB"), (5 * 10**12, "5 TB"),
                                     (1_990_000, "1.9 MB")])
def test_human_bytes(n, text):
    assert fmt.human_bytes(n) == text


@pytest.mark.parametrize("secs, text", [(0.2, "Less than a second ago"), (1, "1 second ago"),
                                        (42, "42 seconds ago"), (61, "About a minute ago"),
                                        (600, "10 minutes ago"), (3600, "About an hour ago"),
                                        (5 * 3600, "5 hours ago"), (3 * 86400, "3 days ago"),
                                        (21 * 86400, "3 weeks ago"), (90 * 86400, "3 months ago"),
                                        (3 * 365 * 86400, "3 years ago")])
def test_human_time_past(secs, text):
    assert fmt.human_time(NOW - dt.timedelta(seconds=secs), now=NOW) == text


def test_human_time_future_forever_and_zero():
    assert fmt.human_time(NOW + dt.timedelta(minutes=4, seconds=30), now=NOW) == "4 minutes from now"
    assert fmt.human_time(NOW + dt.timedelta(days=300 * 365), now=NOW) == "Forever"
    assert fmt.human_time(None, "Never", now=NOW) == "Never"


def test_parse_time_rfc3339_nanoseconds_and_zones():
    t = fmt.parse_time("2026-01-01T12:00:00.123456789Z")
    assert t == dt.datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=dt.timezone.utc)
    assert fmt.parse_time("2026-01-01T13:00:00+01:00") == NOW
    assert fmt.parse_time("0001-01-01T00:00:00Z") is None
    assert fmt.parse_time("") is None and fmt.parse_time("yesterday") is None


@pytest.mark.parametrize("ns, text", [(0, "0s"), (850, "850ns"), (850_000, "850µs"), (12_500_000, "12.5ms"),
                                      (1_234_567_891, "1.234567891s"), (123_500_000_000, "2m3.5s"),
                                      (3_600_000_000_000, "1h0m0s")])
def test_go_duration(ns, text):
    assert fmt.go_duration(ns) == text


def test_processor_column():
    assert fmt.processor(100, 0) == "100% CPU"
    assert fmt.processor(100, 100) == "100% GPU"
    assert fmt.processor(100, 52) == "48%/52% CPU/GPU"


def test_human_number():
    assert fmt.human_number(134_515_008) == "134.52M"
    assert fmt.human_number(7_000_000_000) == "7B"
    assert fmt.human_number(999) == "999"


# --- word wrap -----------------------------------------------------------------------------------
def wrap(chunks: list[str], width: int) -> str:
    out = io.StringIO()
    w = WordWrapper(out, wrap=True, width=lambda: width)
    for c in chunks:
        w.write(c)
    w.finish()
    return out.getvalue()


def test_wrap_never_splits_words_and_keeps_text():
    text = "The quick brown fox jumps over the lazy dog and keeps running far away " * 4
    chunks = [text[i:i + 3] for i in range(0, len(text), 3)]        # token-sized pieces
    got = wrap(chunks, 24)
    assert got.replace("\n", " ").split() == text.split()           # nothing lost, nothing doubled
    for line in got.splitlines():
        assert len(line.rstrip()) <= 23
        for word in line.split():
            assert word in text.split()                             # no word cut in two


def test_wrap_keeps_explicit_newlines_indentation_and_long_words():
    got = wrap(["def f():\n", "    return 1\n", "x" * 50], 20)
    assert got.startswith("def f():\n    return 1\n")
    assert "".join(got.split("\n")[2:]) == "x" * 50                  # split only because it cannot fit


def test_wrap_wide_characters_by_cells():
    got = wrap(["日本語のテキストはとても長いです" * 2], 12)
    assert all(len(line) * 2 <= 11 for line in got.splitlines())


def test_no_wrap_is_verbatim():
    out = io.StringIO()
    w = WordWrapper(out, wrap=False)
    for c in ("a b", " c\n", "d"):
        w.write(c)
    w.finish()
    assert out.getvalue() == "a b c\nd"


def test_answer_view_thinking_block():
    out = io.StringIO()
    v = AnswerView(out, wrap=False, show_thinking=True, color=False)
    v.thinking("Let me think.")
    v.content("Answer.")
    v.end_line()
    assert out.getvalue() == "Thinking...\nLet me think.\n...done thinking.\n\nAnswer.\n"
    hidden = io.StringIO()
    v = AnswerView(hidden, wrap=False, show_thinking=False, color=False)
    v.thinking("secret")
    v.content("Answer.")
    v.end_line()
    assert hidden.getvalue() == "Answer.\n" and v.thinking_text == "secret"


def test_stats_lines():
    lines = stats_lines({"total_duration": 2_000_000_000, "load_duration": 1_000_000, "prompt_eval_count": 10,
                         "prompt_eval_duration": 500_000_000, "eval_count": 20, "eval_duration": 1_000_000_000})
    assert lines[0] == "total duration:       2s"
    assert "prompt eval rate:     20.00 tokens/s" in lines and "eval rate:            20.00 tokens/s" in lines


# --- progress ------------------------------------------------------------------------------------
def test_plain_progress_lines():
    out = io.StringIO()
    p = PlainProgress(out, interval=0)
    d = "sha256:" + "ab" * 32
    for ev in ({"status": "pulling manifest"}, {"status": "pulling abababababab", "digest": d, "total": 4000},
               {"status": "pulling abababababab", "digest": d, "total": 4000, "completed": 2000},
               {"status": "pulling abababababab", "digest": d, "total": 4000, "completed": 4000},
               {"status": "pulling abababababab", "digest": d, "total": 4000, "completed": 4000},
               {"status": "verifying sha256 digest"}, {"status": "success"}):
        p(ev)
    lines = out.getvalue().splitlines()
    assert lines[0] == "pulling manifest"
    assert lines[1] == "pulling abababababab (4 KB)"
    assert lines[2].startswith("pulling abababababab: 50% (2 KB/4 KB")
    assert lines[3].startswith("pulling abababababab: 100% of 4 KB in ")
    assert lines[4:] == ["verifying sha256 digest", "success"]
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()


def test_progress_for_a_pipe_is_plain():
    assert isinstance(progress_for(io.StringIO()), PlainProgress)


# --- tables and flags ----------------------------------------------------------------------------
def test_list_and_ps_rows():
    tags = [{"name": "smollm2:135m", "digest": "c0c294ef90e7" + "0" * 52, "size": 97_800_000,
             "modified_at": "2026-01-01T11:58:00.5Z"}]
    assert list_rows(tags, now=NOW) == [["smollm2:135m", "c0c294ef90e7", "97 MB", "About a minute ago"]]
    assert list_rows(tags, prefix="gemma", now=NOW) == []
    ps = [{"name": "a:latest", "digest": "1" * 64, "size": 365_000_000, "size_vram": 0, "context_length": 4096,
           "expires_at": "2026-01-01T12:04:30Z"},
          {"name": "b:latest", "digest": "2" * 64, "size": 10, "size_vram": 10, "context_length": 2048,
           "expires_at": "2318-01-01T00:00:00Z"},
          {"name": "c:latest", "digest": "3" * 64, "size": 10, "size_vram": 10, "context_length": 2048,
           "expires_at": "2026-01-01T11:59:00Z"}]
    rows = ps_rows(ps, now=NOW)
    assert rows[0] == ["a:latest", "111111111111", "365 MB", "100% CPU", "4096", "4 minutes from now"]
    assert rows[1][-1] == "Forever" and rows[2][-1] == "Stopping..."


def test_show_sections_summary():
    resp = {"model_info": {"general.architecture": "llama", "general.parameter_count": 134515008,
                           "llama.context_length": 8192, "llama.embedding_length": 576},
            "details": {"quantization_level": "Q4_1"}, "capabilities": ["completion"],
            "parameters": 'stop                           "<|im_end|>"\ntemperature                    0',
            "system": "Line one\n\nLine two\nLine three"}
    sections = dict(show_sections(resp))
    assert sections["Model"] == [["architecture", "llama"], ["parameters", "134.52M"], ["context length", "8192"],
                                 ["embedding length", "576"], ["quantization", "Q4_1"]]
    assert sections["Parameters"] == [["stop", '"<|im_end|>"'], ["temperature", "0"]]
    assert sections["System"] == [["Line one"], ["Line two"]]


def test_flag_parsing():
    assert parse_think(None) is None and parse_think("true") is True and parse_think("false") is False
    assert parse_think("high") == "high"
    with pytest.raises(ClientError):
        parse_think("bogus")
    assert parse_format("json") == "json"
    assert parse_format('{"type": "object"}') == {"type": "object"}
    with pytest.raises(ClientError):
        parse_format("{not json")
    assert parse_keepalive("5m") == "5m"
    with pytest.raises(ClientError, match="invalid duration"):
        parse_keepalive("soon")


def test_a_gguf_file_is_told_from_a_model_name(tmp_path, monkeypatch):
    from pyollama.cli.run import looks_like_path

    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.gguf").write_bytes(b"GGUF\x03\x00\x00\x00")
    (tmp_path / "llama3").write_text("not a model")
    assert looks_like_path("model.gguf") and looks_like_path("./missing.gguf") and looks_like_path("~/m.gguf")
    assert not looks_like_path("llama3") and not looks_like_path("smollm2:135m")
    assert not looks_like_path("registry.example/library/m:latest")
