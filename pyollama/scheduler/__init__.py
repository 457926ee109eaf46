"""Runner lifecycle: load on demand, keep_alive, eviction, memory fit, reload on option change, queue limit.

    sched = Scheduler(factory, max_runners=3, max_queue=512, keep_alive=300)   # see scheduler.py
    req = load_request(name, weights_path, options, config)                      # see plan.py
    lease = await sched.acquire(req, keep_alive=parse_keep_alive(body.get("keep_alive")))

Modules: ``scheduler`` (the async shell: queue, loader, leases, expiry), ``policy`` (pure decisions:
reload or reuse, whom to evict), ``memory`` (estimates, placement, free-memory probe), ``keepalive``
(parsing), ``plan`` (model + options → runner spec + estimate).
"""
from __future__ import annotations

from pyollama.scheduler.keepalive import FOREVER, parse_keep_alive
from pyollama.scheduler.memory import Estimate, Gpu, Memory, Placement, estimate, place, probe
from pyollama.scheduler.policy import needs_reload, pick_victim
from pyollama.scheduler.scheduler import QUEUE_FULL, Entry, Lease, LoadRequest, Scheduler

__all__ = ["FOREVER", "QUEUE_FULL", "Entry", "Estimate", "Gpu", "Lease", "LoadRequest", "Memory", "Placement",
           "Scheduler", "estimate", "needs_reload", "parse_keep_alive", "pick_victim", "place", "probe"]
