"""One generation on a leased runner, as a stream of plain events the routes turn into their chunks:
``Delta`` (content / thinking / tool calls / logprobs that are now certain) and ``Final`` (metrics).

Output goes through the thinking parser, then the tool-call parser, as Ollama's handlers chain them.
Leaving the iteration early (client gone) cancels the runner sequence — its slot is free at the
runner's next step — and the lease is always released.

Thread-safety: an async generator, consumed on the event loop.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from pyollama.api.metrics import Metrics
from pyollama.runner.types import DoneEvent, SeqRequest, TokenEvent
from pyollama.scheduler import Lease
from pyollama.templates import ThinkingParser, ToolCallParser


@dataclass
class Delta:
    content: str = ""
    thinking: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    logprobs: list[dict[str, Any]] | None = None

    def __bool__(self) -> bool:
        return bool(self.content or self.thinking or self.tool_calls or self.logprobs)


@dataclass
class Final:
    done: DoneEvent
    total_duration: int
    load_duration: int
    text: str = ""          # the raw output, before the parsers (stop-sequence detection reads it)

    def metrics(self) -> dict[str, Any]:
        d = self.done
        out = {"total_duration": self.total_duration, "load_duration": self.load_duration,
               "prompt_eval_count": d.prompt_eval_count, "prompt_eval_duration": d.prompt_eval_duration,
               "eval_count": d.eval_count, "eval_duration": d.eval_duration}
        if d.draft_tokens:      # speculative decoding ran: Ollama has no such fields, so only then
            out["draft_count"] = d.draft_tokens
            out["draft_accepted_count"] = d.draft_accepted
        return out


class OutputParser:
    """Thinking first, then tool calls on what is content."""

    def __init__(self, thinking: ThinkingParser | None = None, tools: ToolCallParser | None = None):
        self.thinking = thinking
        self.tools = tools

    def feed(self, text: str) -> Delta:
        return self._split(*(self.thinking.feed(text) if self.thinking else ("", text)), final=False)

    def finish(self) -> Delta:
        th, ct = self.thinking.finish() if self.thinking else ("", "")
        return self._split(th, ct, final=True)

    def _split(self, thinking: str, content: str, *, final: bool) -> Delta:
        if self.tools is None:
            return Delta(content=content, thinking=thinking)
        r = self.tools.feed(content) if content else None
        calls = list(r.calls) if r else []
        text = r.content if r else ""
        if final:
            tail = self.tools.finish()
            text += tail.content
            calls += tail.calls
        return Delta(content=text, thinking=thinking, tool_calls=[c.to_api() for c in calls])


async def generate(lease: Lease, seq: SeqRequest, parser: OutputParser, *, t_start: int,
                   t_loaded: int, metrics: Metrics | None = None) -> AsyncGenerator[Delta | Final, None]:
    """Run ``seq`` on the leased runner. Raises the runner's errors (RunnerDied, InvalidRequest, …)."""
    stream = None
    raw: list[str] = []
    observed = metrics.generation(lease.entry.req.name, t_start) if metrics is not None else None
    try:
        stream = await lease.runner.asubmit(seq)
        async for ev in stream:
            if isinstance(ev, TokenEvent):
                if observed is not None:
                    observed.token()
                raw.append(ev.text)
                d = parser.feed(ev.text)
                d.logprobs = ev.logprobs or None
                if d:
                    yield d
            elif isinstance(ev, DoneEvent):
                if observed is not None:
                    observed.done(ev.prompt_eval_count, ev.prompt_cached, ev.eval_count)
                tail = parser.finish()
                if tail:
                    yield tail
                yield Final(ev, time.perf_counter_ns() - t_start, t_loaded - t_start, "".join(raw))
                return
    finally:
        if stream is not None and stream.done is None:
            stream.cancel()
        lease.release()


async def in_thread(fn: Any, *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)
