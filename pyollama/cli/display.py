"""Showing a streamed answer: word wrap at the terminal width, the thinking block, the waiting spinner
and the ``--verbose`` statistics.

Word wrap holds back the word being written until it is complete (the next space or newline arrives, or
the stream ends) and starts a new line first when it would not fit, so words are never split across
lines and nothing is written twice. Ollama instead prints each character and erases a word that turned
out too long with cursor movements; holding one word back costs at most one token of latency and works
on any terminal, including ones that ignore cursor movement. Words wider than the whole line are split
(there is nothing better to do); wide (CJK) characters are words of their own.

Thread-safety: one instance per answer, fed from one thread.
"""
from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from typing import IO, Any

from pyollama.cli.fmt import go_duration
from pyollama.cli.progress import is_terminal

DIM = "\x1b[90m"
RESET = "\x1b[0m"


def _cells(text: str) -> int:
    from rich.cells import cell_len

    return cell_len(text)


def terminal_width() -> int:
    return shutil.get_terminal_size((80, 24)).columns


class WordWrapper:
    """Writes streamed text to ``out``; with ``wrap``, breaks lines between words before ``width()``."""

    def __init__(self, out: IO[str], *, wrap: bool, width: Callable[[], int] = terminal_width):
        self.out = out
        self.wrap = wrap
        self.width = width
        self.col = 0           # cells written on the current line
        self.word = ""         # the word held back
        self.last = ""         # the last character that reached ``out``

    def write(self, text: str) -> None:
        if not text:
            return
        if not self.wrap:
            self.out.write(text)
            self.last = text[-1]
            self.out.flush()
            return
        limit = max(self.width() - 1, 10)   # never the last column: terminals differ about wrapping there
        for ch in text:
            if ch == "\n":
                self._flush_word(limit)
                self._emit("\n")
                self.col = 0
            elif ch in " \t":
                self._flush_word(limit)
                if self.col + 1 > limit:
                    self._emit("\n")
                    self.col = 0
                else:
                    self._emit(ch)
                    self.col += 1 if ch == " " else 8 - self.col % 8
            elif _cells(ch) >= 2:
                self._flush_word(limit)
                self.word = ch
                self._flush_word(limit)
            else:
                self.word += ch
                if _cells(self.word) >= limit:      # longer than a line: split it
                    self._flush_word(limit)
        self.out.flush()

    def _flush_word(self, limit: int) -> None:
        if not self.word:
            return
        w = _cells(self.word)
        if self.col > 0 and self.col + w > limit:
            self._emit("\n")
            self.col = 0
        self._emit(self.word)
        self.col += w
        self.word = ""

    def _emit(self, s: str) -> None:
        self.out.write(s)
        self.last = s[-1]

    def raw(self, s: str) -> None:
        """Write control text (colours) that takes no room on the line."""
        self.out.write(s)

    def newline_if_needed(self) -> None:
        self.finish()
        if self.last and self.last != "\n":
            self._emit("\n")
            self.col = 0

    def finish(self) -> None:
        if self.wrap:
            self._flush_word(max(self.width() - 1, 10))
        self.out.flush()


class AnswerView:
    """An answer with optional thinking: ``Thinking...`` (dimmed on a terminal), the thoughts, then
    ``...done thinking.`` and the content, as Ollama's CLI shows them."""

    def __init__(self, out: IO[str] | None = None, *, wrap: bool, show_thinking: bool = True,
                 color: bool | None = None):
        self.out = out or sys.stdout
        self.writer = WordWrapper(self.out, wrap=wrap)
        self.show_thinking = show_thinking
        self.color = is_terminal(self.out) if color is None else color
        self.in_thinking = False
        self.content_text = ""
        self.thinking_text = ""

    def thinking(self, text: str) -> None:
        if not text:
            return
        self.thinking_text += text
        if not self.show_thinking:
            return
        if not self.in_thinking:
            self.in_thinking = True
            if self.color:
                self.writer.raw(DIM)
            self.writer.write("Thinking...\n")
        self.writer.write(text)

    def _end_thinking(self) -> None:
        if self.in_thinking:
            self.in_thinking = False
            self.writer.newline_if_needed()
            self.writer.write("...done thinking.\n\n")
            if self.color:
                self.writer.raw(RESET)

    def content(self, text: str) -> None:
        if not text:
            return
        self._end_thinking()
        self.content_text += text
        self.writer.write(text)

    def finish(self) -> None:
        self._end_thinking()
        self.writer.finish()

    def end_line(self) -> None:
        """Make sure the cursor is at the start of a line (after an answer or an interruption)."""
        self.finish()
        self.writer.newline_if_needed()
        self.out.flush()



class Spinner:
    """A spinner on stderr while waiting for the first token (terminal only); cleared when stopped."""

    def __init__(self, stream: IO[str] | None = None):
        self._status: Any = None
        stream = stream or sys.stderr
        if is_terminal(stream):
            from rich.console import Console

            con = Console(file=stream)
            if not con.is_dumb_terminal:
                self._status = con.status("", spinner="dots")
                self._status.start()

    def stop(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None


def stats_lines(final: dict[str, Any]) -> list[str]:
    """``--verbose`` statistics from a final chunk, as Ollama prints them."""
    lines = []

    def rate(count: int, ns: int) -> str:
        return f"{count / ns * 1e9:.2f} tokens/s" if ns else "n/a"

    def put(label: str, value: str) -> None:
        lines.append(f"{label + ':':<22}{value}")

    if "total_duration" in final:
        put("total duration", go_duration(final["total_duration"]))
    if "load_duration" in final:
        put("load duration", go_duration(final["load_duration"]))
    pc, pd = int(final.get("prompt_eval_count") or 0), int(final.get("prompt_eval_duration") or 0)
    ec, ed = int(final.get("eval_count") or 0), int(final.get("eval_duration") or 0)
    put("prompt eval count", f"{pc} token(s)")
    if pd:
        put("prompt eval duration", go_duration(pd))
        put("prompt eval rate", rate(pc, pd))
    put("eval count", f"{ec} token(s)")
    if ed:
        put("eval duration", go_duration(ed))
        put("eval rate", rate(ec, ed))
    return lines


def print_stats(final: dict[str, Any], stream: IO[str] | None = None) -> None:
    out = stream or sys.stderr
    for line in stats_lines(final):
        print(line, file=out)
    out.flush()
