"""Streaming writers: NDJSON for the native API (one JSON object per line, flushed per chunk), or one
aggregated JSON object when the client asked for ``"stream": false``.

Error handling follows Ollama: an error before anything was written gets a normal status and a JSON
error body; an error after streaming began is one more line ``{"error": "..."}`` (status stays 200).
A client that disconnects cancels the producer (its generator's ``finally`` frees the runner slot and
the scheduler lease) — that is how an abandoned generation stops at once.

Thread-safety: an ASGI application object, used once on the event loop.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

from pyollama.api.errors import NATIVE, error_body, error_response, message_of, status_of
from pyollama.errors import RequestCancelled

log = logging.getLogger("pyollama.api")

NDJSON_TYPE = b"application/x-ndjson"
JSON_TYPE = b"application/json; charset=utf-8"


_ORJSON_OPTS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON. orjson writes a streamed chunk several times faster than the json module;
    what it refuses (an integer past 64 bits, an unknown type) goes through json as before."""
    try:
        return orjson.dumps(obj, option=_ORJSON_OPTS)
    except TypeError:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def joined(items: list[dict[str, Any]], text_key: str, inner: str = "") -> dict[str, Any]:
    """``stream: false`` on a native route: the last chunk with the text (under ``text_key``), thinking,
    tool calls and logprobs of all chunks. The first three live in each chunk's ``inner`` object (chat's
    ``message``), or in the chunk itself."""
    out = dict(items[-1]) if items else {}
    parts = [c[inner] for c in items] if inner else items
    part: dict[str, Any] = {text_key: "".join(p.get(text_key, "") for p in parts)}
    thinking = "".join(p.get("thinking", "") for p in parts)
    if thinking:
        part["thinking"] = thinking
    calls = [tc for p in parts for tc in p.get("tool_calls", [])]
    if calls:
        part["tool_calls"] = calls
    if inner:
        out[inner] = {**(out.get(inner) or {"role": "assistant"}), **part}
    else:
        out.update(part)
    lps = [lp for c in items for lp in c.get("logprobs") or []]
    if lps:
        out["logprobs"] = lps
    return out


async def wait_disconnect(receive: Any) -> None:
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            return


async def until_disconnected(receive: Any, coro: Any) -> Any:
    """Await ``coro``, but cancel it and raise RequestCancelled (499, as Ollama) if the client disconnects
    meanwhile: a request waiting in the scheduler's queue leaves it when its client goes."""
    task = asyncio.ensure_future(coro)
    watcher = asyncio.ensure_future(wait_disconnect(receive))
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if task not in done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            log.info("499 request canceled: the client left while waiting for a model")
            raise RequestCancelled("request canceled")
        return task.result()
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


class Chunks:
    """An ASGI response over an async iterator of JSON-able dicts."""

    def __init__(self, chunks: AsyncIterator[Any], *, stream: bool,
                 aggregate: Callable[[list[Any]], dict[str, Any]] | None = None,
                 on_close: Callable[[], Any] | None = None, surface: str = NATIVE):
        self.chunks = chunks
        self.stream = stream
        self.aggregate = aggregate or (lambda items: items[-1] if items else {})
        self.on_close = on_close        # always runs, even if the producer never started (lease release)
        self.surface = surface          # the error shape (native, openai, anthropic)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        task = asyncio.ensure_future(self._run(send))
        watcher = asyncio.ensure_future(wait_disconnect(receive))
        try:
            done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if task not in done:
                log.info("client disconnected; stopping its request")
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            else:
                task.result()
        finally:
            if not task.done():       # cancelled from outside (server shutdown): stop the producer too,
                task.cancel()         # before it answers on a connection the server has already ended
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            aclose = getattr(self.chunks, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
            if self.on_close is not None:
                self.on_close()

    async def _run(self, send: Any) -> None:
        if self.stream:
            await self._stream(send)
        else:
            await self._whole(send)

    async def _stream(self, send: Any) -> None:
        started = False
        try:
            async for chunk in self.chunks:
                line = dumps(chunk) + b"\n"
                if not started:
                    await send({"type": "http.response.start", "status": 200,
                                "headers": [(b"content-type", NDJSON_TYPE)]})
                    started = True
                await send({"type": "http.response.body", "body": line, "more_body": True})
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - any failure becomes the error line/status
            if not started:
                await error_response(e, self.surface)({"type": "http"}, _no_receive, send)
                return
            if status_of(e) >= 500:
                log.error("error while streaming: %s", message_of(e))
            await send({"type": "http.response.body", "body": dumps(error_body(e)) + b"\n", "more_body": True})
        if not started:
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", NDJSON_TYPE)]})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _whole(self, send: Any) -> None:
        items: list[dict[str, Any]] = []
        try:
            async for chunk in self.chunks:
                items.append(chunk)
            body = dumps(self.aggregate(items))
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - any failure becomes the error status
            await error_response(e, self.surface)({"type": "http"}, _no_receive, send)
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", JSON_TYPE), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


async def _no_receive() -> dict[str, Any]:
    return {"type": "http.disconnect"}
