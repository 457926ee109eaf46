"""Tokenizing in the server, as Ollama does: a vocab-only model per weights file, loaded once and kept.

Fitting a chat into the context tokenizes several renderings of it; answering each through the
runner child cost a thread hop and a round trip per attempt. libllama loads just the tokenizer of a
GGUF (``vocab_only``: no tensors, milliseconds) and documents tokenizing as thread-safe, so the server
tokenizes with its own copy — the same vocabulary code the runner uses, so the same tokens.

Short texts are tokenized on the event loop (a few microseconds per hundred characters); longer ones
in a worker thread, where libllama runs without the GIL. Vocabularies are kept (LRU) rather than freed
with their model: loading one again costs up to half a second for a large vocabulary, on the next cold
start; a request prefetches its model's while the runner loads.

Thread-safety: used on the event loop; loads and long texts run in worker threads.
"""
from __future__ import annotations

import asyncio
import os
from collections import OrderedDict

from pyollama import _native

KEEP = 8                  # vocabularies kept (LRU): one per model a client uses, a few KB to tens of MB each
INLINE_CHARS = 2048       # texts up to this many characters are tokenized on the event loop


class Vocabs:
    def __init__(self, keep: int = KEEP):
        self.keep = keep
        self._models: OrderedDict[str, _native.Model] = OrderedDict()
        self._loading: dict[str, asyncio.Future] = {}

    async def vocab(self, path: str | os.PathLike) -> _native.Vocab:
        """The vocabulary of the GGUF at ``path`` (loaded on first use, once for concurrent callers)."""
        path = os.fspath(path)
        model = self._models.get(path)
        if model is not None:
            self._models.move_to_end(path)
            return model.vocab
        pending = self._loading.get(path)
        if pending is None:
            pending = self._loading[path] = asyncio.ensure_future(
                asyncio.to_thread(_native.Model, path, vocab_only=True))
            pending.add_done_callback(lambda f: self._loaded(path, f))
        model = await asyncio.shield(pending)
        return model.vocab

    def prefetch(self, path: str | os.PathLike) -> None:
        """Start loading ``path``'s vocabulary now, without waiting: a large vocabulary takes a few hundred
        ms (Gemma 3's 262k tokens: ~0.45 s), which then overlaps the runner's own load."""
        path = os.fspath(path)
        if path in self._models or path in self._loading:
            return
        task = asyncio.ensure_future(self.vocab(path))
        task.add_done_callback(_quiet)         # a file that fails here fails again, with the reason, when used

    def _loaded(self, path: str, fut: asyncio.Future) -> None:
        self._loading.pop(path, None)
        if fut.cancelled() or fut.exception() is not None:
            return                       # the callers see the error; the next one tries again
        self._models[path] = fut.result()
        while len(self._models) > self.keep:
            # Dropped, not closed: a worker thread may still be tokenizing with it; freed when unused.
            self._models.popitem(last=False)

    async def tokenize(self, path: str | os.PathLike, text: str, add_special: bool = True,
                       parse_special: bool = False) -> list[int]:
        v = await self.vocab(path)
        if len(text) <= INLINE_CHARS:
            return v.tokenize(text, add_special=add_special, parse_special=parse_special)
        return await asyncio.to_thread(v.tokenize, text, add_special=add_special, parse_special=parse_special)

    async def detokenize(self, path: str | os.PathLike, tokens: list[int]) -> str:
        v = await self.vocab(path)
        if len(tokens) <= INLINE_CHARS // 4:
            return v.detokenize(tokens)
        return await asyncio.to_thread(v.detokenize, tokens)


def _quiet(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()
