"""Embeddings from a generation runner's context: pooled outputs of whole inputs, computed between the
step loop's steps in a free slot (whose cached prefix is saved first and then cleared)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pyollama.engine.llm import l2_normalize
from pyollama.errors import InvalidRequest, PyollamaError

if TYPE_CHECKING:
    from pyollama.runner.batcher import BatchLoop


def embed(loop: BatchLoop, inputs: list[str | list[int]], truncate: bool = True,
          normalize: bool = True) -> tuple[np.ndarray, int]:
    """Pooled embeddings (L2-normalized unless normalize=False, as Ollama's legacy
    /api/embeddings), run between generation steps on a free slot. An input is text, or token ids
    (what the server formed, e.g. a rerank pair). A reranker (rank pooling) gives its ``n_cls_out``
    scores per input instead of a vector."""
    free = [s for s in loop.slots if s.seq is None]
    if not free:
        raise PyollamaError("no free slot for an embedding request")   # the caller waits for one
    slot = min(free, key=lambda s: s.last_used)
    loop.save_slot(slot)
    n_max = min(loop.n_ctx_slot, loop.n_batch)
    width = loop.model.n_cls_out if loop.ctx.pooling == "rank" else loop.model.n_embd_out
    out = np.empty((len(inputs), width), np.float32)
    total = 0
    encoder = loop.model.has_encoder and not loop.model.has_decoder
    was = loop.ctx.embeddings
    loop.ctx.set_embeddings(True)
    try:
        for row, text in enumerate(inputs):
            toks = (loop.vocab.tokenize(text, add_special=True, parse_special=False) if isinstance(text, str)
                    else loop.checked(list(text)))
            if len(toks) > n_max:
                if not truncate:
                    raise InvalidRequest(f"input length {len(toks)} exceeds the context length {n_max}")
                toks = toks[:n_max]
            if not toks:
                raise InvalidRequest(f"input {row} is empty")
            total += len(toks)
            loop.ctx.memory.seq_rm(slot.id, -1, -1)
            slot.cached.clear()
            loop.batch.reset()
            loop.batch.add_sequence(toks, 0, slot.id, output_all=True)
            (loop.ctx.encode if encoder else loop.ctx.decode)(loop.batch)
            out[row] = loop.ctx.embeddings_seq(slot.id)
    finally:
        loop.ctx.memory.seq_rm(slot.id, -1, -1)
        slot.cached.clear()
        loop.ctx.set_embeddings(was)
    if normalize:
        l2_normalize(out)
    return out, total
