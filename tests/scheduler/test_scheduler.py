"""The scheduler with fake runners, a fake clock and fixed memory numbers: no model, milliseconds each."""
from __future__ import annotations

import asyncio
import math
import threading
import time

import pytest

from pyollama.errors import InsufficientMemory, LoadTimeout, QueueFull, ShuttingDown
from pyollama.scheduler import QUEUE_FULL, Gpu, Memory
from tests.scheduler.helpers import GIB, World, make, request, run, settle, started


def test_loads_on_demand_and_reuses():
    w = World()

    async def main():
        async with started(w) as s:
            a = await s.acquire(request("a"))
            b = await s.acquire(request("a"))
            assert a.runner is b.runner
            assert len(w.loads) == 1
            assert a.waited_ns > 0 and b.waited_ns == 0       # the second went straight to the runner
            a.release()
            b.release()
    run(main())


def test_one_load_at_a_time():
    w = World()
    w.load_delay = 0.05

    async def main():
        async with started(w, max_runners=4) as s:
            leases = await asyncio.gather(*(s.acquire(request(n)) for n in "abc"))
            assert w.max_loading == 1 and len(w.loads) == 3
            for le in leases:
                le.release()
    run(main())


def test_keep_alive_countdown_starts_when_idle():
    w = World()

    async def main():
        async with started(w) as s:
            lease = await s.acquire(request("a"), keep_alive=60)
            w.now += 120                        # in use: never expires
            await s.expire_due()
            assert len(s.loaded()) == 1
            lease.release()
            w.now += 59
            await s.expire_due()
            assert len(s.loaded()) == 1
            w.now += 2
            await s.expire_due()
            assert s.loaded() == [] and len(w.closes) == 1
    run(main())


def test_keep_alive_zero_unloads_after_request_and_forever_never():
    w = World()

    async def main():
        async with started(w) as s:
            (await s.acquire(request("a"), keep_alive=0)).release()
            await settle()
            assert s.loaded() == [] and len(w.closes) == 1
            (await s.acquire(request("b"), keep_alive=math.inf)).release()
            w.now += 10 ** 9
            await s.expire_due()
            assert [e.req.name for e in s.loaded()] == ["b"]
            assert math.isinf(s.expires_wall(s.loaded()[0]))
    run(main())


def test_default_keep_alive_and_latest_request_wins():
    w = World()

    async def main():
        async with started(w, keep_alive=30) as s:
            (await s.acquire(request("a"))).release()
            assert s.loaded()[0].keep_alive == 30
            (await s.acquire(request("a"), keep_alive=600)).release()
            w.now += 100
            await s.expire_due()
            assert len(s.loaded()) == 1
    run(main())


def test_expire_unloads_now_or_when_drained():
    w = World()

    async def main():
        async with started(w) as s:
            (await s.acquire(request("a"))).release()
            assert await s.expire(request("a").key)
            assert s.loaded() == []
            busy = await s.acquire(request("b"))
            await s.expire(request("b").key)
            assert len(s.loaded()) == 1          # still serving its request
            busy.release()
            await settle()
            assert s.loaded() == []
            assert not await s.expire("nothing")
    run(main())


def test_eviction_picks_idle_runner_expiring_soonest():
    w = World()

    async def main():
        async with started(w, max_runners=2) as s:
            (await s.acquire(request("a"), keep_alive=600)).release()
            (await s.acquire(request("b"), keep_alive=60)).release()
            (await s.acquire(request("c"))).release()
            assert sorted(e.req.name for e in s.loaded()) == ["a", "c"]
            assert [c.model_path for c in w.closes] == ["/models/b.gguf"]
    run(main())


def test_eviction_waits_for_a_busy_runner_to_drain():
    w = World()

    async def main():
        async with started(w, max_runners=1) as s:
            a = await s.acquire(request("a"))
            waiting = asyncio.create_task(s.acquire(request("b")))
            await settle()
            assert not waiting.done() and len(w.loads) == 1
            # a is marked: a new request for it must wait too rather than keep it busy for ever
            assert s._usable(request("a")) is None
            a.release()
            b = await waiting
            assert [x.req.name for x in s.loaded()] == ["b"]
            b.release()
    run(main())


