"""Incremental detokenization that never splits a UTF-8 character.

A token's bytes can end in the middle of a multi-byte character (byte-fallback tokenizers split
emoji and CJK across tokens). Bytes are held back until they complete a character, so every piece
handed out is valid text and the concatenation equals detokenizing the whole sequence.
"""
from __future__ import annotations

from typing import Callable


def _incomplete_tail(buf: bytes) -> int:
    """How many bytes at the end of `buf` start a UTF-8 character that isn't complete yet."""
    n = len(buf)
    for back in range(1, min(4, n) + 1):
        b = buf[n - back]
        if b & 0xC0 == 0x80:          # continuation byte: keep looking for the lead byte
            continue
        if b & 0x80 == 0:             # ASCII: complete
            return 0
        need = 2 if b & 0xE0 == 0xC0 else 3 if b & 0xF0 == 0xE0 else 4 if b & 0xF8 == 0xF0 else 1
        return back if back < need else 0
    return 0


class Detokenizer:
    """Feed token ids, get text pieces. `piece(token) -> bytes` comes from the vocabulary;
    pieces are cached per token id since a vocabulary's pieces never change — pass the owner's
    `cache` dict to share it between detokenizers of one vocabulary (one thread at a time)."""

    __slots__ = ("_piece", "_cache", "_pending")

    def __init__(self, piece: Callable[[int], bytes], cache: dict[int, bytes] | None = None):
        self._piece = piece
        self._cache = {} if cache is None else cache
        self._pending = b""

    def token_bytes(self, token: int) -> bytes:
        b = self._cache.get(token)
        if b is None:
            b = self._cache[token] = self._piece(token)
        return b

    def feed(self, token: int) -> str:
        """The text this token completes ('' while a character is still incomplete)."""
        buf = self._pending + self.token_bytes(token)
        keep = _incomplete_tail(buf)
        if keep:
            self._pending = buf[-keep:]
            buf = buf[:-keep]
        else:
            self._pending = b""
        return buf.decode("utf-8", "replace")

    def flush(self) -> str:
        """Whatever is held back (an invalid or truncated sequence), with replacement characters."""
        buf, self._pending = self._pending, b""
        return buf.decode("utf-8", "replace")

    def reset(self) -> None:
        self._pending = b""
