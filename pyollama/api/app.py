"""The ASGI application: routes, the error handlers, the safety middleware and the scheduler's lifespan.

    app = create_app(Config.from_env())          # an ASGI app for uvicorn (pyollama.api.server.serve)

Thread-safety: built once; requests run on the event loop.
"""
from __future__ import annotations

import asyncio

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from pyollama import rpc
from pyollama.api import anthropic, chat, embed, generate, metrics, models, openai, rerank, responses
from pyollama.api.errors import error_response, shaped_body, surface_of
from pyollama.api.security import UI_PATH, Guard
from pyollama.api.state import ServerState
from pyollama.config import Config
from pyollama.errors import PyollamaError
from pyollama.runner import spare
from pyollama.scheduler import Memory, Scheduler
from pyollama.scheduler import memory as mem
from pyollama.store import Store

log = logging.getLogger("pyollama.api")
UI_DIR = Path(__file__).with_name("ui")

ROUTES = [
    Route("/", models.root, methods=["GET"]),                      # HEAD is implied by GET
    Route("/api/version", models.version, methods=["GET"]),
    Route("/api/generate", generate.generate, methods=["POST"]),
    Route("/api/chat", chat.chat, methods=["POST"]),
    Route("/api/embed", embed.embed, methods=["POST"]),
    Route("/api/embeddings", embed.embeddings, methods=["POST"]),
    Route("/api/rerank", rerank.rerank, methods=["POST"]),
    Route("/api/tokenize", embed.tokenize, methods=["POST"]),
    Route("/api/detokenize", embed.detokenize, methods=["POST"]),
    Route("/api/tags", models.tags, methods=["GET"]),
    Route("/api/show", models.show, methods=["POST"]),
    Route("/api/create", models.create_model, methods=["POST"]),
    Route("/api/copy", models.copy, methods=["POST"]),
    Route("/api/delete", models.delete, methods=["DELETE"]),
    Route("/api/pull", models.pull, methods=["POST"]),
    Route("/api/push", models.push, methods=["POST"]),
    Route("/api/ps", models.ps, methods=["GET"]),
    Route("/api/blobs/{digest}", models.head_blob, methods=["HEAD"]),
    Route("/api/blobs/{digest}", models.post_blob, methods=["POST"]),
    # OpenAI (docs/contract.md §11) and Anthropic (§12) compatibility: translations onto the native chat turn.
    Route("/v1/chat/completions", openai.chat_completions, methods=["POST"]),
    Route("/v1/completions", openai.completions, methods=["POST"]),
    Route("/v1/embeddings", openai.embeddings, methods=["POST"]),
    Route("/v1/rerank", rerank.rerank_v1, methods=["POST"]),
    Route("/v1/models", openai.list_models, methods=["GET"]),
    Route("/v1/models/{model:path}", openai.retrieve_model, methods=["GET"]),
    Route("/v1/responses", responses.create_response, methods=["POST"]),
    Route("/v1/messages", anthropic.messages, methods=["POST"]),
    Route("/v1/messages/count_tokens", anthropic.count_tokens, methods=["POST"]),
    Route("/metrics", metrics.metrics, methods=["GET"]),
]


def runner_factory(cfg: Config) -> Callable[[Any], Any]:
    """``PYOLLAMA_RUNNER``: a child process per model (default) or in this process."""
    from pyollama import runner as R

    if cfg.runner == "process":
        cls = getattr(R, "ProcessRunner", None)
        if cls is not None:
            def process_runner(spec: Any) -> Any:
                # Called by the scheduler on the event loop: the child's messages are read there.
                try:
                    loop = asyncio.get_running_loop()
                except RuntimeError:
                    loop = None
                return cls(spec, loop=loop, hang_timeout=cfg.runner_timeout, step_timeout=cfg.step_timeout)
            return process_runner
        log.warning("ProcessRunner is not available in this build; models run inside the server process")
    return R.Runner


async def _pyollama_error(request: Request, exc: Exception) -> Response:
    return error_response(exc, surface_of(request.url.path))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    text = {404: "404 page not found", 405: "405 method not allowed"}.get(exc.status_code, str(exc.detail))
    return JSONResponse(shaped_body(surface_of(request.url.path), exc.status_code, text),
                        status_code=exc.status_code, headers=exc.headers)


