"""``GET /metrics``: the server's counters in Prometheus' text format (the official ``prometheus_client``).

Three sources: what the HTTP layer sees (requests by route and status — ``Metered``, the outermost
middleware, so refusals at the door count too), what each generation reports as it streams (tokens,
time to first token, inter-token latency — ``Metrics.generation``), and what the scheduler and its
runners hold when scraped (queue, loaded models, slots, KV cells, the prompt cache), read fresh on
every scrape from each runner (a child process answers over its channel, off the event loop).

The endpoint sits behind the same door as the API: with ``PYOLLAMA_API_KEY`` set it needs the key.
``PYOLLAMA_METRICS=0`` turns it off (404). Each app has its own registry (several servers in one
process — the tests — do not share counters).

Thread-safety: updated and rendered on the event loop; runner stats are gathered in worker threads.
"""
from __future__ import annotations

import asyncio
import logging
import time
from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString
from prometheus_client.exposition import choose_encoder
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match

log = logging.getLogger("pyollama.api")

# Seconds. TTFT spans a cached prompt on a GPU (ms) to a long prompt on a CPU (minutes); ITL a fast GPU
# (a few ms) to a large model on a CPU (a second).
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
ITL_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5)
STATS_TIMEOUT = 2.0       # seconds a scrape waits for one runner's figures


class Metrics:
    def __init__(self, sched: Any, routes: list[Any]):
        self.sched = sched
        self.routes = routes
        r = self.registry = CollectorRegistry()
        self.requests = Counter("pyollama_http_requests", "HTTP requests answered, by route, method and status",
                                ["route", "method", "status"], registry=r)
        self.prompt_tokens = Counter("pyollama_prompt_tokens", "Prompt tokens of finished generations",
                                     ["model"], registry=r)
        self.cached_tokens = Counter("pyollama_prompt_cached_tokens",
                                     "Prompt tokens taken from memory instead of evaluated (slot, copy, RAM cache)",
                                     ["model"], registry=r)
        self.generated_tokens = Counter("pyollama_generated_tokens", "Tokens generated", ["model"], registry=r)
        self.ttft = Histogram("pyollama_time_to_first_token_seconds",
                              "From the request's arrival to its first token", ["model"], buckets=TTFT_BUCKETS,
                              registry=r)
        # Inter-token latency is observed per streamed token: counted by hand into per-model buckets
        # (a list index and an add) and exported as a histogram at scrape time; prometheus_client's
        # Histogram takes a lock and walks its buckets per observation.
        self.itl: dict[str, list] = {}            # model -> [counts per bucket (+Inf last), sum]
        self._runner_stats: list[tuple[str, dict]] = []
        r.register(_Snapshot(self))

    def route_of(self, scope: dict[str, Any]) -> str:
        """The route's template (``/api/blobs/{digest}``), so a label never holds a client's text."""
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is not Match.NONE:
                return route.path
        return "other"

    def generation(self, model: str, t_start: int) -> Generation:
        return Generation(self, model, t_start)

    def itl_of(self, model: str) -> list:
        h = self.itl.get(model)
        if h is None:
            h = self.itl[model] = [[0] * (len(ITL_BUCKETS) + 1), 0.0]
        return h

    async def render(self, accept: str | None) -> tuple[bytes, str]:
        """The exposition in the format the scraper accepts (Prometheus text, or OpenMetrics)."""
        encode, content_type = choose_encoder(accept)
        self._runner_stats = await self._gather()
        try:
            return encode(self.registry), content_type
        finally:
            self._runner_stats = []

    async def _gather(self) -> list[tuple[str, dict]]:
        entries = [e for e in self.sched.loaded() if e.state == "loaded"]

        async def one(e: Any) -> tuple[str, dict] | None:
            stats = getattr(e.runner, "stats", None)
            if stats is None:
                return None
            try:
                return e.req.name, await asyncio.to_thread(stats, STATS_TIMEOUT)
            except Exception as ex:  # noqa: BLE001 - a busy or dying runner: its figures are left out
                log.debug("no stats from %s: %s", e.req.name, ex)
                return None
        return [s for s in await asyncio.gather(*(one(e) for e in entries)) if s is not None]


class Generation:
    """One streaming generation's observations: call ``token()`` per token event, ``done()`` at the end."""

    __slots__ = ("m", "model", "last", "t_start", "itl")

    def __init__(self, m: Metrics, model: str, t_start: int):
        self.m, self.model, self.t_start, self.last = m, model, t_start, 0
        self.itl = m.itl_of(model)               # looked up once: token() runs per streamed token

    def token(self) -> None:
        now = time.perf_counter_ns()
        if self.last:
            d = (now - self.last) / 1e9
            h = self.itl
            h[0][bisect_left(ITL_BUCKETS, d)] += 1     # the first bucket whose bound is >= d ("le")
            h[1] += d
        else:
            self.m.ttft.labels(self.model).observe((now - self.t_start) / 1e9)
        self.last = now

    def done(self, prompt: int, cached: int, generated: int) -> None:
        m = self.m
        m.prompt_tokens.labels(self.model).inc(prompt)
        m.cached_tokens.labels(self.model).inc(cached)
        m.generated_tokens.labels(self.model).inc(generated)


