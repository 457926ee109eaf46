"""Plain data shared by the runner, its child process and the scheduler: what to load, what to
generate, and the events a generation streams back."""
from __future__ import annotations

import asyncio
import queue
import threading
from dataclasses import dataclass, field
from typing import AsyncIterator, Iterator, Union


@dataclass(frozen=True)
class RunnerSpec:
    """Everything that requires a reload when it changes (Ollama's runner options)."""

    model_path: str
    adapters: tuple[tuple[str, float], ...] = ()
    num_ctx: int = 4096          # per slot: every parallel request gets the full context
    num_batch: int = 512
    num_gpu: int = -1
    main_gpu: int = 0
    num_thread: int = 0          # 0 = as many as this process may use
    use_mmap: bool = True
    parallel: int = 1            # slots decoded together (continuous batching)
    embedding: bool = False      # load for embeddings (pooled outputs)
    flash_attn: str = "auto"
    kv_cache_type: str = "f16"
    kv_adapt: bool = False       # the scheduler may quantize the KV cache to fit the GPU (type not set by the user)
    devices: tuple[str, ...] = ()   # offload devices by name (empty: every GPU)
    fit_margin: int = 0          # > 0: upstream's planner places the layers, leaving this many bytes per GPU
    cache_ram: int = 0           # bytes of host memory for the prompt cache (0: off)
    speculative: str = ""        # self-speculative decoding: upstream's n-gram drafters, comma separated ("": off)
    draft_max: int = 8           # the longest draft


@dataclass
class SeqRequest:
    """One generation. `prompt` text is tokenized with parse_special=True (it comes from a
    template); `options` are Ollama's (sampling, num_predict, stop, seed, …)."""

    prompt: str | list[int]
    options: dict = field(default_factory=dict)
    grammar: str | None = None
    grammar_triggers: tuple[str, ...] = ()   # lazy grammar: start constraining at a regex match
    logprobs: bool = False
    top_logprobs: int = 0
    add_special: bool = True
    shift: bool = True              # context shift (Ollama's `shift`): keep num_keep, drop half the rest


@dataclass
class TokenEvent:
    text: str
    token: int
    logprobs: list | None = None     # [{"token", "logprob", "bytes", "top_logprobs": [...]}] as Ollama


@dataclass
class DoneEvent:
    done_reason: str                 # "stop" | "length" | "cancel"
    prompt_eval_count: int           # the whole prompt, cached part included (as Ollama reports)
    prompt_eval_duration: int        # ns
    eval_count: int
    eval_duration: int               # ns
    prompt_cached: int = 0           # prompt tokens reused from the KV cache
    tokens: list[int] = field(default_factory=list)
    prompt_truncated: int = 0        # prompt tokens dropped to fit the context (shift on)
    context_shifts: int = 0          # times the context was shifted during generation
    draft_tokens: int = 0            # speculative decoding: tokens drafted for this request
    draft_accepted: int = 0          # and how many of them the model confirmed


@dataclass
class ErrorEvent:
    error: BaseException


Event = Union[TokenEvent, DoneEvent, ErrorEvent]


class Stream:
    """Events of one request, produced by the runner thread, consumed by iteration (blocking) or
    `async for` (an event loop). Errors are raised from iteration. `cancel()` from any thread;
    the runner frees the slot at its next step."""

    def __init__(self, request_id: int):
        self.id = request_id
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._aq: asyncio.Queue | None = None
        self._lock = threading.Lock()
        self._on_cancel: list = []
        self.cancelled = False
        self.done: DoneEvent | None = None

    # --- producer side (runner thread) ------------------------------------------------------------
    def put(self, ev: Event) -> None:
        with self._lock:
            if self._aq is None:
                self._q.put(ev)
            elif threading.get_ident() == self._loop_thread:
                self._aq.put_nowait(ev)          # produced on the consumer's own loop (a reader callback)
            else:
                self._loop.call_soon_threadsafe(self._aq.put_nowait, ev)

    # --- consumer side ---------------------------------------------------------------------------
    def on_cancel(self, fn) -> None:
        """Call fn() when the consumer cancels (the runner uses it to wake its loop)."""
        self._on_cancel.append(fn)

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            for fn in self._on_cancel:
                fn()

    def _handle(self, ev: Event):
        if isinstance(ev, ErrorEvent):
            raise ev.error
        if isinstance(ev, DoneEvent):
            self.done = ev
        return ev

    def __iter__(self) -> Iterator[Event]:
        while True:
            ev = self._handle(self._q.get())
            yield ev
            if isinstance(ev, DoneEvent):
                return

    async def __aiter__(self) -> AsyncIterator[Event]:
        with self._lock:
            if self._aq is None:
                self._loop = asyncio.get_running_loop()
                self._loop_thread = threading.get_ident()
                self._aq = asyncio.Queue()
                while True:                     # events that arrived before we switched over
                    try:
                        self._aq.put_nowait(self._q.get_nowait())
                    except queue.Empty:
                        break
        try:
            while True:
                ev = self._handle(await self._aq.get())
                yield ev
                if isinstance(ev, DoneEvent):
                    return
        finally:
            if self.done is None:
                self.cancel()                   # the consumer went away (client disconnected)
