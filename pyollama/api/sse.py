"""Server-sent events for the OpenAI and Anthropic surfaces: ``text/event-stream``, one event per
item, ``event: <name>\\n`` (when the item has a name) then ``data: <json>\\n\\n``, flushed per event;
OpenAI's chat and completion streams end with ``data: [DONE]\\n\\n``.

Errors follow the native writer (``Chunks``, which this extends, so client disconnects cancel the
generation the same way): before the first event, a normal status with the surface's error body; after
it, one more event in the surface's shape (``error_event``) and the stream ends (status stays 200).
With ``stream=False`` the items are aggregated into one JSON body, as ``Chunks`` does.

Thread-safety: an ASGI application object, used once on the event loop.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from pyollama.api.errors import error_response, message_of, status_of
from pyollama.api.ndjson import Chunks, _no_receive, dumps

log = logging.getLogger("pyollama.api")

SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
               (b"x-accel-buffering", b"no")]
DONE = b"data: [DONE]\n\n"

Event = tuple[str | None, Any]              # (event name or None, JSON-able data)


def frame(name: str | None, data: Any) -> bytes:
    head = f"event: {name}\n".encode() if name else b""
    return head + b"data: " + dumps(data) + b"\n\n"


class EventStream(Chunks):
    def __init__(self, events: AsyncIterator[Any], *, stream: bool, surface: str,
                 error_event: Callable[[BaseException], Event], done_marker: bool = False,
                 aggregate: Callable[[list[Any]], dict[str, Any]] | None = None,
                 on_close: Callable[[], Any] | None = None):
        super().__init__(events, stream=stream, aggregate=aggregate, on_close=on_close, surface=surface)
        self.error_event = error_event
        self.done_marker = done_marker

    async def _stream(self, send: Any) -> None:
        started = False

        async def out(body: bytes) -> None:
            nonlocal started
            if not started:
                await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
                started = True
            await send({"type": "http.response.body", "body": body, "more_body": True})

        try:
            async for name, data in self.chunks:
                await out(frame(name, data))
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - any failure becomes the error status or event
            if not started:
                await error_response(e, self.surface)({"type": "http"}, _no_receive, send)
                return
            if status_of(e) >= 500:
                log.error("error while streaming: %s", message_of(e))
            await out(frame(*self.error_event(e)))
        else:
            if self.done_marker:
                await out(DONE)
        if not started:
            await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
