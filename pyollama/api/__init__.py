"""The HTTP server: Ollama's native API on Starlette + uvicorn.

    from pyollama.api import create_app, serve
    serve()                                   # `pyollama serve`: OLLAMA_HOST, default 127.0.0.1:11434

One module per surface: ``generate``, ``chat``, ``embed`` (embed, embeddings, tokenize, detokenize),
``models`` (version, tags, show, create, copy, delete, blobs, pull, push, ps). Shared pieces: ``body``
(request checking), ``prompt`` (templates, truncation, output parsers), ``inference`` (one generation as
events), ``ndjson`` (streaming writers), ``state`` (store + scheduler), ``errors`` (the one exception →
status table), ``security`` (Host guard, CORS, API key, body limit), ``app`` (routes), ``server``.
"""
from __future__ import annotations

from pyollama.api.app import create_app
from pyollama.api.server import serve

__all__ = ["create_app", "serve"]
