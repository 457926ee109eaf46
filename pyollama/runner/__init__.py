"""Runners: one loaded model serving many requests with continuous batching.

`Runner` runs in this process; `ProcessRunner` runs the same code in a child process so a native
crash or an out-of-memory kill takes down one runner, not the server.
"""
from __future__ import annotations

from pyollama.runner.process import ProcessRunner
from pyollama.errors import RunnerDied
from pyollama.runner.runner import Runner
from pyollama.runner.types import DoneEvent, ErrorEvent, RunnerSpec, SeqRequest, Stream, TokenEvent

__all__ = ["Runner", "ProcessRunner", "RunnerDied", "RunnerSpec", "SeqRequest", "Stream", "TokenEvent", "DoneEvent",
           "ErrorEvent"]
