"""Small helpers for the API tests."""
from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Callable
from typing import Any

import httpx

C = "smollm2:135m"      # chat model (Jinja ChatML template, no tools/thinking/insert)
E = "minilm"            # embedding model
T = "tiny"              # 2-layer random llama: fast loads, nonsense text
G = "gemma3"            # base model, no template

GREEDY = {"temperature": 0, "seed": 42}

_RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$")


def lines(r: httpx.Response) -> list[dict[str, Any]]:
    assert r.headers["content-type"].startswith("application/x-ndjson"), r.text
    return [json.loads(x) for x in r.text.splitlines() if x.strip()]


def is_rfc3339(s: str) -> bool:
    return bool(_RFC3339.match(s))


def parse_time(s: str) -> dt.datetime:
    """RFC 3339 with up to nanoseconds (Python keeps microseconds)."""
    m = re.match(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", s)
    assert m, s
    frac = (m.group(2) or ".0")[:7]
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    return dt.datetime.fromisoformat(m.group(1) + frac + zone)


def error_of(r: httpx.Response) -> str:
    body = r.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], r.text
    return body["error"]


def wait_until(cond: Callable[[], bool], timeout: float, every: float = 0.05) -> bool:
    """Poll ``cond`` until it holds or ``timeout`` seconds pass; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(every)
    return cond()
