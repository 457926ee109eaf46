"""Stop strings over streamed text, without ever emitting part of a stop string.

Text is released only up to the point where no stop string could still begin, so a client never
sees "<|im_" and then a retraction. When a stop string completes, the text before it is released
and the match is reported.
"""
from __future__ import annotations


class StopMatcher:
    __slots__ = ("stops", "_held", "_max")

    def __init__(self, stops: list[str] | tuple[str, ...] = ()):
        self.stops = [s for s in stops if s]
        self._held = ""
        self._max = max((len(s) for s in self.stops), default=0)

    def feed(self, text: str) -> tuple[str, str | None]:
        """Add text; return (text safe to emit, the stop string that matched or None).
        After a match, the caller stops generating; later text is not examined."""
        if not self.stops:
            return text, None
        buf = self._held + text
        first = -1
        found = None
        for s in self.stops:
            i = buf.find(s)
            if i != -1 and (first == -1 or i < first):
                first, found = i, s
        if found is not None:
            self._held = ""
            return buf[:first], found
        keep = self._partial_suffix(buf)
        self._held = buf[len(buf) - keep:] if keep else ""
        return buf[:len(buf) - keep], None

    def _partial_suffix(self, buf: str) -> int:
        """Length of the longest suffix of buf that is a proper prefix of some stop string."""
        for n in range(min(len(buf), self._max - 1), 0, -1):
            tail = buf[-n:]
            if any(s.startswith(tail) for s in self.stops):
                return n
        return 0

    def flush(self) -> str:
        """At the end of generation: the held-back text was not a stop string after all."""
        held, self._held = self._held, ""
        return held
