"""The scheduler: which runners are loaded, who may use them, and when they go.

    sched = Scheduler(factory=ProcessRunner, max_runners=3, max_queue=512, keep_alive=300)
    await sched.start()
    async with await sched.acquire(load_request, keep_alive=None) as lease:
        stream = lease.runner.submit(seq_request)
    await sched.close()                  # unloads everything

Rules (docs/contract.md §4, §14):

* A request whose model is loaded with a compatible spec goes straight to that runner (its slots and
  its own queue do the batching). Everything else waits in one FIFO queue of at most ``max_queue``
  requests (more → QueueFull, 503); a single loader task serves that queue, **one load at a time**.
* One runner per model file: a request that needs different runner options (``policy.needs_reload``)
  waits for the loaded runner to drain, unloads it and loads the new spec.
* Capacity: at most ``max_runners`` loaded; memory: the estimate must fit what is free (``memory.place``).
  When either is short, the idle runner whose keep-alive ends soonest is unloaded; if all are busy, the
  one with the shortest keep-alive is marked and unloaded once it drains. With nothing left to evict, a
  model that still does not fit fails with InsufficientMemory.
* keep_alive: the latest request's value becomes the runner's; the countdown starts when its last request
  ends. 0 unloads right then; ``inf`` never.
* A runner that died (child killed, native crash) is dropped: its in-flight requests get errors from
  their streams, the next request loads a fresh one.
* A waiting request whose client leaves is cancelled (asyncio cancellation) and leaves the queue.

The runner factory, the clock and the memory probe are injected, so tests run without a model.

Thread-safety: every method runs on the event loop that called :meth:`start`; runner start/close run in
worker threads.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pyollama.errors import InsufficientMemory, LoadTimeout, QueueFull, ShuttingDown
from pyollama.scheduler import fit, policy
from pyollama.scheduler.keepalive import format_keep_alive
from pyollama.scheduler.memory import Estimate, Memory, Placement, place, probe

if TYPE_CHECKING:     # the runner's types, for annotations only: scheduling needs no native code loaded
    from pyollama.runner.types import RunnerInfo, RunnerLike, RunnerSpec

log = logging.getLogger("pyollama.scheduler")

QUEUE_FULL = "server busy, please try again.  maximum pending requests exceeded"
ROOMY = 3       # a host-only placement skips the measurement when this many estimates fit in free RAM


@dataclass(frozen=True)
class LoadRequest:
    """What a request needs loaded. ``key`` identifies the weights (one runner per key); ``spec`` is the
    RunnerSpec as requested (``num_gpu`` -1 = place automatically); ``info`` is opaque to the scheduler
    (what ``/api/ps`` shows: digest, details)."""

    key: str
    name: str
    spec: RunnerSpec
    estimate: Estimate
    info: dict = field(default_factory=dict, compare=False)
    # Memory-sizing options the request itself set (not the model's defaults): when the load does not fit
    # because of them, the request is at fault (400), not the server.
    requested: tuple[str, ...] = field(default=(), compare=False)


@dataclass(eq=False)
class Entry:
    """A loaded runner and its bookkeeping."""

    req: LoadRequest
    spec: RunnerSpec                # as loaded (num_gpu resolved)
    runner: RunnerLike
    placement: Placement
    keep_alive: float
    load_duration: int = 0          # ns
    refcount: int = 0
    expires_at: float | None = None   # scheduler clock; None while in use or kept for ever
    expiring: bool = False          # takes no new requests; unloaded when drained
    state: str = "loaded"           # loaded | unloading | closed
    runner_info: RunnerInfo | None = None   # runner.info right after the load (n_ctx, sizes, …)
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def n_ctx(self) -> int:
        """The context each slot has (after the runner's own rounding and clamping)."""
        info = self.runner_info
        return info.n_ctx if info is not None and info.n_ctx else self.spec.num_ctx

    @property
    def key(self) -> str:
        return self.req.key

    @property
    def alive(self) -> bool:
        try:
            return bool(self.runner.alive)
        except Exception:  # noqa: BLE001 - a broken runner handle counts as dead
            return False


class Lease:
    """The right to use one runner for one request. ``release()`` (or leaving ``async with``) hands it
    back; it is idempotent."""

    def __init__(self, sched: Scheduler, entry: Entry, waited_ns: int):
        self._sched = sched
        self.entry = entry
        self.runner = entry.runner
        self.waited_ns = waited_ns
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._sched._release(self.entry)

    async def __aenter__(self) -> Lease:  # noqa: PYI034 - Lease is final
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()


@dataclass(eq=False)
class _Waiter:
    req: LoadRequest
    keep_alive: float
    fut: asyncio.Future
    t0: int
    marked: list = field(default_factory=list)     # runners marked to drain on this request's behalf


class Scheduler:
    def __init__(self, factory: Callable[[RunnerSpec], RunnerLike], *, memory: Callable[[], Memory] = probe,
                 clock: Callable[[], float] = time.monotonic, max_runners: int = 3, max_queue: int = 512,
                 keep_alive: float = 300.0, load_timeout: float = 300.0, gpu_overhead: int = 0,
                 spread: bool = False, measure: fit.Measure | None = fit.measure_native):
        self._factory = factory
        self._memory = memory
        self._measure = measure         # None: the header-based estimate only (memory.place)
        self.spread = spread
        self._clock = clock
        self.max_runners = max(1, max_runners)
        self.max_queue = max(1, max_queue)
        self.default_keep_alive = keep_alive
        self.load_timeout = load_timeout
        self.gpu_overhead = gpu_overhead
        self._entries: dict[str, Entry] = {}
        self._queue: collections.deque[_Waiter] = collections.deque()
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._background: set[asyncio.Task] = set()
        self._closed = False
        self.counts: collections.Counter[str] = collections.Counter()   # loads, load_failures, unloads, evictions

    # --- lifecycle -------------------------------------------------------------------------------
    async def start(self, *, ticker: bool = True) -> None:
        """Start the loader (and the expiry ticker, which tests with a fake clock leave off and drive
        with :meth:`expire_due`)."""
        self._tasks.append(asyncio.create_task(self._loader(), name="scheduler-loader"))
        if ticker:
            self._tasks.append(asyncio.create_task(self._ticker(), name="scheduler-ticker"))

    async def close(self) -> None:
        """Turn away queued requests and unload every runner (graceful shutdown)."""
        self._closed = True
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks.clear()
        while self._queue:
            w = self._queue.popleft()
            if not w.fut.done():
                w.fut.set_exception(ShuttingDown("server is shutting down"))
        await asyncio.gather(*(self._unload(e, "shutdown") for e in list(self._entries.values())),
                             return_exceptions=True)
        for t in list(self._background):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    # --- requests --------------------------------------------------------------------------------
    async def acquire(self, req: LoadRequest, keep_alive: float | None = None) -> Lease:
        """A lease on a runner for ``req``: at once if a compatible one is loaded, else after the loader
        has made one. Raises QueueFull, ShuttingDown, InsufficientMemory, LoadTimeout or the runner's load
        error. Cancelling the awaiting task (client gone) takes the request out of the queue."""
        if self._closed:
            raise ShuttingDown("server is shutting down")
        ka = self.default_keep_alive if keep_alive is None else keep_alive
        entry = self._usable(req)
        if entry is not None:
            return self._lease(entry, ka, 0)
        if len(self._queue) >= self.max_queue:
            raise QueueFull(QUEUE_FULL)
        w = _Waiter(req, ka, asyncio.get_running_loop().create_future(), time.perf_counter_ns())
        w.fut.add_done_callback(lambda _f: self._notify())
        self._queue.append(w)
        self._notify()
        try:
            return await w.fut
        except asyncio.CancelledError:
            if w in self._queue:
                self._queue.remove(w)
            elif w.fut.done() and not w.fut.cancelled() and w.fut.exception() is None:
                w.fut.result().release()        # granted just as the client left
            raise

    async def expire(self, key: str) -> bool:
        """Unload the runner for ``key`` now, or as soon as its requests finish (an empty prompt with
        ``keep_alive: 0``). Returns whether one was loaded."""
        e = self._entries.get(key)
        if e is None:
            return False
        e.keep_alive = 0.0
        e.expiring = True
        if e.refcount == 0:
            await self._unload(e, "unload requested")
        return True

    async def expire_due(self) -> None:
        """Unload idle runners whose keep-alive has run out, and runners that died while idle."""
        now = self._clock()
        for e in list(self._entries.values()):
            if e.refcount:
                continue
            if not e.alive:
                await self._unload(e, "runner exited")
            elif e.expires_at is not None and e.expires_at <= now:
                await self._unload(e, "keep_alive expired")

    # --- introspection (for /api/ps) -------------------------------------------------------------
    def loaded(self) -> list[Entry]:
        return [e for e in self._entries.values() if e.state == "loaded"]

    def held_workers(self) -> set[str]:
        """RPC workers (host:port) that runners use: each serves one client at a time."""
        return {ep for e in self._entries.values() for ep in getattr(e.spec, "rpc_servers", ())}

    def expires_wall(self, e: Entry) -> float:
        """When ``e`` will expire, as a Unix time (``inf`` for never): a runner in use cannot expire
        before its keep-alive has run after the current request."""
        if math.isinf(e.keep_alive):
            return math.inf
        at = e.expires_at if e.expires_at is not None else self._clock() + e.keep_alive
        return time.time() + (at - self._clock())

    @property
    def queued(self) -> int:
        return len(self._queue)

    # --- internals -------------------------------------------------------------------------------
    def _notify(self) -> None:
        ev, self._changed = self._changed, asyncio.Event()
        ev.set()

    def _usable(self, req: LoadRequest) -> Entry | None:
        e = self._entries.get(req.key)
        if e is None or e.state != "loaded" or e.expiring or not e.alive:
            return None
        if policy.needs_reload(e.req.spec, req.spec):
            return None
        return e

    def _lease(self, e: Entry, keep_alive: float, waited_ns: int) -> Lease:
        e.refcount += 1
        e.keep_alive = keep_alive
        e.expires_at = None
        return Lease(self, e, waited_ns)

    def _release(self, e: Entry) -> None:
        e.refcount -= 1
        if e.refcount > 0:
            return
        if self._entries.get(e.key) is not e or e.state != "loaded":
            self._notify()
            return
        if not e.alive:
            self._spawn(self._unload(e, "runner exited"))
        elif e.keep_alive <= 0 or e.expiring:
            self._spawn(self._unload(e, "keep_alive 0" if e.keep_alive <= 0 else "making room",
                                     evicted=e.keep_alive > 0))
        else:
            e.expires_at = None if math.isinf(e.keep_alive) else self._clock() + e.keep_alive
        self._notify()

    def _spawn(self, coro: Any) -> None:
        t = asyncio.get_running_loop().create_task(coro)
        self._background.add(t)
        t.add_done_callback(self._background.discard)

    async def _unload(self, e: Entry, why: str, *, evicted: bool = False) -> None:
        if e.state != "loaded":
            await e.closed.wait()
            return
        e.state = "unloading"
        self.counts["unloads"] += 1
        self.counts["evictions"] += evicted
        if self._entries.get(e.key) is e:
            del self._entries[e.key]
        log.info("unloading %s (%s)", e.req.name, why)
        try:
            await asyncio.to_thread(e.runner.close)
        except Exception as ex:  # noqa: BLE001 - unloading goes on; the runner is dropped
            log.warning("closing the runner of %s failed: %s", e.req.name, ex)
        finally:
            e.state = "closed"
            e.closed.set()
            self._notify()

    async def _loader(self) -> None:
        while True:
            while not self._queue:
                await self._changed.wait()
            w = self._queue.popleft()
            if w.fut.done():                          # its client left while it waited
                continue
            try:
                entry = await self._serve(w)
            except asyncio.CancelledError:
                if not w.fut.done():
                    w.fut.set_exception(ShuttingDown("server is shutting down"))
                raise
            except Exception as e:  # noqa: BLE001 - the waiting request gets the error
                if not w.fut.done():
                    w.fut.set_exception(e)
                continue
            finally:
                for m in w.marked:          # nobody needs the room any more: let them serve on
                    if m.state == "loaded" and m.keep_alive > 0:
                        m.expiring = False
            if entry is None or w.fut.done():
                continue
            w.fut.set_result(self._lease(entry, w.keep_alive, time.perf_counter_ns() - w.t0))

    async def _serve(self, w: _Waiter) -> Entry | None:
        """Make a runner for ``w`` (evicting and waiting as needed); None if its client left."""
        req = w.req
        while True:
            if w.fut.done():
                return None
            changed = self._changed
            entry = self._usable(req)
            if entry is not None:
                return entry
            same = self._entries.get(req.key)
            if same is not None:                    # loaded with other options, dead, or expiring
                if same.refcount == 0 or not same.alive:
                    await self._unload(same, "reloading with new options" if same.alive else "runner exited")
                else:
                    same.expiring = True            # no new requests; unloaded when drained
                    w.marked.append(same)
                    await self._wait(changed, w)
                continue
            if len(self._entries) >= self.max_runners:
                await self._evict(changed, w, f"max loaded models ({self.max_runners}) reached")
                continue
            mem = await asyncio.to_thread(self._memory)
            booked = list(self._entries.values())
            placement, spec = await asyncio.to_thread(self._plan, req, mem, booked)
            partial = bool(mem.gpus) and booked and placement.gpu_layers < req.estimate.layers
            if not placement.fits or partial:
                if booked:
                    await self._evict(changed, w, placement.reason or "not enough GPU memory")
                    continue
                raise InsufficientMemory(placement.reason)
            return await self._load(req, placement, spec, w.keep_alive)

    async def _wait(self, changed: asyncio.Event, w: _Waiter) -> None:
        if not w.fut.done():
            await changed.wait()

    async def _evict(self, changed: asyncio.Event, w: _Waiter, why: str) -> None:
        """Unload the idle runner that expires soonest, or mark the busy one with the shortest keep-alive
        and wait for a change (it is unloaded when it drains)."""
        choice = policy.pick_victim(list(self._entries.values()))
        if choice is None:
            await self._wait(changed, w)
            return
        victim, idle = choice
        if idle:
            await self._unload(victim, why, evicted=True)
            return
        victim.expiring = True
        w.marked.append(victim)
        log.info("waiting for %s to finish its requests (%s)", victim.req.name, why)
        await self._wait(changed, w)

    def _plan(self, req: LoadRequest, mem: Memory, booked: list[Entry]) -> tuple[Placement, RunnerSpec]:
        """Placement and the spec to load, from upstream's measured figures (``fit.plan``); from the
        header-based estimate where those cannot be had (no native build, a file libllama rejects —
        its load then fails with the reason)."""
        kw = {"reserved_ram": sum(e.placement.ram for e in booked),
              "reserved_vram": sum(e.placement.vram for e in booked), "gpu_overhead": self.gpu_overhead}
        placement = None
        roomy = not mem.gpus and req.estimate.total * ROOMY <= mem.free - kw["reserved_ram"]
        if roomy:
            # Only host memory to place in, and far more of it free than the estimate: the exact figure would
            # change no decision, and measuring costs a cold start ~0.1 s. The booking becomes the real
            # allocation once the runner is up (_allocated).
            log.debug("placing %s by its estimate: %.2f GiB in %.2f GiB free", req.name,
                      req.estimate.total / (1 << 30), mem.free / (1 << 30))
        elif self._measure is not None:
            try:
                placement, spec = fit.plan(req.spec, mem, measure=self._measure, spread=self.spread, **kw)
            except Exception as e:  # noqa: BLE001 - any failure to measure falls back to the estimate
                log.debug("cannot measure %s (%s); using the estimate", req.name, e)
        if placement is None:
            placement = place(req.estimate, mem, num_gpu=req.spec.num_gpu, **kw)
            spec = req.spec
            if mem.gpus and spec.num_gpu < 0:
                spec = dataclasses.replace(spec, num_gpu=placement.gpu_layers)
        return placement, fit.with_workers(spec, mem)

    async def _load(self, req: LoadRequest, placement: Placement, spec: RunnerSpec, keep_alive: float) -> Entry:
        log.info("loading %s (%.2f GiB, %d/%d layers on GPU%s, KV cache %s, num_ctx %s, parallel %s)", req.name,
                 placement.total / (1 << 30), placement.gpu_layers, req.estimate.layers,
                 " " + ",".join(getattr(spec, "devices", ())) if getattr(spec, "devices", ()) else "",
                 getattr(spec, "kv_cache_type", "?"), getattr(spec, "num_ctx", "?"), getattr(spec, "parallel", "?"))
        runner = self._factory(spec)
        t0 = time.perf_counter_ns()
        loading = asyncio.ensure_future(asyncio.to_thread(_start, runner))
        timeout = None if math.isinf(self.load_timeout) else self.load_timeout
        try:
            await asyncio.wait_for(asyncio.shield(loading), timeout)
        except BaseException as e:
            # The load cannot be interrupted from here; close the runner once it returns.
            def _close(f: asyncio.Future) -> None:
                if not f.cancelled():
                    f.exception()             # seen: the request got its own error above
                self._spawn(asyncio.to_thread(runner.close))
            if loading.done():
                _close(loading)
            else:
                loading.add_done_callback(_close)
            self.counts["load_failures"] += 1
            if isinstance(e, asyncio.TimeoutError):
                kill = getattr(runner, "kill", None)
                if kill is not None:          # a child process can be stopped mid-load; its thread then returns
                    kill()
                raise LoadTimeout(f"timed out waiting for {req.name} to load "
                                  f"(OLLAMA_LOAD_TIMEOUT={format_keep_alive(self.load_timeout)})") from None
            raise
        info = loading.result()
        entry = Entry(req=req, spec=spec, runner=runner, placement=_allocated(placement, info),
                      keep_alive=keep_alive, load_duration=time.perf_counter_ns() - t0, runner_info=info)
        # Counts down until the waiting request takes it (if its client left meanwhile, it still expires).
        entry.expires_at = None if math.isinf(keep_alive) else self._clock() + keep_alive
        self._entries[req.key] = entry
        self.counts["loads"] += 1
        self._notify()
        log.info("loaded %s in %.2f s", req.name, entry.load_duration / 1e9)
        return entry

    async def _ticker(self) -> None:
        while True:
            changed = self._changed
            await self.expire_due()
            nxt = policy.next_expiry(list(self._entries.values()))
            delay = 2.0 if nxt is None else max(0.0, min(2.0, nxt - self._clock()))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(changed.wait(), delay)


def _allocated(placement: Placement, info: RunnerInfo | None) -> Placement:
    """The booking corrected to what the runner really allocated (``info.memory``: per device, host
    last), so /api/ps and later placements see real bytes."""
    if info is None or not info.memory:
        return placement
    vram, size = info.size_vram, info.size
    layers = info.n_gpu_layers
    return dataclasses.replace(placement, vram=vram, ram=size - vram,
                               gpu_layers=placement.gpu_layers if layers is None or layers < 0 else layers)


def _start(runner: RunnerLike) -> RunnerInfo | None:
    """Load (blocking, in a worker thread) and read the runner's info once."""
    runner.start()
    try:
        return runner.info
    except Exception as e:  # noqa: BLE001 - info is for display; the runner still serves
        log.debug("runner info unavailable: %s", e)
        return None