def test_insufficient_memory_is_a_clear_error():
    w = World()
    w.memory = Memory(free=2 * GIB, total=4 * GIB)

    async def main():
        async with started(w) as s:
            with pytest.raises(InsufficientMemory, match=r"model requires more system memory \(3\.0 GiB\) "
                                                         r"than is available \(2\.0 GiB\)"):
                await s.acquire(request("big", gib=3))
            assert w.loads == []
    run(main())


def test_a_roomy_host_only_placement_is_not_measured():
    """No GPU and free RAM for several times the estimate: the placement needs no exact figure, and the
    native measurement (~0.1 s of a cold start) is skipped; closer to the limit it is taken."""
    w = World()
    measured: list[object] = []

    def measure(cfg):
        measured.append(cfg)
        raise RuntimeError("not a real file")          # then the estimate places it, as before

    async def main():
        async with started(w, measure=measure, max_runners=5) as s:
            w.memory = Memory(free=64 * GIB, total=64 * GIB)
            (await s.acquire(request("small", gib=1))).release()
            assert measured == []
            w.memory = Memory(free=4 * GIB, total=4 * GIB)
            (await s.acquire(request("large", gib=2))).release()
            assert len(measured) == 1
    run(main())


def test_memory_pressure_evicts_idle_model():
    w = World()
    w.memory = Memory(free=3 * GIB, total=3 * GIB)

    async def main():
        async with started(w, max_runners=5) as s:
            (await s.acquire(request("a", gib=2))).release()
            # 2 GiB are booked for a: b (2 GiB) only fits once a is gone
            (await s.acquire(request("b", gib=2))).release()
            assert [e.req.name for e in s.loaded()] == ["b"]
            (await s.acquire(request("c", gib=0.5))).release()
            assert sorted(e.req.name for e in s.loaded()) == ["b", "c"]
    run(main())


def test_gpu_layers_placed_as_they_fit():
    w = World()
    w.memory = Memory(free=64 * GIB, total=64 * GIB, gpus=(Gpu("g", free=int(0.5 * GIB), total=GIB),))

    async def main():
        async with started(w) as s:
            lease = await s.acquire(request("a", gib=1))
            e = lease.entry
            assert 0 < e.spec.num_gpu < 10 and e.placement.vram > 0 and e.placement.ram > 0
            assert e.req.spec.num_gpu == -1           # the request's spec stays automatic
            lease.release()
            # "auto" (-1) again keeps the runner, whatever layer count auto placement chose for it
            # (an explicit num_gpu is compared with the request's -1 and reloads, as Ollama's needsReload)
            again = await s.acquire(request("a", gib=1))
            assert again.runner is lease.runner
            again.release()
    run(main())


def test_reload_when_runner_options_change_not_otherwise():
    w = World()

    async def main():
        async with started(w) as s:
            (await s.acquire(request("a", num_ctx=4096))).release()
            (await s.acquire(request("a", num_ctx=4096))).release()
            assert len(w.loads) == 1
            (await s.acquire(request("a", num_ctx=8192))).release()
            assert [x.num_ctx for x in w.loads] == [4096, 8192]
            assert len(s.loaded()) == 1 and len(w.closes) == 1     # never two copies of one model
            (await s.acquire(request("a", num_ctx=8192, num_batch=256))).release()
            (await s.acquire(request("a", num_ctx=8192, num_batch=256, parallel=2))).release()
            assert len(w.loads) == 4
    run(main())


def test_reload_waits_for_in_flight_requests():
    w = World()

    async def main():
        async with started(w) as s:
            old = await s.acquire(request("a", num_ctx=2048))
            new = asyncio.create_task(s.acquire(request("a", num_ctx=4096)))
            await settle()
            assert not new.done() and old.runner.alive
            old.release()
            lease = await new
            assert lease.runner is not old.runner and not old.runner.alive
            lease.release()
    run(main())


