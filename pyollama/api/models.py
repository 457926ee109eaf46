"""Model management and server info (docs/contract.md §2.0, §2.4–§2.10): ``/``, ``/api/version``, tags, show,
create, copy, delete, blobs, pull, push, ps. Each handler translates to a store or registry call.

Thread-safety: Starlette endpoints on the event loop; store and registry work runs in worker threads.
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import logging
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from pyollama import __version__
from pyollama.api import body as B
from pyollama.api import prompt as P
from pyollama.api.ndjson import Chunks
from pyollama.api.state import ServerState
from pyollama.errors import InvalidModelName, InvalidRequest, ModelNotFound
from pyollama.store import CreateRequest, create, list_models, load_model
from pyollama.store import show as store_show
from pyollama.store.blobs import normalize_digest

log = logging.getLogger("pyollama.api")


# --- running blocking iterators ------------------------------------------------------------------
async def thread_iter(factory: Callable[[], Iterator[Any]]) -> AsyncIterator[Any]:
    """Run a blocking generator (create, pull, push) in its own thread and yield its items here. Closing
    this iterator (client gone) closes the generator after its current item, which cancels the work."""
    loop = asyncio.get_running_loop()
    q: asyncio.Queue = asyncio.Queue()
    stop = threading.Event()

    def put(kind: str, value: Any) -> None:
        with contextlib.suppress(RuntimeError):       # the loop is gone (server stopping)
            loop.call_soon_threadsafe(q.put_nowait, (kind, value))

    def work() -> None:
        try:
            it = factory()
            try:
                for item in it:
                    put("item", item)
                    if stop.is_set():
                        break
            finally:
                close = getattr(it, "close", None)
                if close is not None:
                    close()
            put("end", None)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which re-raises it
            put("error", e)

    threading.Thread(target=work, name="api-worker", daemon=True).start()
    try:
        while True:
            kind, value = await q.get()
            if kind == "item":
                yield value
            elif kind == "end":
                return
            else:
                raise value
    finally:
        stop.set()


def _name(b: dict[str, Any]) -> str:
    name = B.model_name(b)
    if not name:
        raise InvalidRequest("model is required")
    return name


# --- health and version --------------------------------------------------------------------------
async def root(request: Request) -> Response:
    return PlainTextResponse("Ollama is running")


async def version(request: Request) -> Response:
    return JSONResponse({"version": __version__})


# --- listing and showing -------------------------------------------------------------------------
async def tags(request: Request) -> Response:
    st: ServerState = request.app.state.server
    return JSONResponse(await asyncio.to_thread(list_models, st.store))


async def show(request: Request) -> Response:
    st: ServerState = request.app.state.server
    b = await B.read_json(request)
    name = _name(b)
    await st.record(name)                                   # 400 for a bad name, 404 for a missing model
    verbose = bool(B.boolean(b, "verbose"))
    overlay = B.obj(b, "options")

    def work() -> dict[str, Any]:
        out = store_show(st.store, name, verbose=verbose, system=B.string(b, "system") or None,
                         template=B.string(b, "template") or None, options=overlay)
        # The API enforces capabilities with the template engine; show the same list it enforces.
        out["capabilities"] = P.capabilities(load_model(st.store, name))
        return out
    try:
        return JSONResponse(await asyncio.to_thread(work))
    except ModelNotFound:
        raise ModelNotFound(f"model '{name}' not found") from None


async def ps(request: Request) -> Response:
    st: ServerState = request.app.state.server
    models = []
    for e in st.sched.loaded():
        info = e.req.info
        expires = st.sched.expires_wall(e)
        # Sizes are what the runner allocated (weights + KV + compute, upstream's accounting; the
        # booking where it could not say); size_vram == size means all on GPU. kv_cache_type is ours:
        # the type loaded, which the scheduler may have quantized to fit the GPU.
        models.append((expires, {
            "name": info.get("model", e.req.name), "model": info.get("model", e.req.name),
            "size": int(e.placement.total), "digest": info.get("digest", ""), "details": info.get("details", {}),
            "expires_at": _wall_time(expires), "size_vram": int(e.placement.vram),
            "kv_cache_type": getattr(e.spec, "kv_cache_type", "") or "f16",
            "context_length": e.n_ctx, **_devices(e)}))
    models.sort(key=lambda m: -m[0])
    return JSONResponse({"models": [m for _, m in models]})


def _devices(e: Any) -> dict[str, Any]:
    """pyollama's ``devices``: bytes the runner holds on each device (weights + KV + compute), the local
    host memory as "CPU" and RPC workers' devices as RPC[host:port]."""
    info = getattr(e, "runner_info", None)
    if info is None or not info.memory:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for u in info.memory:
        name = "CPU" if u["type"] in ("host", "cpu") else u["device"]
        d = out.setdefault(name, {"name": name, "type": "cpu" if name == "CPU" else u["type"], "size": 0})
        d["size"] += int(u["model"] + u["context"] + u["compute"])
    return {"devices": [d for d in out.values() if d["size"] > 0]}


