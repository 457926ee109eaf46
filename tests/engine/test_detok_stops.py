"""Incremental detokenization and stop strings: pure-Python parts of the engine."""
from __future__ import annotations

from hypothesis import given, strategies as st

from pyollama.engine.detok import Detokenizer
from pyollama.engine.stops import StopMatcher


def _pieces_for(text: str, cuts: list[int]) -> list[bytes]:
    data = text.encode()
    bounds = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


@given(st.text(), st.lists(st.integers(min_value=0, max_value=400), max_size=30))
def test_detokenizer_never_splits_characters(text, cuts):
    pieces = _pieces_for(text, cuts)
    d = Detokenizer(lambda t: pieces[t])
    out = [d.feed(i) for i in range(len(pieces))]
    assert all("\ufffd" not in o for o in out)     # no half characters handed out
    assert "".join(out) + d.flush() == text


def test_detokenizer_holds_back_then_releases():
    emoji = "🦙".encode()                          # 4 bytes, split over three tokens
    pieces = [b"a", emoji[:1], emoji[1:3], emoji[3:] + b"b"]
    d = Detokenizer(lambda t: pieces[t])
    assert [d.feed(i) for i in range(4)] == ["a", "", "", "🦙b"]


def test_detokenizer_flushes_invalid_tail():
    d = Detokenizer(lambda t: b"\xe2\x82")
    assert d.feed(0) == ""
    assert d.flush() == "\ufffd"


@given(st.text(alphabet="ab<|>x", max_size=60), st.lists(st.integers(0, 60), max_size=10),
       st.sampled_from([["<|"], ["ab", "xx"], ["<|end|>"], ["b"]]))
def test_stop_matcher_equals_reference(text, cuts, stops):
    """Streaming in any chunking gives exactly the text before the first stop string. Output is
    append-only, so equality also proves no part of a stop string was ever emitted."""
    bounds = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    m = StopMatcher(stops)
    out, matched = "", None
    for a, b in zip(bounds, bounds[1:]):
        piece, matched = m.feed(text[a:b])
        out += piece
        if matched:
            break
    if matched is None:
        out += m.flush()
    first = min((text.find(s) for s in stops if s in text), default=-1)
    expected = text if first == -1 else text[:first]
    assert out == expected
    assert (matched is not None) == (first != -1)


def test_stop_matcher_holds_partial_match():
    m = StopMatcher(["<|im_end|>"])
    assert m.feed("Hello <|im") == ("Hello ", None)
    assert m.feed("_e") == ("", None)
    assert m.feed("nd|> trailing") == ("", "<|im_end|>")


def test_stop_matcher_releases_false_alarm():
    m = StopMatcher(["STOP"])
    assert m.feed("ST") == ("", None)
    assert m.feed("ART") == ("START", None)