def test_queue_limit_gives_queue_full():
    w = World()
    w.gate = threading.Event()

    async def main():
        async with started(w, max_queue=1, max_runners=5) as s:
            first = asyncio.create_task(s.acquire(request("a")))      # taken by the loader, loading
            await settle()
            second = asyncio.create_task(s.acquire(request("b")))     # waits in the queue
            await settle()
            assert s.queued == 1
            with pytest.raises(QueueFull) as exc:
                await s.acquire(request("c"))
            assert str(exc.value) == QUEUE_FULL and exc.value.status == 503
            w.gate.set()
            (await first).release()
            (await second).release()
            # a request for a loaded model never queues, even while the queue is full
            w.gate.clear()
            third = asyncio.create_task(s.acquire(request("c")))     # loading, held by the gate
            await settle()
            fourth = asyncio.create_task(s.acquire(request("d")))    # queued: the queue is full
            await settle()
            assert s.queued == 1
            loads = len(w.loads)
            lease = await s.acquire(request("a"))
            assert lease.waited_ns == 0 and len(w.loads) == loads
            lease.release()
            w.gate.set()
            (await third).release()
            (await fourth).release()
    run(main())


def test_cancelled_waiter_leaves_the_queue():
    w = World()
    w.gate = threading.Event()

    async def main():
        async with started(w, max_runners=5) as s:
            first = asyncio.create_task(s.acquire(request("a")))
            await settle()
            gone = asyncio.create_task(s.acquire(request("b")))
            await settle()
            assert s.queued == 1
            gone.cancel()
            await settle()
            assert s.queued == 0
            w.gate.set()
            (await first).release()
            await settle()
            assert [x.model_path for x in w.loads] == ["/models/a.gguf"]      # b was never loaded
    run(main())


def test_dead_runner_is_replaced_by_the_next_request():
    w = World()

    async def main():
        async with started(w) as s:
            lease = await s.acquire(request("a"))
            lease.runner.kill()                 # e.g. the child was killed mid-request
            lease.release()
            await settle()
            assert s.loaded() == []
            again = await s.acquire(request("a"))
            assert again.runner.alive and len(w.loads) == 2
            again.release()
            # a runner that dies while idle is reaped by the ticker pass
            again.runner.kill()
            await s.expire_due()
            assert s.loaded() == []
    run(main())


def test_load_failure_reaches_the_request_and_next_one_retries():
    w = World()
    w.fail_next = 1

    async def main():
        async with started(w) as s:
            with pytest.raises(RuntimeError, match="on purpose"):
                await s.acquire(request("a"))
            assert s.loaded() == []
            (await s.acquire(request("a"))).release()
            assert len(s.loaded()) == 1
    run(main())


def test_load_timeout():
    w = World()
    w.load_delay = 0.5

    async def main():
        async with started(w, load_timeout=0.05) as s:
            with pytest.raises(LoadTimeout, match="timed out"):
                await s.acquire(request("a"))
            await asyncio.sleep(0.6)
            assert w.runners[0].closed          # closed once its load returned
    run(main())


def test_close_unloads_everything_and_turns_away_waiters():
    w = World()
    w.gate = threading.Event()

    async def main():
        s = make(w, max_runners=5)
        await s.start(ticker=False)
        w.gate.set()
        (await s.acquire(request("a"))).release()
        w.gate.clear()
        loading = asyncio.create_task(s.acquire(request("b")))
        await settle()
        queued = asyncio.create_task(s.acquire(request("c")))
        await settle()
        closing = asyncio.create_task(s.close())
        await settle()
        w.gate.set()
        await closing
        for t in (loading, queued):
            with pytest.raises(ShuttingDown):
                await t
        assert s.loaded() == []
        assert all(r.closed or not r.started for r in w.runners)
        with pytest.raises(ShuttingDown):
            await s.acquire(request("a"))
    run(main())


def test_ticker_expires_in_real_time():
    w = World()

    async def main():
        async with started(w, ticker=True, clock=time.monotonic) as s:
            (await s.acquire(request("a"), keep_alive=0.05)).release()
            assert len(s.loaded()) == 1
            await asyncio.sleep(0.3)
            assert s.loaded() == []
    run(main())


def test_marked_runner_keeps_serving_when_the_waiter_leaves():
    w = World()

    async def main():
        async with started(w, max_runners=1) as s:
            a = await s.acquire(request("a"))
            waiting = asyncio.create_task(s.acquire(request("b")))
            await settle()
            assert s._usable(request("a")) is None          # marked for b
            waiting.cancel()
            await settle()
            assert s._usable(request("a")) is not None      # b left: a takes requests again
            a.release()
            await settle()
            assert [e.req.name for e in s.loaded()] == ["a"] and len(w.loads) == 1
    run(main())
