"""Prompt cache in host RAM: the KV state of sequences that slots gave up, keyed by their tokens.

A slot holds one sequence's KV; when it is handed to a request that does not continue that sequence,
what it held would be lost. The batcher saves it here first (libllama's per-sequence state, a plain
copy of the cells), and a later request whose prompt starts with those tokens — a user returning to
their conversation after others used the slot — gets it restored instead of evaluating it again.

Entries are kept least-recently-used first within a byte budget. One entry never holds a prefix of
another: a longer save of the same conversation replaces the shorter one.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass

import numpy as np


def shared_prefix(a: np.ndarray, b: np.ndarray) -> int:
    """How many leading tokens two int32 arrays share (vectorised: prompts run to many thousands)."""
    n = min(len(a), len(b))
    diff = np.flatnonzero(a[:n] != b[:n])
    return int(diff[0]) if diff.size else n


@dataclass(eq=False)
class Saved:
    tokens: np.ndarray        # int32, the tokens whose KV the state holds (positions 0..len-1)
    state: bytes

    @property
    def nbytes(self) -> int:
        return len(self.state) + self.tokens.nbytes


class PromptCache:
    """Saved sequence states within ``budget`` bytes (0 = off). One thread (the runner's loop)."""

    def __init__(self, budget: int):
        self.budget = max(0, int(budget))
        self._lru: collections.OrderedDict[int, Saved] = collections.OrderedDict()   # oldest first
        self.used = 0
        # Counters for /metrics and the tests.
        self.hits = 0             # restores
        self.hit_tokens = 0       # prompt tokens those restores spared
        self.saves = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._lru)

    @property
    def enabled(self) -> bool:
        return self.budget > 0

    def best(self, tokens: np.ndarray) -> tuple[Saved | None, int]:
        """The entry sharing the longest prefix with ``tokens``, and that length."""
        best, n = None, 0
        for e in self._lru.values():
            k = shared_prefix(e.tokens, tokens)
            if k > n:
                best, n = e, k
        return best, n

    def used_as(self, entry: Saved, tokens: int) -> None:
        """``entry`` was restored and spared ``tokens`` prompt tokens: it becomes the most recent (if a save
        made just before the restore has not evicted it meanwhile)."""
        self.touch(entry)
        self.hits += 1
        self.hit_tokens += tokens

    def touch(self, entry: Saved) -> None:
        """Make ``entry`` the most recently used."""
        if id(entry) in self._lru:
            self._lru.move_to_end(id(entry))

    def covers(self, tokens: np.ndarray) -> bool:
        """Whether an entry already holds ``tokens`` (or a longer sequence starting with them)."""
        return any(len(e.tokens) >= len(tokens) and shared_prefix(e.tokens, tokens) == len(tokens)
                   for e in self._lru.values())

    def put(self, tokens: np.ndarray, state: bytes) -> bool:
        """Keep ``state`` for ``tokens``; entries it extends are dropped, the oldest go past the budget.
        False when it alone is larger than the budget."""
        entry = Saved(np.asarray(tokens, dtype=np.int32), state)
        if entry.nbytes > self.budget:
            return False
        for key, e in list(self._lru.items()):
            if len(e.tokens) <= len(entry.tokens) and shared_prefix(e.tokens, entry.tokens) == len(e.tokens):
                self._drop(key)
        self._lru[id(entry)] = entry
        self.used += entry.nbytes
        self.saves += 1
        while self.used > self.budget:
            self._drop(next(iter(self._lru)))
            self.evictions += 1
        return True

    def _drop(self, key: int) -> None:
        self.used -= self._lru.pop(key).nbytes

    def clear(self) -> None:
        self._lru.clear()
        self.used = 0

    def stats(self) -> dict:
        return {"entries": len(self._lru), "bytes": self.used, "budget": self.budget, "hits": self.hits,
                "hit_tokens": self.hit_tokens, "saves": self.saves, "evictions": self.evictions}
