"""``pyollama serve``: the HTTP server on ``OLLAMA_HOST`` (default 127.0.0.1:11434).

SIGINT/SIGTERM stop accepting connections, give in-flight requests a few seconds, then the lifespan
shutdown unloads every model (child runners exit). A second SIGINT exits at once.

Thread-safety: call :func:`serve` from the main thread (it installs signal handlers).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

from pyollama import __version__
from pyollama.config import Config

log = logging.getLogger("pyollama")

GRACEFUL_SECONDS = 5


def setup_logging(cfg: Config) -> None:
    level = logging.DEBUG if cfg.debug else logging.INFO
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="time=%(asctime)s level=%(levelname)s source=%(name)s msg=%(message)s")


def serve(cfg: Config | None = None) -> int:
    cfg = cfg or Config.from_env()
    setup_logging(cfg)
    if cfg.spare_runner and cfg.runner == "process":
        from pyollama.runner import spare

        spare.enable()          # now: its start overlaps the server's own imports (the lifespan ends it)

    import uvicorn

    from pyollama.api.app import create_app
    from pyollama.store import Store
    for w in cfg.warnings:
        log.warning("%s", w)
    store = Store(cfg.models)
    if not cfg.noprune:
        try:
            counts = store.prune(force=True)
            if any(counts.values()):
                log.info("pruned %d unused blob(s) and %d stale temp file(s)", counts["blobs"], counts["temp"])
        except OSError as e:
            log.warning("prune skipped: %s", e)
    app = create_app(cfg, store=store)
    log.info("model store: %s", store.root)
    log.info("Listening on %s:%d (version %s)", cfg.host.host, cfg.host.port, __version__)
    server = _Server(uvicorn.Config(
        app, host=cfg.host.host, port=cfg.host.port, lifespan="on", log_level="debug" if cfg.debug > 1 else "warning",
        access_log=cfg.debug > 0, timeout_graceful_shutdown=GRACEFUL_SECONDS, http="auto"))
    server.run()
    if server.stopped_by:
        log.info("stopped by %s", signal.Signals(server.stopped_by[0]).name)
    return 0 if server.started else 1


def _server_class() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, but a signal ends in a normal exit (status 0, as Ollama's) after the graceful
        shutdown, instead of re-raising the signal."""

        stopped_by: list[int]
        _woken: asyncio.Event | None = None
        _loop: asyncio.AbstractEventLoop | None = None

        async def main_loop(self) -> None:
            """uvicorn's housekeeping (the Date header, the exit check) once a second instead of ten times:
            an idle server then wakes once a second; a signal wakes it at once."""
            self._loop = asyncio.get_running_loop()
            self._woken = asyncio.Event()
            while not await self.on_tick(0):        # counter 0: every tick is a "once a second" one
                try:
                    await asyncio.wait_for(self._woken.wait(), 1.0)
                except asyncio.TimeoutError:
                    pass
                self._woken.clear()

        def handle_exit(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            if self._loop is not None and self._woken is not None:
                try:
                    self._loop.call_soon_threadsafe(self._woken.set)
                except RuntimeError:                # the loop has already closed
                    pass

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            self.stopped_by = self._captured_signals
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            originals = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in originals.items():
                    signal.signal(sig, handler)
    return Server


def _Server(config: object) -> object:
    return _server_class()(config)
