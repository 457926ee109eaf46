"""The HTTP server: Ollama's native API, plus its OpenAI and Anthropic compatible ones, on Starlette + uvicorn.

    from pyollama.api import create_app, serve
    serve()                                   # `pyollama serve`: OLLAMA_HOST, default 127.0.0.1:11434

One module per surface: ``generate``, ``chat``, ``embed`` (embed, embeddings, tokenize, detokenize),
``models`` (version, tags, show, create, copy, delete, blobs, pull, push, ps); ``openai`` (/v1/chat/completions,
/v1/completions, /v1/embeddings, /v1/models), ``responses`` (/v1/responses), ``anthropic`` (/v1/messages,
/v1/messages/count_tokens). Shared pieces: ``body`` (request checking), ``conversation`` (one chat turn, what
every chat-like surface translates into), ``toolchoice`` (tool_choice as a grammar), ``compat`` (what the
OpenAI and Anthropic translations share), ``prompt`` (templates, truncation, output parsers), ``inference``
(one generation as events), ``ndjson`` / ``sse`` (streaming writers), ``state`` (store + scheduler),
``errors`` (the one exception → status table, error shapes per surface), ``security`` (Host guard, CORS,
API key, body limit), ``app`` (routes), ``server``.
"""
from __future__ import annotations

from pyollama.api.app import create_app
from pyollama.api.server import serve

__all__ = ["create_app", "serve"]
