"""``POST /api/rerank`` and llama-server's ``/v1/rerank`` (Jina's shape): score documents against a query
with a reranker model (GGUF ``pooling_type`` rank). Ollama has no rerank endpoint (its #3368).

Each (query, document) pair is tokenized here, in the server, exactly as llama-server forms it (the
GGUF's ``rerank`` chat template when it has one, else BOS query EOS SEP document EOS as the vocabulary
asks), and the runner returns the classifier's first output for each pair: llama-server's score, raw.

Thread-safety: Starlette endpoints on the event loop; runner calls run in worker threads.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pyollama import _native
from pyollama.api import body as B
from pyollama.api import prompt as P
from pyollama.api.inference import in_thread
from pyollama.api.state import ServerState
from pyollama.errors import InvalidRequest, PyollamaError
from pyollama.scheduler import parse_keep_alive, plan
from pyollama.store.model import ModelRecord

RERANK_TEMPLATE = "tokenizer.chat_template.rerank"


def pair_tokens(vocab: _native.Vocab, template: str | None, query: str, document: str) -> list[int]:
    """The tokens llama-server scores for one pair (its ``format_prompt_rerank`` at the pin)."""
    if template is not None:
        prompt = template.replace("{query}", query).replace("{document}", document)
        return vocab.tokenize(prompt, add_special=False, parse_special=True)
    eos = vocab.eos if vocab.eos >= 0 else vocab.sep
    out = [vocab.bos] if vocab.add_bos else []
    out += vocab.tokenize(query, add_special=False, parse_special=False)
    if vocab.add_eos:
        out.append(eos)
    if vocab.add_sep:
        out.append(vocab.sep)
    out += vocab.tokenize(document, add_special=False, parse_special=False)
    if vocab.add_eos:
        out.append(eos)
    return out


def _pairs(rec: ModelRecord, vocab: _native.Vocab, query: str, docs: list[str]) -> list[list[int]]:
    template = plan.header(rec.model_path).kv.get(RERANK_TEMPLATE)
    return [pair_tokens(vocab, template if isinstance(template, str) else None, query, d) for d in docs]


def _request(b: dict[str, Any]) -> tuple[str, str, list[str], int | None, bool]:
    model = B.string(b, "model")
    if not model:
        raise InvalidRequest("model is required")
    query = b.get("query")
    if not isinstance(query, str):
        raise InvalidRequest('"query" must be a string' if "query" in b else '"query" must be provided')
    docs = b.get("documents")
    if not isinstance(docs, list) or not docs or not all(isinstance(d, str) for d in docs):
        raise InvalidRequest('"documents" must be a non-empty string array')
    top_n = b.get("top_n")
    if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1):
        raise InvalidRequest('"top_n" must be a positive integer')
    return model, query, docs, top_n, bool(B.boolean(b, "return_documents", False))


async def _rank(request: Request) -> tuple[dict[str, Any], list[dict[str, Any]], int, int]:
    """The ranked results, the tokens scored and the load time, for either route."""
    st: ServerState = request.app.state.server
    b = await B.read_json(request)
    model, query, docs, top_n, with_docs = _request(b)
    keep_alive = parse_keep_alive(b.get("keep_alive"))
    rec = await st.record(model)
    if "rerank" not in P.capabilities(rec):
        raise InvalidRequest(f'"{model}" does not support reranking')
    load = st.load_request(rec, B.options(b))
    st.vocabs.prefetch(rec.model_path)
    t_start = time.perf_counter_ns()
    async with await st.lease(request, load, keep_alive) as lease:
        t_loaded = time.perf_counter_ns()
        vocab = await st.vocabs.vocab(rec.model_path)
        pairs = await in_thread(_pairs, rec, vocab, query, docs)
        # Never cut: a pair without its end (the document's tail, a template suffix whose last token the
        # score is read at) scores wrongly without a word. Too long is a 400, as llama-server refuses it.
        scores, n_tokens = await in_thread(lease.runner.embed, pairs, False, False)
    scores = np.asarray(scores, dtype=np.float32)[:, 0]
    if not np.isfinite(scores).all():
        raise PyollamaError("rerank scores contain NaN or Inf values")
    order = sorted(range(len(docs)), key=lambda i: -float(scores[i]))[:top_n or len(docs)]
    results = []
    for i in order:
        r: dict[str, Any] = {"index": i, "relevance_score": float(scores[i])}
        if with_docs:
            r["document"] = {"text": docs[i]}
        results.append(r)
    return {"model": model}, results, int(n_tokens), t_loaded - t_start


async def rerank(request: Request) -> Response:
    """``{"model", "query", "documents", "top_n"?, "return_documents"?, "keep_alive"?, "options"?}`` →
    ``{"model", "results": [{"index", "relevance_score", "document"?}], "total_duration", "load_duration",
    "prompt_eval_count"}`` (results best first)."""
    t_start = time.perf_counter_ns()
    head, results, n_tokens, load_ns = await _rank(request)
    return JSONResponse({**head, "results": results, "total_duration": time.perf_counter_ns() - t_start,
                         "load_duration": load_ns, "prompt_eval_count": n_tokens})


async def rerank_v1(request: Request) -> Response:
    """llama-server's ``/v1/rerank`` (Jina's format): ``{"model", "object": "list", "usage", "results"}``."""
    head, results, n_tokens, _ = await _rank(request)
    return JSONResponse({**head, "object": "list", "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens},
                         "results": results})
