"""``POST /api/embed``, the legacy ``/api/embeddings`` (docs/contract.md §2.3): requests that need a loaded model
but no generation; and ``POST /api/tokenize`` / ``POST /api/detokenize`` (Ollama #3582), which need only the
model's vocabulary (the server's own vocab-only copy: nothing is loaded, no runner is disturbed).

Thread-safety: Starlette endpoints on the event loop; runner calls run in worker threads.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pyollama.api import body as B
from pyollama.api import prompt as P
from pyollama.api.conversation import token_ids, vocab_size
from pyollama.api.inference import in_thread
from pyollama.api.state import ServerState
from pyollama.errors import InvalidRequest, PyollamaError
from pyollama.scheduler import parse_keep_alive


def _inputs(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise InvalidRequest("invalid input type")


def shorten(vectors: np.ndarray, dimensions: int) -> np.ndarray:
    """Keep the first ``dimensions`` values and normalize again (Matryoshka-style truncation)."""
    if 0 < dimensions < vectors.shape[1]:
        vectors = np.array(vectors[:, :dimensions], dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        np.divide(vectors, norms, out=vectors, where=norms > 0)
    return vectors


async def compute(request: Request, st: ServerState, model: str, inputs: list[str], *, truncate: bool = True,
                  dimensions: int = 0, keep_alive: float | None = None,
                  options: dict[str, Any] | None = None) -> tuple[np.ndarray, int, int] | None:
    """Embed ``inputs`` with ``model`` (shared by /api/embed and /v1/embeddings): the float32 vectors (one
    row per input, shortened to ``dimensions``), the prompt token count and when the model was ready
    (perf_counter ns). ``None`` when there was nothing to embed (the model is loaded all the same)."""
    if dimensions < 0:
        raise InvalidRequest("dimensions must not be negative")
    rec = await st.record(model)
    if "rerank" in P.capabilities(rec):
        raise InvalidRequest(f'"{model}" is a reranker: it scores documents (/api/rerank), it does not embed')
    load = st.load_request(rec, options or {})
    async with await st.lease(request, load, keep_alive) as lease:
        t_loaded = time.perf_counter_ns()
        if not inputs:
            return None
        vectors, n_tokens = await in_thread(lease.runner.embed, inputs, truncate)
    vectors = np.asarray(vectors, dtype=np.float32)
    if not np.isfinite(vectors).all():
        raise PyollamaError("embedding contains NaN or Inf values")
    return shorten(vectors, dimensions), int(n_tokens), t_loaded


async def embed(request: Request) -> Response:
    st: ServerState = request.app.state.server
    t_start = time.perf_counter_ns()
    b = await B.read_json(request)
    model = B.string(b, "model")
    inputs = _inputs(b.get("input"))
    truncate = B.boolean(b, "truncate", True)
    dimensions = B.integer(b, "dimensions", 0)
    keep_alive = parse_keep_alive(b.get("keep_alive"))
    options = B.options(b)
    out = await compute(request, st, model, inputs, truncate=bool(truncate), dimensions=dimensions,
                        keep_alive=keep_alive, options=options)
    if out is None:
        return JSONResponse({"model": model, "embeddings": []})
    vectors, n_tokens, t_loaded = out
    return JSONResponse({"model": model, "embeddings": vectors.tolist(),
                         "total_duration": time.perf_counter_ns() - t_start,
                         "load_duration": t_loaded - t_start, "prompt_eval_count": n_tokens})


async def embeddings(request: Request) -> Response:
    """Legacy single-prompt endpoint: ``{"embedding": [...]}``; an empty prompt only loads the model."""
    st: ServerState = request.app.state.server
    b = await B.read_json(request)
    model = B.string(b, "model")
    if not model:
        raise InvalidRequest("model is required")
    text = B.string(b, "prompt")
    keep_alive = parse_keep_alive(b.get("keep_alive"))
    options = B.options(b)
    rec = await st.record(model)
    load = st.load_request(rec, options)
    async with await st.lease(request, load, keep_alive) as lease:
        if not text:
            return JSONResponse({"embedding": []})
        vectors, _ = await in_thread(lease.runner.embed, [text], True)
    return JSONResponse({"embedding": np.asarray(vectors[0], dtype=np.float32).tolist()})


def _unused_load_fields(b: dict[str, Any]) -> None:
    """``options`` and ``keep_alive`` are still read (a malformed value is a 400, as on every route), but the
    vocabulary needs neither: tokenizing never loads the model or touches a loaded one."""
    B.options(b)
    parse_keep_alive(b.get("keep_alive"))


async def tokenize(request: Request) -> Response:
    """``{"model", "content", "add_special"?, "parse_special"?}`` → ``{"model", "tokens"}``."""
    st: ServerState = request.app.state.server
    b = await B.read_json(request)
    model = B.string(b, "model")
    text = B.string(b, "content") or B.string(b, "prompt") or B.string(b, "text")
    add_special = B.boolean(b, "add_special", True)
    parse_special = B.boolean(b, "parse_special", True)
    _unused_load_fields(b)
    rec = await st.record(model)
    tokens = await st.vocabs.tokenize(rec.model_path, text, bool(add_special), bool(parse_special)) if text else []
    return JSONResponse({"model": model, "tokens": list(tokens)})


async def detokenize(request: Request) -> Response:
    """``{"model", "tokens"}`` → ``{"model", "content"}``."""
    st: ServerState = request.app.state.server
    b = await B.read_json(request)
    model = B.string(b, "model")
    _unused_load_fields(b)
    rec = await st.record(model)
    tokens = token_ids(b.get("tokens") if b.get("tokens") is not None else [], "tokens", vocab_size(rec))
    text = await st.vocabs.detokenize(rec.model_path, tokens) if tokens else ""
    return JSONResponse({"model": model, "content": text})
