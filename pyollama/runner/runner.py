"""Runner: one loaded model served in this process by a step-loop thread.

`submit()` may be called from any thread (tokenization happens in the caller, so bad requests fail
at once); the loop thread owns the context and decodes every active request together. Embedding
requests run between steps. The same interface is offered by ProcessRunner (child process).
"""
from __future__ import annotations

import itertools
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np

from pyollama import _native
from pyollama.engine.llm import default_threads
from pyollama.errors import NativeError, PyollamaError, RunnerDied
from pyollama.runner.batcher import BatchLoop
from pyollama.runner.media import Vision
from pyollama.runner.types import ErrorEvent, RunnerInfo, RunnerSpec, SeqRequest, Stream

log = logging.getLogger("pyollama.runner")

_ids = itertools.count(1)


class Runner:
    """In-process runner. Thread-safety: submit/embed/tokenize/detokenize/close from any thread."""

    def __init__(self, spec: RunnerSpec):
        self.spec = spec
        self.model: _native.Model | None = None
        self.draft: _native.Model | None = None      # the draft model (speculative decoding), if any
        self.vision: Vision | None = None            # the projector, for images
        self.loop: BatchLoop | None = None
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._error: BaseException | None = None
        self._adapters: list = []
        self.load_duration = 0
        self.n_gpu_layers = spec.num_gpu     # as loaded (upstream's choice after a fit)
        self.workers: dict[str, str] = {}    # RPC device label -> libggml's name for it here (rpc.register)
        # Liveness for a watchdog (ProcessRunner's child reports them): units of work done, and whether
        # one is under way now. A unit that never ends means a hung decode.
        self.progress = 0
        self.working = False
        self.on_step: Callable[[int], None] | None = None    # test hook, called inside each unit
        # Called on the loop thread after each unit of work and before it goes idle: the child sends the
        # events of a whole step as one message from here.
        self.after_unit: Callable[[], None] | None = None

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> Runner:
        """Load the model and start the loop (blocking); a load that fails frees what it loaded."""
        try:
            return self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> Runner:
        t0 = time.perf_counter_ns()
        s = self.spec
        if s.rpc_servers:
            from pyollama import rpc
            self.workers = rpc.register(s.rpc_servers)
        devices = self._devices()
        self.model = _native.Model(s.model_path, n_gpu_layers=s.num_gpu, main_gpu=s.main_gpu, use_mmap=s.use_mmap,
                                   tensor_split=list(s.tensor_split) or None, devices=devices, fit=self._fit(devices))
        self._adapters = [(_native.LoraAdapter(self.model, p), scale) for p, scale in s.adapters]
        if s.draft_model and s.draft_num_predict > 0 and not s.embedding:
            # On the GPUs only beside a target that is wholly there (not split by a fit or a layer count).
            whole = s.num_gpu < 0 and not s.fit_margin
            self.draft = _native.Model(s.draft_model, n_gpu_layers=-1 if whole else 0,
                                       main_gpu=s.main_gpu, use_mmap=s.use_mmap, devices=devices)
        threads = s.num_thread or default_threads()
        if s.projector and not s.embedding:
            self.vision = Vision(_native.Projector(self.model, s.projector, n_threads=threads,
                                                   use_gpu=s.num_gpu != 0, flash_attn=s.flash_attn),
                                 max_pixels=s.max_image_pixels)
        self.loop = BatchLoop(self.model, num_ctx=s.num_ctx, parallel=s.parallel, num_batch=s.num_batch,
                              num_thread=threads, flash_attn=s.flash_attn,
                              kv_cache_type=s.kv_cache_type, embedding=s.embedding, adapters=self._adapters,
                              cache_ram=s.cache_ram, speculative=s.speculative, draft_max=s.draft_max,
                              draft_model=self.draft, draft_num_predict=s.draft_num_predict, vision=self.vision)
        self._thread = threading.Thread(target=self._run, name=f"runner:{os.path.basename(s.model_path)}",
                                        daemon=True)
        self._thread.start()
        self.load_duration = time.perf_counter_ns() - t0
        return self

    def _devices(self) -> list[str] | None:
        """The spec's offload devices by libggml's names here (None: every GPU, remote ones included). A
        worker that could not be registered is left out."""
        if not self.spec.devices:
            return None
        from pyollama.rpc import endpoint_of

        out = [self.workers.get(d, d) for d in self.spec.devices if not endpoint_of(d) or d in self.workers]
        return out or ["CPU"]

    def _fit(self, devices: list[str] | None) -> _native.Fit | None:
        """Upstream's layer placement for a partial offload (the scheduler asked for it with a margin)."""
        s = self.spec
        if s.fit_margin <= 0:
            return None
        fit = _native.fit_params(
            s.model_path, s.fit_margin, n_ctx=s.num_ctx * s.parallel, n_seq_max=s.parallel, n_batch=s.num_batch,
            n_ubatch=s.num_batch, type_k=s.kv_cache_type, type_v=s.kv_cache_type,
            flash_attn=s.flash_attn, embeddings=s.embedding, devices=devices,
            tensor_split=list(s.tensor_split) or None)
        log.info("upstream placement for %s: %s", os.path.basename(s.model_path), fit)
        self.n_gpu_layers = fit.n_gpu_layers
        return fit

    @property
    def loop_thread(self) -> int | None:
        """The step loop thread's ident (the thread that produces stream events)."""
        return self._thread.ident if self._thread is not None else None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._closed

    @property
    def failure(self) -> BaseException | None:
        """What stopped the loop thread, if something did."""
        return self._error

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        if self.loop is not None:
            self.loop.close()
            self.loop = None
        if self.vision is not None:
            self.vision.close()
            self.vision = None
        for a, _ in self._adapters:
            a.close()
        self._adapters = []
        if self.draft is not None:
            self.draft.close()
            self.draft = None
        if self.model is not None:
            self.model.close()
            self.model = None

    def __enter__(self) -> Runner:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # --- requests --------------------------------------------------------------------------------
    def submit(self, req: SeqRequest, stream: Stream | None = None) -> Stream:
        """Queue a generation; raises at once for a request that cannot run (InvalidRequest)."""
        self._check()
        if stream is None:
            stream = Stream(next(_ids))
        stream.on_cancel(self._wake.set)
        seq = self.loop.prepare(req, stream)
        self._inbox.put(("seq", seq))
        self._wake.set()
        return stream

    async def asubmit(self, req: SeqRequest) -> Stream:
        """submit() from an event loop: tokenizing a long prompt must not stall it. A caller cancelled
        while the request is being queued cancels the request too."""
        import asyncio      # here: a runner child never calls this, and starts faster without asyncio

        task = asyncio.ensure_future(asyncio.to_thread(self.submit, req))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(_cancel_submitted)
            raise

    def embed(self, inputs: list[str | list[int]], truncate: bool = True,
              normalize: bool = True) -> tuple[np.ndarray, int]:
        """Pooled embeddings, L2-normalized unless normalize=False (blocks until done)."""
        self._check()
        fut: Future = Future()
        self._inbox.put(("embed", (list(inputs), truncate, normalize, fut)))
        self._wake.set()
        return fut.result()

    def tokenize(self, text: str, add_special: bool = True, parse_special: bool = False) -> list[int]:
        self._check()
        return self.model.vocab.tokenize(text, add_special=add_special, parse_special=parse_special)

    def detokenize(self, tokens) -> str:
        self._check()
        return self.model.vocab.detokenize(tokens)

    def stats(self, timeout: float | None = None) -> dict:
        """The step loop's figures for /metrics (BatchLoop.stats; read without waiting, so ``timeout``
        is unused here)."""
        self._check()
        return self.loop.stats()

    @property
    def info(self) -> RunnerInfo:
        m = self.model
        if m is None:
            return RunnerInfo(parallel=self.spec.parallel, embedding_only=self.spec.embedding)
        v = m.vocab
        memory = tuple(self.loop.allocated()) if self.loop else ()
        if self.workers:        # the scheduler's names for remote devices (RPC[host:port], not RPC0)
            label = {v: k for k, v in self.workers.items()}
            memory = tuple({**u, "device": label.get(u["device"], u["device"])} for u in memory)
        vram = sum(u["model"] + u["context"] + u["compute"] for u in memory if u["type"] in ("gpu", "igpu"))
        return RunnerInfo(
            n_ctx=self.loop.n_ctx_slot if self.loop else 0, parallel=self.spec.parallel,
            size=sum(u["model"] + u["context"] + u["compute"] for u in memory) or m.size, size_vram=vram,
            memory=memory, n_gpu_layers=self.n_gpu_layers, kv_cache_type=self.spec.kv_cache_type,
            n_params=m.n_params, arch=m.arch, embedding_only=self.spec.embedding,
            bos_token=v.text(v.bos) if v.bos >= 0 else "", eos_token=v.text(v.eos) if v.eos >= 0 else "",
            vision=self.vision is not None, image_tokens=self.vision.image_tokens if self.vision else 0)

    def _check(self) -> None:
        if self._error is not None:
            raise RunnerDied(f"runner stopped: {self._error}")
        if self._closed or self.loop is None:
            raise RunnerDied("runner is not running")

    # --- the loop thread -------------------------------------------------------------------------
    def _run(self) -> None:
        loop = self.loop
        pending_embeds: list = []
        try:
            while not self._closed:
                self._wake.clear()          # before draining: a submit after this wakes the wait below
                for kind, item in self._drain():
                    if kind == "seq":
                        loop.add(item)
                    else:
                        pending_embeds.append(item)
                if pending_embeds and any(s.seq is None for s in loop.slots):
                    inputs, truncate, normalize, fut = pending_embeds.pop(0)
                    self.working = True
                    try:
                        fut.set_result(loop.embed(inputs, truncate, normalize))
                    except BaseException as e:          # reported to the caller, the loop goes on
                        fut.set_exception(e)
                    self._done_unit()
                    continue
                if loop.busy:
                    self.working = True
                    loop.step()
                    self._done_unit()
                else:
                    self._flush()
                    self._wake.wait(0.5)
        except BaseException as e:                      # a bug or a native failure: fail everything
            self._error = e
            err = e if isinstance(e, PyollamaError) else NativeError(f"runner failed: {e!r}")
            loop.fail_all(err)
            for *_, fut in pending_embeds:
                fut.set_exception(err)
        finally:
            self.working = False
            stopped = RunnerDied("runner was closed")
            loop.fail_all(stopped)
            for kind, item in self._drain():
                if kind == "seq":
                    item.stream.put(ErrorEvent(stopped))
                else:
                    item[-1].set_exception(stopped)
            self._flush()

    def _done_unit(self) -> None:
        self.progress += 1
        if self.on_step is not None:
            self.on_step(self.progress)
        self.working = False
        self._flush()

    def _flush(self) -> None:
        if self.after_unit is not None:
            self.after_unit()

    def _drain(self):
        """Everything submitted since the last look, without blocking."""
        while True:
            try:
                yield self._inbox.get_nowait()
            except queue.Empty:
                return


def _cancel_submitted(task) -> None:
    """A request queued for a caller that has gone: cancel it in the runner."""
    if not task.cancelled() and task.exception() is None:
        task.result().cancel()