class CatchAll:
    """Answers every exception a route lets escape, inside Starlette's ServerErrorMiddleware: that one
    sends its 500 and then re-raises, and the server resets the connection — a keep-alive client's *next*
    request would fail. Here the error becomes a response (in the path's API shape) and the connection
    stays usable. A response already under way is ended cleanly (a stream reports its own errors)."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = {"started": False, "ended": False}

        async def tracked(msg: dict[str, Any]) -> None:
            if msg["type"] == "http.response.start":
                state["started"] = True
            elif msg["type"] == "http.response.body" and not msg.get("more_body", False):
                state["ended"] = True
            await send(msg)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:  # noqa: BLE001 - the point: nothing escapes to the server
            if not state["started"]:
                await error_response(exc, surface_of(scope.get("path", "")))(scope, receive, send)
                return
            log.error("request failed after its response began: %s", exc, exc_info=True)
            if not state["ended"]:
                try:
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                except Exception:  # noqa: BLE001 - the client is gone
                    pass


class PageHeaders:
    """The chat page's files: nothing is run or styled from anywhere but this server (images may be data:
    URLs, the pictures a user attaches)."""

    HEADERS = [(b"content-security-policy", b"default-src 'self'; img-src 'self' data:"),
               (b"x-content-type-options", b"nosniff")]

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        async def with_headers(msg: dict[str, Any]) -> None:
            if msg["type"] == "http.response.start":
                msg = {**msg, "headers": [*msg.get("headers", []), *self.HEADERS]}
            await send(msg)
        await self.app(scope, receive, with_headers)


def create_app(cfg: Config, *, store: Store | None = None, scheduler: Scheduler | None = None,
               factory: Callable[[Any], Any] | None = None, memory: Callable[[], Memory] | None = None) -> Any:
    """The server as an ASGI app. Everything not given is built from ``cfg``."""
    probe = memory or mem.probe
    if memory is None and cfg.rpc_servers:
        if cfg.runner == "process":
            # Workers a runner holds are not probed (one client each): the scheduler says which.
            pool = rpc.Pool(cfg.rpc_servers, held=lambda: scheduler.held_workers() if scheduler else ())
            probe = mem.Probe(workers=pool)
        else:
            log.warning("PYOLLAMA_RPC_SERVERS is ignored with PYOLLAMA_RUNNER=thread: a worker that goes away "
                        "aborts the process that uses it, which must not be the server")
    m = probe()
    for g in m.gpus:
        log.info("device %s: %.1f GiB free of %.1f GiB", g.name, g.free / (1 << 30), g.total / (1 << 30))
    # The context-length tier and the runner count follow this machine's GPUs: a worker's memory is often
    # its system RAM, and what it holds is not known until a model is placed there.
    local = [g for g in m.gpus if rpc.endpoint_of(g.name) is None]
    store = store if store is not None else Store(cfg.models)
    if scheduler is None:
        scheduler = Scheduler(factory or runner_factory(cfg), memory=probe, max_runners=cfg.max_runners(len(local)),
                              max_queue=cfg.max_queue, keep_alive=cfg.keep_alive, load_timeout=cfg.load_timeout,
                              gpu_overhead=cfg.gpu_overhead, spread=cfg.sched_spread)
    meter = metrics.Metrics(scheduler, ROUTES) if cfg.metrics else None
    state = ServerState(cfg=cfg, store=store, sched=scheduler, total_vram=sum(g.total for g in local), metrics=meter)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await scheduler.start()
        try:
            yield
        finally:
            log.info("shutting down: unloading %d model(s)", len(scheduler.loaded()))
            spare.shutdown()            # the spare runner `serve` keeps, if it keeps one
            await scheduler.close()

    routes = list(ROUTES)
    if cfg.ui:
        # The chat page: static files over the API (Mount redirects /ui to /ui/).
        routes.append(Mount(UI_PATH, app=PageHeaders(StaticFiles(directory=UI_DIR, html=True)), name="ui"))
    app = Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(CatchAll)], exception_handlers={
        PyollamaError: _pyollama_error, HTTPException: _http_error})
    app.state.server = state
    guarded = Guard(app, cfg)
    return metrics.Metered(guarded, meter) if meter is not None else guarded
