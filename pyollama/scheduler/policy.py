"""The scheduler's decisions as pure functions over plain data: reuse or reload, whom to evict.

Thread-safety: pure functions.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, Protocol


def needs_reload(loaded: Any, wanted: Any) -> bool:
    """Whether a runner loaded for spec ``loaded`` cannot serve spec ``wanted`` (both RunnerSpec-like
    dataclasses, as *requested*). Every field counts — context size, batch, threads, mmap, adapters,
    parallel slots, embedding mode, flash attention, KV type — except ``num_gpu`` when the new request
    leaves it automatic (-1), as in Ollama (docs/contract.md §4). Sampling options are not part of a spec, so
    they never cause a reload."""
    for f in dataclasses.fields(wanted):
        a, b = getattr(loaded, f.name), getattr(wanted, f.name)
        if f.name == "num_gpu":
            if b != -1 and a != b:
                return True
        elif a != b:
            return True
    return False


class RunnerState(Protocol):
    key: str
    refcount: int
    keep_alive: float
    expires_at: float | None


def pick_victim(entries: Sequence[RunnerState]) -> tuple[RunnerState, bool] | None:
    """The runner to unload to make room, and whether it is idle now.

    An idle runner (no requests in flight) whose keep-alive runs out soonest goes first. When every runner
    is busy, the one with the shortest keep-alive is chosen and the caller waits for it to drain (Ollama's
    findRunnerToUnload). Ties break on the key so the choice is deterministic."""
    if not entries:
        return None
    idle = [e for e in entries if e.refcount == 0]
    if idle:
        best = min(idle, key=lambda e: (math.inf if e.expires_at is None else e.expires_at, e.key))
        return best, True
    best = min(entries, key=lambda e: (e.keep_alive, e.refcount, e.key))
    return best, False


def next_expiry(entries: Sequence[RunnerState]) -> float | None:
    """The earliest clock time at which an idle runner expires, or None."""
    times = [e.expires_at for e in entries if e.refcount == 0 and e.expires_at is not None]
    return min(times) if times else None
