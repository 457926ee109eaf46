"""What every route shares: the configuration, the model store, the scheduler, and the few steps all
inference routes take (find the model, build its load request, wait for a runner).

Thread-safety: used on the event loop; store reads run in worker threads.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from pyollama.api.metrics import Metrics
from pyollama.api.ndjson import until_disconnected
from pyollama.api.vocabs import Vocabs
from pyollama.config import Config
from pyollama.errors import InsufficientMemory, InvalidModelName, InvalidRequest, ModelNotFound
from pyollama.scheduler import Lease, LoadRequest, Scheduler, plan
from pyollama.store import ModelName, ModelRecord, Store, load_model
from pyollama.store.show import details

log = logging.getLogger("pyollama.api")
# Options that size a runner's memory, and the RunnerSpec field each ends up in.
SPEC_FIELD = {"num_ctx": "num_ctx", "num_batch": "num_batch", "num_parallel": "parallel", "num_gpu": "num_gpu"}
MEMORY_OPTIONS = tuple(SPEC_FIELD)
RECORDS_KEPT = 64


@dataclass
class ServerState:
    cfg: Config
    store: Store
    sched: Scheduler
    total_vram: int = 0
    metrics: Metrics | None = None
    vocabs: Vocabs = field(default_factory=Vocabs)      # tokenizing in the server (vocab-only models)
    # Records by request name, reused while their manifest file is unchanged: reading a manifest, its
    # config and template layers is a thread hop and several files per request otherwise.
    _records: OrderedDict[str, tuple[tuple[int, int, int], ModelRecord]] = field(default_factory=OrderedDict)
    extras: dict[str, Any] = field(default_factory=dict)

    async def record(self, name: str) -> ModelRecord:
        """The stored model ``name`` (ModelNotFound: ``model '<name>' not found``, as the client wrote it)."""
        if not name:
            raise ModelNotFound(f"model '{name}' not found")
        try:
            parsed = ModelName.parse(name)
        except InvalidModelName:
            raise InvalidModelName("invalid model name") from None
        if name.endswith((":cloud", "-cloud")):
            raise ModelNotFound(f"model '{name}' not found")   # ollama.com cloud models are out of scope
        stamp = self._stamp(parsed)
        hit = self._records.get(name)
        if hit is not None and stamp is not None and hit[0] == stamp:
            self._records.move_to_end(name)
            return hit[1]
        try:
            rec = await asyncio.to_thread(load_model, self.store, name)
        except ModelNotFound:
            raise ModelNotFound(f"model '{name}' not found") from None
        if rec.model_path is None:
            raise ModelNotFound(f"model '{name}' has no weights")
        if stamp is not None:
            self._records[name] = (stamp, rec)
            while len(self._records) > RECORDS_KEPT:
                self._records.popitem(last=False)
        return rec

    def _stamp(self, name: ModelName) -> tuple[int, int, int] | None:
        """The manifest file's identity (mtime, size, inode) when ``name`` names it exactly, else None (no
        caching: another casing, a digest pin). A manifest rewritten by create, pull or copy changes it;
        the blobs a record reads are content-addressed and never change under it."""
        if name.digest:
            return None
        try:
            st = os.stat(self.store.manifests.path(name))
        except (OSError, InvalidModelName):
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def load_request(self, rec: ModelRecord, options: dict[str, Any]) -> LoadRequest:
        opts = plan.merged_options(rec.params, options)
        load = plan.load_request(
            rec.name.display(), rec.model_path, opts, self.cfg,
            adapters=tuple(str(p) for p in rec.adapter_paths), total_vram=self.total_vram, draft=rec.draft_path,
            projector=rec.projector_paths[0] if rec.projector_paths else None,
            info={"model": rec.name.display(), "digest": rec.digest, "details": details(rec, None)})
        return dataclasses.replace(
            load, requested=tuple(k for k in MEMORY_OPTIONS if (options or {}).get(k) is not None))

    async def lease(self, request: Request, load: LoadRequest, keep_alive: float | None) -> Lease:
        """Wait for a runner; a client that leaves while waiting is taken out of the queue (499). A model
        that does not fit because of the request's own options is the request's error (400)."""
        try:
            return await until_disconnected(request.receive, self.sched.acquire(load, keep_alive))
        except InsufficientMemory as e:
            if not load.requested:
                raise
            s = load.spec
            asked = ", ".join(f"{k} {getattr(s, SPEC_FIELD[k])}" for k in load.requested)
            raise InvalidRequest(f"{e} (with {asked} from the request's options)") from None
