"""Numbers, sizes, times and durations the way Ollama's CLI writes them.

``human_bytes`` uses decimal units (1 KB = 1000 B), as ``ollama list`` does, so sizes read the same as
Ollama's. ``human_time`` is the relative form of the MODIFIED and UNTIL columns ("2 minutes ago",
"4 minutes from now", "Forever"). ``go_duration`` prints nanoseconds the way Go's ``time.Duration``
does, which is what ``--verbose`` statistics look like in Ollama.

Thread-safety: pure functions.
"""
from __future__ import annotations

import datetime as dt
import math
import re

_UNITS = ((10**12, "TB"), (10**9, "GB"), (10**6, "MB"), (10**3, "KB"))


def human_bytes(n: float) -> str:
    """``4.7 GB``, ``92 MB``, ``1.4 KB``, ``512 B``: one decimal below 10 units, none above."""
    n = int(n)
    for size, unit in _UNITS:
        if n >= size:
            value = n / size
            if value >= 10 or value == int(value):
                return f"{int(value)} {unit}"
            return f"{math.floor(value * 10) / 10:.1f} {unit}"
    return f"{n} B"


def human_number(n: float) -> str:
    """Parameter counts: ``134.52M``, ``7.24B``, ``1.5K``."""
    n = float(n)
    for size, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= size:
            v = n / size
            text = f"{v:.2f}".rstrip("0").rstrip(".")
            return f"{text}{unit}"
    return str(int(n))


def _span(seconds: float) -> str:
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(seconds / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 14:
        return f"{hours // 24} days"
    if hours < 24 * 60:
        return f"{hours // (24 * 7)} weeks"
    if hours < 24 * 730:
        return f"{hours // (24 * 30)} months"
    return f"{int(seconds // (86400 * 365))} years"


def human_time(when: dt.datetime | None, zero: str = "Never", now: dt.datetime | None = None) -> str:
    """Relative to now: ``"3 minutes ago"``, ``"4 minutes from now"``; more than 20 years ahead (keep_alive
    -1) is ``"Forever"``."""
    if when is None:
        return zero
    now = now or dt.datetime.now(dt.timezone.utc)
    delta = (now - when).total_seconds()
    if delta < -20 * 365 * 86400:
        return "Forever"
    if delta < 0:
        return _span(-delta) + " from now"
    return _span(delta) + " ago"


_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\d)[Tt ](\d\d:\d\d:\d\d)(?:\.(\d+))?([Zz]|[+-]\d\d:\d\d)$")


def parse_time(text: str | None) -> dt.datetime | None:
    """RFC 3339 with up to nanoseconds (Python 3.10's ``fromisoformat`` takes neither ``Z`` nor more than
    six fraction digits). ``None`` for empty or Go's zero time."""
    if not text:
        return None
    m = _RFC3339.match(text.strip())
    if not m:
        return None
    frac = (m.group(3) or "0")[:6].ljust(6, "0")
    zone = "+00:00" if m.group(4) in ("Z", "z") else m.group(4)
    t = dt.datetime.fromisoformat(f"{m.group(1)}T{m.group(2)}.{frac}{zone}")
    return None if t.year <= 1 else t


def go_duration(ns: float) -> str:
    """Go's ``time.Duration.String``: ``1.234567s``, ``12.5ms``, ``2m3.5s``, ``850µs``, ``0s``."""
    ns = int(ns)
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{_trim(ns / 1e3, 3)}µs"
    if ns < 1_000_000_000:
        return f"{sign}{_trim(ns / 1e6, 6)}ms"
    h, rem = divmod(ns, 3600 * 10**9)
    m, rem = divmod(rem, 60 * 10**9)
    secs = _trim(rem / 1e9, 9)
    return sign + (f"{h}h" if h else "") + (f"{m}m" if h or m else "") + f"{secs}s"


def _trim(value: float, digits: int) -> str:
    text = f"{value:.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def processor(size: int, size_vram: int, devices: list[dict] | None = None) -> str:
    """The PROCESSOR column of ``ps``: ``100% GPU``, ``100% CPU`` or ``48%/52% CPU/GPU``; where RPC
    workers hold part of the model (pyollama's ``devices``), they are named by count: ``30%/70% CPU/2 RPC``,
    ``100% GPU+1 RPC``."""
    from pyollama.rpc import endpoint_of

    used = [d for d in devices or () if d.get("size")]
    rpc = sum(1 for d in used if endpoint_of(str(d.get("name", ""))))
    local = any(d.get("type") in ("gpu", "igpu") and not endpoint_of(str(d.get("name", ""))) for d in used)
    off = "GPU" if not rpc else f"GPU+{rpc} RPC" if local else f"{rpc} RPC"
    if size_vram <= 0:
        return "100% CPU"
    if size_vram == size:
        return f"100% {off}"
    if size_vram > size or size <= 0:
        return "Unknown"
    cpu = round((size - size_vram) / size * 100)
    return f"{cpu}%/{100 - cpu}% CPU/{off}"
