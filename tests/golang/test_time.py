"""Go's time.ParseDuration errors quote the input the time package's way (bytes as \\xHH), not strconv's."""
from __future__ import annotations

import pytest

from pyollama.golang.time import format_duration, parse_duration


@pytest.mark.parametrize(("text", "message"), [
    ("10", 'time: missing unit in duration "10"'),
    ('5"x', 'time: invalid duration "5\\"x"'),
    ("1é", 'time: invalid duration "1\\xc3\\xa9"'),
    ("\t1s", 'time: invalid duration "\\x091s"'),
    ("", 'time: invalid duration ""'),
])
def test_errors_quote_as_go(text: str, message: str) -> None:
    with pytest.raises(ValueError) as e:
        parse_duration(text)
    assert str(e.value) == message


def test_round_trip_of_whole_seconds() -> None:
    assert [format_duration(parse_duration(t)) for t in ("5m", "1h", "90s", "0")] == ["5m0s", "1h0m0s", "1m30s",
                                                                                    "0s"]
    assert format_duration(float("inf")) == "forever"