class _Snapshot:
    """Figures read at scrape time: the scheduler's, and the runners' gathered just before."""

    def __init__(self, m: Metrics):
        self.m = m

    def describe(self) -> list:
        return []            # no fixed families: collect() is only called when scraping

    def collect(self) -> Iterator[Any]:
        sched = self.m.sched
        yield _gauge("pyollama_queue_depth", "Requests waiting for a model to load or free up", sched.queued)
        yield _gauge("pyollama_models_loaded", "Models loaded now", len(sched.loaded()))
        counts = sched.counts
        for name, help_ in (("loads", "Models loaded"), ("load_failures", "Model loads that failed"),
                            ("unloads", "Models unloaded (any reason)"),
                            ("evictions", "Models unloaded to make room for another")):
            c = CounterMetricFamily(f"pyollama_model_{name}", help_)
            c.add_metric([], counts[name])
            yield c
        runners = self.m._runner_stats
        gauges = {k: GaugeMetricFamily(f"pyollama_{k}", h, labels=["model"]) for k, h in RUNNER_GAUGES.items()}
        counters = {k: CounterMetricFamily(f"pyollama_{k}", h, labels=["model"]) for k, h in RUNNER_COUNTERS.items()}
        for model, st in runners:
            flat = dict(st)
            flat.update({f"prompt_cache_{k}": v for k, v in st.get("prompt_cache", {}).items()})
            for k, fam in gauges.items():
                if k in flat:
                    fam.add_metric([model], flat[k])
            for k, fam in counters.items():
                if k in flat:
                    fam.add_metric([model], flat[k])
        yield from gauges.values()
        yield from counters.values()
        yield self._itl()

    def _itl(self) -> HistogramMetricFamily:
        fam = HistogramMetricFamily("pyollama_inter_token_latency_seconds", "Between two tokens of one generation",
                                    labels=["model"])
        for model, (counts, total) in list(self.m.itl.items()):
            acc, buckets = 0, []
            for bound, n in zip((*map(floatToGoString, ITL_BUCKETS), "+Inf"), counts):
                acc += n
                buckets.append((bound, acc))
            fam.add_metric([model], buckets, total)
        return fam


def _gauge(name: str, help_: str, value: float) -> GaugeMetricFamily:
    g = GaugeMetricFamily(name, help_)
    g.add_metric([], value)
    return g


# Runner figures (BatchLoop.stats), by their key there.
RUNNER_GAUGES = {
    "slots": "Parallel sequences (num_parallel) of a loaded model",
    "slots_busy": "Slots generating now",
    "waiting": "Requests queued inside the runner for a free slot",
    "kv_cells": "KV cache cells (all slots)",
    "kv_cells_used": "KV cache cells holding a sequence (generating, or kept for prefix reuse)",
    "prompt_cache_bytes": "Host memory held by the prompt cache",
    "prompt_cache_budget": "The prompt cache's limit (PYOLLAMA_CACHE_RAM)",
    "prompt_cache_entries": "Sequences saved in the prompt cache",
}
RUNNER_COUNTERS = {
    "prompt_cache_hits": "Prompts that restored a saved sequence",
    "prompt_cache_hit_tokens": "Prompt tokens restored from the prompt cache",
    "prompt_cache_saves": "Sequences saved to the prompt cache",
    "prompt_cache_evictions": "Sequences dropped from the prompt cache for room",
    "slot_copies": "Prompts that copied another slot's KV",
    "slot_copy_tokens": "Prompt tokens copied from another slot",
    "drafts": "Speculative drafts verified (PYOLLAMA_SPECULATIVE)",
    "draft_tokens": "Tokens drafted for speculative decoding",
    "draft_accepted": "Drafted tokens the model confirmed (acceptance = this / draft_tokens)",
}


METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Metered:
    """Counts every answered HTTP request (outermost: the door's 401/403/413 count too). The status is the
    one the app sent; 499 only when none was started (the client left first)."""

    def __init__(self, app: Any, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0

        async def seen(msg: dict[str, Any]) -> None:
            nonlocal status
            if msg["type"] == "http.response.start":
                status = msg["status"]
            await send(msg)
        try:
            await self.app(scope, receive, seen)
        finally:
            m = self.metrics
            method = scope["method"] if scope["method"] in METHODS else "OTHER"   # a label never holds client text
            m.requests.labels(m.route_of(scope), method, str(status or 499)).inc()


async def metrics(request: Request) -> Response:
    m: Metrics | None = request.app.state.server.metrics
    if m is None:
        raise HTTPException(404)
    body, content_type = await m.render(request.headers.get("accept"))
    return Response(body, headers={"Content-Type": content_type})
