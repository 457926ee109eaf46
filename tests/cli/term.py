"""A real terminal for the CLI tests: the program runs under a pseudo-terminal (pexpect) and everything
it writes is fed to a VT100 emulator (pyte), so tests read the screen a person would see — prompt
redraws, spinners, progress bars and cursor movement included — and type keys into it. The emulator
also answers the cursor-position queries prompt_toolkit sends, as a terminal does.

    t = Terminal([sys.executable, "-m", "pyollama", "run", "smol"], env=env)
    t.wait_idle()                       # ">>> Send a message (/? for help)"
    t.submit("Why is the sky blue?")    # type it, press Enter, wait for the next idle prompt
    assert "blue" in t.transcript()
"""
from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pexpect
import pyte

from pyollama.cli.repl import ALT_PLACEHOLDER, PLACEHOLDER

IDLE = (f">>> {PLACEHOLDER}", f"... {ALT_PLACEHOLDER}")
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\x1b[()][A-Za-z0-9]|\x1b[=>78]")


class _Screen(pyte.HistoryScreen):
    def __init__(self, cols: int, rows: int):
        super().__init__(cols, rows, history=5000, ratio=0.5)
        self.reply: Callable[[str], None] | None = None

    def write_process_input(self, data: str) -> None:   # answers DSR (cursor position) queries
        if self.reply is not None:
            self.reply(data)


def _as_a_shell_starts_it() -> None:
    """A shell starts a program with Ctrl+C's signal at its default and unblocked. A forked test child
    would otherwise inherit whatever the test process (threads, servers run in it) left there, and a
    Python started with SIGINT ignored never turns Ctrl+C into KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


class Terminal:
    def __init__(self, argv: list[str], *, env: dict[str, str], cwd: Path | None = None, rows: int = 50,
                 cols: int = 100):
        self.screen = _Screen(cols, rows)
        self.stream = pyte.ByteStream(self.screen)
        self.raw = bytearray()
        self.child = pexpect.spawn(argv[0], argv[1:], env=env, cwd=str(cwd) if cwd else None,
                                   dimensions=(rows, cols), timeout=5, preexec_fn=_as_a_shell_starts_it)
        self.screen.reply = lambda data: self.child.send(data.encode())
        self.exited = False

    # --- reading ------------------------------------------------------------------------------------
    def pump(self, timeout: float = 0.1) -> None:
        try:
            data = self.child.read_nonblocking(65536, timeout=timeout)
        except pexpect.TIMEOUT:
            return
        except pexpect.EOF:
            self.exited = True
            return
        self.raw += data
        self.stream.feed(data)

    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.screen.display]

    def transcript(self) -> str:
        """Everything that scrolled off the top, then the screen."""
        top = ["".join(line[x].data for x in range(self.screen.columns)).rstrip()
               for line in self.screen.history.top]
        return "\n".join(top + self.lines()).rstrip()

    def plain_output(self) -> str:
        """The raw byte stream without escape sequences (for content checks that must see every byte)."""
        return ANSI.sub(b"", bytes(self.raw)).decode(errors="replace")

    def last_line(self) -> str:
        lines = [x for x in self.lines() if x.strip()]
        return lines[-1] if lines else ""

    def wait(self, cond: Callable[[], bool], timeout: float = 90, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pump(0.05)
            if cond():
                return
            if self.exited:
                self.pump(0)
                if cond():
                    return
                raise AssertionError(f"the program exited while waiting for {what or cond}:\n{self.transcript()}")
        raise AssertionError(f"timed out waiting for {what or cond}:\n{self.transcript()}")

    def wait_text(self, pattern: str, timeout: float = 90) -> None:
        rx = re.compile(pattern)
        self.wait(lambda: bool(rx.search(self.transcript())), timeout, what=repr(pattern))

    def idle(self) -> bool:
        return self.last_line() in IDLE

    def wait_idle(self, timeout: float = 90) -> None:
        self.wait(self.idle, timeout, what="the idle prompt")

    def prompts(self) -> int:
        """Lines holding a submitted input (``>>> text`` / ``... text``, not the empty prompt)."""
        return sum(1 for line in self.transcript().splitlines()
                   if line.startswith((">>> ", "... ", ">>>", "...")) and line not in IDLE
                   and line.strip() not in (">>>", "..."))

    # --- typing -------------------------------------------------------------------------------------
    def send(self, text: str) -> None:
        self.child.send(text.encode())

    def submit(self, line: str, timeout: float = 90) -> None:
        """Type ``line``, press Enter, wait until the program asks for the next line."""
        before = self.prompts()
        self.send(line + "\r")
        self.wait(lambda: self.prompts() > before and self.idle(), timeout, what=f"an answer to {line!r}")

    def key(self, name: str) -> None:
        keys = {"up": "\x1b[A", "down": "\x1b[B", "enter": "\r", "ctrl-c": "\x03", "ctrl-d": "\x04"}
        self.send(keys[name])

    def close(self) -> int | None:
        if not self.exited:
            self.child.close(force=True)
        else:
            self.child.close()
        return self.child.exitstatus

    def wait_exit(self, timeout: float = 30) -> int | None:
        self.wait(lambda: self.exited, timeout, what="the program to exit")
        self.child.close()
        return self.child.exitstatus
