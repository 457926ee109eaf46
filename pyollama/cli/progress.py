"""Progress for pull, push, create and blob uploads, fed with the server's progress objects
(``{"status", "digest"?, "total"?, "completed"?}``, docs/contract.md §2.10) or the client's own in that shape.

On a terminal (stderr is a TTY) rich draws what Ollama's CLI draws: one spinner line per status and one
bar per layer and step (keyed by status and digest: one layer can be uploaded, then quantized) with
percentage, bytes, speed and time left, updated in place. Piped or redirected, the same events become
plain lines — each status once, each layer when it starts, every few seconds while it runs, and when it
completes — with no escape sequences or carriage returns, so a log file stays readable.

    with progress_for(sys.stderr) as show:
        for event in client.stream("/api/pull", body):
            show(event)

Thread-safety: one instance per command, fed from one thread (rich redraws from its own thread).
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import IO, Any, TypeVar

from pyollama.cli.fmt import human_bytes

_P = TypeVar("_P", bound="ProgressView")


class ProgressView:
    """Base: a callable that takes progress events; a context manager that stops drawing at exit."""

    def __call__(self, event: dict[str, Any]) -> None:
        self.event(event)

    def event(self, event: dict[str, Any]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self: _P) -> _P:  # noqa: PYI019 - typing.Self needs Python 3.11
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def progress_for(stream: IO[str] | None = None, *, transient: bool = False) -> ProgressView:
    """Bars on a terminal, plain lines otherwise. ``transient`` clears the bars when done (used when the
    progress is only a preamble, e.g. uploading a GGUF for ``run ./model.gguf``)."""
    stream = stream or sys.stderr
    if is_terminal(stream):
        from rich.console import Console

        console = Console(file=stream)
        if console.is_terminal and not console.is_dumb_terminal:
            return LiveProgress(console, transient=transient)
    return PlainProgress(stream)


# --- terminal ---------------------------------------------------------------------------------------
class LiveProgress(ProgressView):
    """The live area holds what is under way: the current status with a spinner and the layers still
    moving. Whatever finishes is printed above it as a fixed line, so the screen reads in order and the
    columns only have to fit the lines that are still changing."""

    def __init__(self, console: Any, *, transient: bool = False):
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            ProgressColumn,
            SpinnerColumn,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
        from rich.table import Column
        from rich.text import Text

        class Only(ProgressColumn):
            """Show ``inner`` for layer bars only (``bars=True``) or for status lines only."""

            def __init__(self, inner: Any, bars: bool):
                super().__init__(table_column=Column(no_wrap=True))
                self.inner, self.bars = inner, bars

            def render(self, task: Any) -> Any:
                if bool(task.fields.get("bar")) != self.bars:
                    return Text("")
                return self.inner(task)

        self._Text = Text
        self._progress = Progress(
            Only(SpinnerColumn(), bars=False),
            TextColumn("{task.description}", table_column=Column(no_wrap=True, overflow="ellipsis")),
            Only(TaskProgressColumn(), bars=True),
            Only(BarColumn(bar_width=20), bars=True),
            Only(DownloadColumn(), bars=True),
            Only(TransferSpeedColumn(), bars=True),
            Only(TimeRemainingColumn(compact=True), bars=True),
            console=console, transient=True, refresh_per_second=8)
        self._keep = not transient       # print finished lines above the live area
        self._bars: dict[tuple[str, str], Any] = {}
        self._done: set[tuple[str, str]] = set()
        self._status_task: Any = None
        self._status = ""
        self._started = False

    def _print(self, text: str) -> None:
        if self._keep:
            self._progress.console.print(self._Text(text), soft_wrap=True, highlight=False)

    def event(self, event: dict[str, Any]) -> None:
        if not self._started:
            self._progress.start()
            self._started = True
        status = str(event.get("status") or "")
        digest = event.get("digest")
        if digest:
            self._finish_status()
            key = (status, digest)      # one layer can have several bars: uploaded, then quantized
            if key in self._done:
                return
            total = int(event.get("total") or 0) or None
            completed = int(event.get("completed") or 0)
            task = self._bars.get(key)
            if task is None:
                task = self._bars[key] = self._progress.add_task(status, total=total, completed=completed,
                                                                 bar=True)
            else:
                self._progress.update(task, total=total, completed=completed)
            if total and completed >= total:
                self._finish_bar(key)
        elif status and status != self._status:
            self._finish_status()
            if status == "success":
                self._print(status)
                return
            self._status = status
            self._status_task = self._progress.add_task(status, total=None)

    def _finish_bar(self, key: tuple[str, str]) -> None:
        task_id = self._bars.pop(key)
        task = next(t for t in self._progress.tasks if t.id == task_id)
        elapsed = task.elapsed or 0.0
        total = int(task.total or 0)
        self._progress.remove_task(task_id)
        self._done.add(key)
        rate = f" ({human_bytes(total / elapsed)}/s)" if elapsed > 0.05 else ""
        self._print(f"{key[0]} 100% {'━' * 20} {human_bytes(total)} in {elapsed:.1f}s{rate}")

    def _finish_status(self) -> None:
        if self._status_task is not None:
            self._progress.remove_task(self._status_task)
            self._print(self._status)
            self._status_task = None
            self._status = ""

    def close(self) -> None:
        if self._started:
            self._finish_status()
            for key in list(self._bars):      # stopped early (an error, Ctrl+C): show where they were
                task_id = self._bars.pop(key)
                task = next(t for t in self._progress.tasks if t.id == task_id)
                pct = f"{task.percentage:.0f}%" if task.total else ""
                self._print(f"{key[0]} {pct}".rstrip())
            self._progress.stop()
            self._started = False


# --- pipes and files --------------------------------------------------------------------------------
@dataclass
class _Layer:
    started: float
    last_report: float
    finished: bool = False


class PlainProgress(ProgressView):
    """One line per status change; per layer a start line, a line every ``interval`` seconds, and an
    end line with the time taken and the average speed."""

    def __init__(self, out: IO[str], interval: float = 5.0):
        self.out = out
        self.interval = interval
        self._layers: dict[tuple[str, str], _Layer] = {}
        self._status = ""

    def _line(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def event(self, event: dict[str, Any]) -> None:
        status = str(event.get("status") or "")
        digest = event.get("digest")
        if not digest:
            if status and status != self._status:
                self._status = status
                self._line(status)
            return
        self._status = ""
        now = time.monotonic()
        total = int(event.get("total") or 0)
        done = int(event.get("completed") or 0)
        key = (status, digest)
        layer = self._layers.get(key)
        first = layer is None
        if layer is None:
            layer = self._layers[key] = _Layer(now, now)
            self._line(f"{status} ({human_bytes(total)})" if total else status)
        if layer.finished or not total:
            return
        elapsed = max(now - layer.started, 1e-6)
        if done >= total:
            layer.finished = True
            self._line(f"{status}: 100% of {human_bytes(total)} in {elapsed:.1f}s "
                       f"({human_bytes(total / elapsed)}/s)")
        elif not first and now - layer.last_report >= self.interval:
            layer.last_report = now
            rate = done / elapsed
            eta = (total - done) / rate if rate > 0 else 0
            self._line(f"{status}: {done * 100 // total}% ({human_bytes(done)}/{human_bytes(total)}, "
                       f"{human_bytes(rate)}/s, {eta:.0f}s left)")
