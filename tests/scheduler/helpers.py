"""Scheduler test doubles: a runner whose load and liveness the test controls, a clock the test moves,
and a memory probe with fixed numbers. No model is loaded."""
from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

from pyollama.runner.types import RunnerSpec
from pyollama.scheduler import Estimate, LoadRequest, Memory, Scheduler

GIB = 1 << 30


class FakeRunner:
    """Counts loads; ``start`` may block on a gate or fail; ``kill()`` makes it die."""

    def __init__(self, spec: RunnerSpec, world: World):
        self.spec = spec
        self.world = world
        self.started = False
        self.closed = False
        self.killed = False

    def start(self) -> FakeRunner:
        w = self.world
        with w.lock:
            w.loading += 1
            w.max_loading = max(w.max_loading, w.loading)
        try:
            if w.gate is not None:
                w.gate.wait(10)
            time.sleep(w.load_delay)
            if w.fail_next:
                w.fail_next -= 1
                raise RuntimeError("load failed on purpose")
            self.started = True
            w.loads.append(self.spec)
            return self
        finally:
            with w.lock:
                w.loading -= 1

    @property
    def alive(self) -> bool:
        return self.started and not self.closed and not self.killed

    def kill(self) -> None:
        self.killed = True

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.world.closes.append(self.spec)


class World:
    """Shared state of the fakes: what was loaded and closed, and knobs for the next loads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.loads: list[RunnerSpec] = []
        self.closes: list[RunnerSpec] = []
        self.runners: list[FakeRunner] = []
        self.loading = 0
        self.max_loading = 0
        self.load_delay = 0.0
        self.fail_next = 0
        self.gate: threading.Event | None = None
        self.now = 1000.0
        self.memory = Memory(free=64 * GIB, total=64 * GIB)

    def factory(self, spec: RunnerSpec) -> FakeRunner:
        r = FakeRunner(spec, self)
        self.runners.append(r)
        return r

    def clock(self) -> float:
        return self.now

    def probe(self) -> Memory:
        return self.memory


def request(name: str, *, gib: float = 1.0, **spec: Any) -> LoadRequest:
    """A LoadRequest for model ``name`` needing about ``gib`` GiB."""
    s = RunnerSpec(model_path=f"/models/{name}.gguf", **spec)
    est = Estimate(weights=int(gib * GIB * 0.8), kv=int(gib * GIB * 0.15), graph=int(gib * GIB * 0.05), layers=10)
    return LoadRequest(key=s.model_path, name=name, spec=s, estimate=est)


def make(world: World, **kw: Any) -> Scheduler:
    kw.setdefault("keep_alive", 300.0)
    kw.setdefault("clock", world.clock)
    return Scheduler(world.factory, memory=world.probe, **kw)


@contextlib.asynccontextmanager
async def started(world: World, *, ticker: bool = False, **kw: Any) -> AsyncIterator[Scheduler]:
    """A started scheduler over ``world`` (no ticker unless asked), closed even when a test fails."""
    s = make(world, **kw)
    await s.start(ticker=ticker)
    try:
        yield s
    finally:
        await s.close()


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


async def settle() -> None:
    """Let background tasks (unloads after release) run."""
    for _ in range(20):
        await asyncio.sleep(0.005)
