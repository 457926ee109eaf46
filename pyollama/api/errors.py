"""The one exception → HTTP status table, and the error body in each surface's shape: native
``{"error": "..."}``, OpenAI ``{"error": {"message", "type", "param", "code"}}`` and Anthropic
``{"type": "error", "error": {"type", "message"}, "request_id"}`` (docs/contract.md §1.5, §16). The surface
follows from the path (``surface_of``), so every route and the middleware answer in their API's shape.

Statuses come from exception *classes*, never from message text: every PyollamaError carries its default
status (``pyollama.errors``); ``OVERRIDES`` changes it where the HTTP contract differs from the class
default, and ``FOREIGN`` covers exceptions that are not ours. Anything unknown is a 500.

Thread-safety: immutable tables and pure functions.
"""
from __future__ import annotations

import asyncio
import logging
import secrets

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


NATIVE, OPENAI, ANTHROPIC = "native", "openai", "anthropic"

ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                   404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                   503: "overloaded_error", 529: "overloaded_error"}


def surface_of(path: str) -> str:
    if path == "/v1/messages" or path.startswith("/v1/messages/"):
        return ANTHROPIC
    if path == "/v1" or path.startswith("/v1/"):
        return OPENAI
    return NATIVE


def openai_type(status: int) -> str:
    if status == 404:
        return "not_found_error"
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


def shaped_body(surface: str, status: int, message: str, code: str | None = None) -> dict[str, object]:
    if surface == OPENAI:
        return {"error": {"message": message, "type": openai_type(status), "param": None, "code": code}}
    if surface == ANTHROPIC:
        kind = ANTHROPIC_TYPES.get(status, "invalid_request_error" if 400 <= status < 500 else "api_error")
        return {"type": "error", "error": {"type": kind, "message": message},
                "request_id": "req_" + secrets.token_hex(12)}
    return {"error": message}


def error_response(exc: BaseException, surface: str = NATIVE) -> JSONResponse:
    status = status_of(exc)
    if status >= 500:
        log.error("request failed: %s", message_of(exc), exc_info=not isinstance(exc, E.PyollamaError))
    return JSONResponse(shaped_body(surface, status, message_of(exc)), status_code=status)