FAR_FUTURE = _dt.datetime(2318, 1, 1, tzinfo=_dt.timezone.utc).timestamp()


def _wall_time(t: float) -> str:
    """RFC 3339 with nanoseconds, local time; ``inf`` (keep for ever) → Go's far-future maximum, and so
    is any later time (a keep_alive of 1e300 s or "99999999h" is for ever too: no calendar reaches it)."""
    if not t < FAR_FUTURE:
        t = FAR_FUTURE
    from pyollama.store.show import format_time
    return format_time(int(t * 1e9))


# --- create, copy, delete ------------------------------------------------------------------------
def _puller(st: ServerState) -> Any:
    try:
        from pyollama.store.registry import puller
    except ImportError:
        return None
    return puller(st.store)


async def create_model(request: Request) -> Response:
    st: ServerState = request.app.state.server
    b = await B.read_json(request)
    stream = B.stream_flag(b)
    req = CreateRequest.from_api(b)          # validates everything; local-path fields stay empty
    pull = _puller(st)
    return Chunks(thread_iter(lambda: create(st.store, req, pull=pull)), stream=stream)


async def copy(request: Request) -> Response:
    st: ServerState = request.app.state.server
    b = await B.read_json(request)
    src, dst = B.string(b, "source"), B.string(b, "destination")
    try:
        await asyncio.to_thread(st.store.copy, src, dst)
    except ModelNotFound:
        raise ModelNotFound(f'model "{src}" not found') from None
    return Response(status_code=200)


async def delete(request: Request) -> Response:
    st: ServerState = request.app.state.server
    b = await B.read_json(request)
    name = B.model_name(b)
    try:
        await asyncio.to_thread(st.store.delete, name)
    except InvalidModelName:
        raise InvalidModelName(f'name "{name}" is invalid') from None
    except ModelNotFound:
        raise ModelNotFound(f"model '{name}' not found") from None
    return Response(status_code=200)


# --- blobs ---------------------------------------------------------------------------------------
async def head_blob(request: Request) -> Response:
    st: ServerState = request.app.state.server
    raw = request.path_params["digest"]
    digest = normalize_digest(raw)
    if not await asyncio.to_thread(st.store.blobs.has, digest):
        return JSONResponse({"error": f'blob "{raw}" not found'}, status_code=404)
    return Response(status_code=200)


async def post_blob(request: Request) -> Response:
    """Stream the body to disk, hashing as it goes: 201 when stored, 200 if it was already there."""
    st: ServerState = request.app.state.server
    digest = normalize_digest(request.path_params["digest"])
    if await asyncio.to_thread(st.store.blobs.has, digest):
        return Response(status_code=200)
    q: queue.Queue = queue.Queue(maxsize=64)

    def chunks() -> Iterator[bytes]:
        while True:
            c = q.get()
            if c is None:
                return
            yield c

    writer = asyncio.ensure_future(asyncio.to_thread(st.store.blobs.put_stream, chunks(), digest))
    try:
        async for chunk in request.stream():
            if writer.done():
                break
            if chunk:
                try:
                    q.put_nowait(chunk)
                except queue.Full:
                    await asyncio.to_thread(q.put, chunk)
    finally:
        if not writer.done():
            try:
                q.put_nowait(None)
            except queue.Full:
                await asyncio.to_thread(q.put, None)
    blob = await writer
    return Response(status_code=201 if blob.created else 200)


# --- registry ------------------------------------------------------------------------------------
async def pull(request: Request) -> Response:
    return await _registry(request, "pull")


async def push(request: Request) -> Response:
    return await _registry(request, "push")


async def _registry(request: Request, what: str) -> Response:
    st: ServerState = request.app.state.server
    b = await B.read_json(request)
    name = _name(b)
    stream = B.stream_flag(b)
    insecure = B.boolean(b, "insecure")
    from pyollama.store import registry

    fn = registry.pull if what == "pull" else registry.push
    return Chunks(thread_iter(lambda: fn(st.store, name, insecure=insecure)), stream=stream)
