"""Runners: one loaded model serving many requests with continuous batching.

`Runner` runs in this process; `ProcessRunner` runs the same code in a child process so a native
crash or an out-of-memory kill takes down one runner, not the server.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from pyollama.errors import RunnerDied
from pyollama.runner.types import DoneEvent, ErrorEvent, RunnerSpec, SeqRequest, Stream, TokenEvent

if TYPE_CHECKING:
    from pyollama.runner.process import ProcessRunner
    from pyollama.runner.runner import Runner


def __getattr__(name: str):
    # Imported when first asked for: a runner child needs Runner only, and the plain data above needs
    # neither the native library nor asyncio.
    if name == "Runner":
        from pyollama.runner.runner import Runner
        return Runner
    if name == "ProcessRunner":
        from pyollama.runner.process import ProcessRunner
        return ProcessRunner
    raise AttributeError(f"module 'pyollama.runner' has no attribute {name!r}")

__all__ = ["Runner", "ProcessRunner", "RunnerDied", "RunnerSpec", "SeqRequest", "Stream", "TokenEvent", "DoneEvent",
           "ErrorEvent"]
