"""``keep_alive``: how long a model stays loaded after its last request (docs/contract.md §4).

Seconds as a float: ``0`` unloads as soon as the request finishes, ``math.inf`` keeps the model for
ever (any negative value), ``None`` means "the server default" (``OLLAMA_KEEP_ALIVE``).

Thread-safety: pure functions.
"""
from __future__ import annotations

import math
from typing import Any

from pyollama.golang.time import format_duration, parse_duration
from pyollama.errors import InvalidRequest

FOREVER = math.inf


def parse_keep_alive(value: Any) -> float | None:
    """A request's ``keep_alive``: a Go duration string (``"5m"``, ``"1h30m"``, ``"-1m"``) or a JSON number
    of seconds. A bare numeric string (``"10"``) is rejected because Go's ParseDuration wants a unit.
    ``null``/absent → None. Raises InvalidRequest with Go's wording."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidRequest("keep_alive must be a duration string or a number of seconds")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) and value > 0:
            return FOREVER
        if math.isnan(value):
            raise InvalidRequest("keep_alive must be a number of seconds, not NaN")
        return FOREVER if value < 0 else float(value)
    if isinstance(value, str):
        try:
            secs = parse_duration(value)
        except ValueError as e:
            raise InvalidRequest(str(e)) from None
        return FOREVER if secs < 0 else secs
    raise InvalidRequest("keep_alive must be a duration string or a number of seconds")


format_keep_alive = format_duration
