"""The one exception → HTTP status table, and the native error body ``{"error": "..."}``.

Statuses come from exception *classes*, never from message text: every PyollamaError carries its default
status (``pyollama.errors``); ``OVERRIDES`` changes it where the HTTP contract differs from the class
default, and ``FOREIGN`` covers exceptions that are not ours. Anything unknown is a 500.

Thread-safety: immutable tables and pure functions.
"""
from __future__ import annotations

import asyncio
import logging

from starlette.responses import JSONResponse

from pyollama import errors as E

log = logging.getLogger("pyollama.api")

# Where the API answers differently from the class default (looked up along the class's MRO).
OVERRIDES: dict[type[BaseException], int] = {
    # A stored model whose weights fail to load is the server's problem, not the request's (Ollama: 500).
    E.ModelLoadError: 500,
    E.ContextError: 500,
}

FOREIGN: dict[type[BaseException], int] = {
    NotImplementedError: 501,
    asyncio.TimeoutError: 500,
    MemoryError: 500,
}


def status_of(exc: BaseException) -> int:
    for cls in type(exc).__mro__:
        if cls in OVERRIDES:
            return OVERRIDES[cls]
        if cls in FOREIGN:
            return FOREIGN[cls]
    if isinstance(exc, E.PyollamaError):
        return int(exc.status)
    return 500


def message_of(exc: BaseException) -> str:
    msg = str(exc).strip()
    return msg or type(exc).__name__


def error_body(exc: BaseException) -> dict[str, str]:
    return {"error": message_of(exc)}


def error_response(exc: BaseException) -> JSONResponse:
    status = status_of(exc)
    if status >= 500:
        log.error("request failed: %s", message_of(exc), exc_info=not isinstance(exc, E.PyollamaError))
    return JSONResponse(error_body(exc), status_code=status)
