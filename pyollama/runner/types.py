"""Plain data shared by the runner, its child process and the scheduler: what to load, what to
generate, and the events a generation streams back."""
from __future__ import annotations

import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, Union

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class RunnerSpec:
    """Everything that requires a reload when it changes (Ollama's runner options)."""

    model_path: str
    adapters: tuple[tuple[str, float], ...] = ()
    projector: str = ""          # a vision projector (mmproj GGUF) for the model ("": none)
    max_image_pixels: int = 50_000_000   # the largest image the projector is given (0: no limit)
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
    devices: tuple[str, ...] = ()   # offload devices by name (empty: every GPU); RPC[host:port] for a worker's
    rpc_servers: tuple[str, ...] = ()  # RPC workers (host:port) to register before loading: their devices are GPUs
    tensor_split: tuple[float, ...] = ()  # share of the offloaded layers per device, llama.cpp's -ts (empty: by free memory)
    fit_margin: int = 0          # > 0: upstream's planner places the layers, leaving this many bytes per GPU
    cache_ram: int = 0           # bytes of host memory for the prompt cache (0: off)
    speculative: str = ""        # self-speculative decoding: upstream's n-gram drafters, comma separated ("": off)
    draft_max: int = 8           # the longest draft
    draft_model: str = ""        # a smaller model with the same vocabulary that drafts ("": none)
    draft_num_predict: int = 4   # its longest draft (Ollama's option; 0 = the draft model is not loaded)


@dataclass(frozen=True)
class RunnerInfo:
    """Facts about a loaded runner the server needs without a GGUF read of its own (sent by the child
    once loaded): context per slot, sizes as allocated, and the BOS/EOS token text Jinja templates use."""

    n_ctx: int = 0                   # per slot, after the runner's own rounding
    parallel: int = 1
    size: int = 0                    # bytes allocated, all devices (model + context + compute)
    size_vram: int = 0               # of which on GPUs
    memory: tuple[dict, ...] = ()    # per device: {"device", "type", "model", "context", "compute"}, host last
    n_gpu_layers: int = -1           # as loaded (upstream's choice after a fit)
    kv_cache_type: str = "f16"
    n_params: int = 0
    arch: str = ""
    embedding_only: bool = False
    bos_token: str = ""
    eos_token: str = ""
    vision: bool = False             # takes images (a projector is loaded)
    image_tokens: int = 0            # places a typical image takes in the context (for prompt fitting)


class RunnerLike(Protocol):
    """What the scheduler and the API use of a runner: ``Runner`` (in process) and ``ProcessRunner`` (a
    child process) both implement it. Thread-safety: any method from any thread; ``asubmit`` on an event
    loop."""

    spec: RunnerSpec
    load_duration: int               # ns

    def start(self) -> RunnerLike: ...
    def submit(self, req: SeqRequest) -> Stream: ...
    async def asubmit(self, req: SeqRequest) -> Stream: ...
    def embed(self, inputs: list[str | list[int]], truncate: bool = True,
              normalize: bool = True) -> tuple[np.ndarray, int]: ...
    def tokenize(self, text: str, add_special: bool = True, parse_special: bool = False) -> list[int]: ...
    def detokenize(self, tokens: list[int]) -> str: ...
    def stats(self, timeout: float | None = None) -> dict: ...
    @property
    def info(self) -> RunnerInfo: ...
    @property
    def alive(self) -> bool: ...
    def close(self) -> None: ...


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
    images: list[bytes] = field(default_factory=list)   # image files, one per MEDIA_MARKER in a text prompt


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
    stop: str | None = None          # the stop string that ended it (done_reason "stop"), None otherwise


@dataclass
class ErrorEvent:
    error: BaseException


Event = Union[TokenEvent, DoneEvent, ErrorEvent]


class Stream:
    """Events of one request, produced by the runner thread, consumed by iteration (blocking) or
    `async for` (an event loop). Errors are raised from iteration. `cancel()` from any thread;
    the runner frees the slot at its next step.

    Events wait in a deque; a waiting consumer leaves one wake-up callable, taken by the first
    ``put`` after it. An async consumer takes every pending event per wake-up, so a step that
    produces several events for a stream costs its event loop one wake-up, not one per event."""

    def __init__(self, request_id: int):
        self.id = request_id
        self._events: deque[Event] = deque()
        self._lock = threading.Lock()
        self._waiter: Callable[[], None] | None = None
        self._on_cancel: list = []
        self.cancelled = False
        self.done: DoneEvent | None = None

    # --- producer side (runner thread) ------------------------------------------------------------
    def put(self, ev: Event) -> None:
        with self._lock:
            self._events.append(ev)
            wake, self._waiter = self._waiter, None
        if wake is not None:
            wake()

    # --- consumer side ---------------------------------------------------------------------------
    def on_cancel(self, fn) -> None:
        """Call fn() when the consumer cancels (the runner uses it to wake its loop)."""
        self._on_cancel.append(fn)

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            for fn in self._on_cancel:
                fn()

    def _take(self, waiter: Callable[[], None]) -> list[Event] | None:
        """Every pending event, or None after leaving ``waiter`` for the next put. (A DoneEvent is the last
        event a stream gets: iteration ends on ``done``.)"""
        with self._lock:
            if self._events:
                evs = list(self._events)
                self._events.clear()
                return evs
            self._waiter = waiter
            return None

    def _handle(self, ev: Event):
        if isinstance(ev, ErrorEvent):
            raise ev.error
        if isinstance(ev, DoneEvent):
            self.done = ev
        return ev

    def __iter__(self) -> Iterator[Event]:
        ready = threading.Event()
        while self.done is None:
            evs = self._take(ready.set)
            if evs is None:
                ready.wait()
                ready.clear()
            else:
                yield from map(self._handle, evs)

    async def __aiter__(self) -> AsyncIterator[Event]:
        import asyncio      # here: a runner child never iterates asynchronously, and starts faster without it

        loop = asyncio.get_running_loop()
        thread = threading.get_ident()
        ready = asyncio.Event()

        def wake() -> None:
            # Directly on the loop's own thread (a reader callback there produced the event), through
            # call_soon_threadsafe from any other.
            if threading.get_ident() == thread:
                ready.set()
            else:
                try:
                    loop.call_soon_threadsafe(ready.set)
                except RuntimeError:    # the loop is closed: nobody is waiting any more
                    pass
        try:
            while self.done is None:
                evs = self._take(wake)
                if evs is None:
                    await ready.wait()
                    ready.clear()
                else:
                    for ev in evs:
                        yield self._handle(ev)
        finally:
            if self.done is None:
                self.cancel()                   # the consumer went away (client disconnected)
