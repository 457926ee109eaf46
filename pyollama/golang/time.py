"""Go's ``time`` durations: ``time.ParseDuration`` (``OLLAMA_KEEP_ALIVE``, ``keep_alive``) and the way
Ollama prints them.

Thread-safety: pure functions.
"""
from __future__ import annotations

import math
import re

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Go's ``time.ParseDuration`` in seconds: ``"5m"``, ``"1h30m"``, ``"-1.5s"``, ``"0"``.

    A number without a unit is rejected (``"10"``), as in Go; the error text is Go's."""
    s = text
    sign = 1.0
    if s and s[0] in "+-":
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise ValueError(f"time: invalid duration {_quote(text)}")
    total = 0.0
    pos = 0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if m is None or m.group(1) in ("", "."):
            if re.fullmatch(r"[0-9.]+", s[pos:]):
                raise ValueError(f"time: missing unit in duration {_quote(text)}")
            raise ValueError(f"time: invalid duration {_quote(text)}")
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return sign * total


def format_duration(seconds: float) -> str:
    """Seconds in Go's style (``5m0s``, ``1h0m0s``, ``forever`` for infinity)."""
    if math.isinf(seconds):
        return "forever"
    secs = int(seconds)
    h, rem = divmod(secs, 3600)
    m, s = divmod(rem, 60)
    return (f"{h}h" if h else "") + (f"{m}m" if h or m else "") + f"{s}s"


def _quote(s: str) -> str:
    """The time package's own quoting in its errors: ``"`` and ``\\`` escaped, and every byte of a
    non-ASCII or control character as ``\\xHH`` (not strconv.Quote)."""
    out = ['"']
    for c in s:
        if ord(c) >= 0x80 or c < " ":
            rune = "\ufffd" if 0xD800 <= ord(c) < 0xE000 else c     # Go's strings hold no surrogates
            out.extend(f"\\x{b:02x}" for b in rune.encode())
        else:
            out.append("\\" + c if c in '"\\' else c)
    out.append('"')
    return "".join(out)
