"""Log-probabilities of a sampled token and its top alternatives, in Ollama's shape.

``logprobs`` reads one output's logits once (as float64, with their log-sum-exp); ``entries`` turns
them into ``[{"token", "logprob", "bytes", "top_logprobs"?}]`` for the token that was chosen.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np


def logprobs(logits) -> tuple[np.ndarray, float]:
    """(logits as float64, their log-sum-exp): ``logits[t] - lse`` is token t's log-probability."""
    x = np.asarray(logits, dtype=np.float64)
    m = x.max()
    return x, m + np.log(np.exp(x - m).sum())


def entries(token_bytes: Callable[[int], bytes], token: int, logits: np.ndarray, lse: float, top: int) -> list:
    """Ollama's logprobs entry for ``token``, with the ``top`` most likely tokens when ``top`` > 0."""
    def entry(t: int) -> dict:
        b = token_bytes(t)
        return {"token": b.decode("utf-8", "replace"), "logprob": float(logits[t] - lse), "bytes": list(b)}
    e = entry(token)
    if top:
        k = min(top, len(logits))
        best = np.argpartition(-logits, k - 1)[:k]
        best = best[np.argsort(-logits[best], kind="stable")]
        e["top_logprobs"] = [entry(int(t)) for t in best]
    return [e]
