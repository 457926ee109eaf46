"""``pyollama run MODEL`` without a prompt: the interactive session (docs/contract.md §15).

Line editing is prompt_toolkit's, chosen over the standard library's ``readline`` because it gives what
Ollama's own readline gives on every platform (``readline`` is missing on Windows and is libedit on
macOS): bracketed paste (pasted lines arrive as one message instead of one message per line), a
placeholder (``Send a message (/? for help)``), the Emacs keys Ollama lists (Ctrl+A/E/K/U/W/L, Alt+B/F),
Ctrl+G to compose in ``$VISUAL``/``$EDITOR``, and a history file.

History is kept in ``~/.pyollama/history`` (Ollama: ``~/.ollama/history``); ``OLLAMA_NOHISTORY`` or
``/set nohistory`` stop writing it (earlier lines can still be recalled).

Keys: Ctrl+C clears the line being typed, on an empty line it says how to leave, and during an answer
it stops the answer and keeps the session (the terminal is in normal mode then, so it arrives as
SIGINT → KeyboardInterrupt); Ctrl+D on an empty line leaves.

Thread-safety: runs on the main thread.
"""
from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any

from pyollama.cli import slash
from pyollama.cli.background import state_dir
from pyollama.cli.client import Client, config
from pyollama.cli.display import AnswerView
from pyollama.cli.images import ImageError, extract
from pyollama.cli.session import RunOptions, chat_turn, load_model
from pyollama.errors import ClientError

PLACEHOLDER = "Send a message (/? for help)"
ALT_PLACEHOLDER = "Press Enter to send"


def history_path() -> Path:
    return state_dir() / "history"


def _history(enabled: bool) -> Any:
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    class SwitchableFileHistory(FileHistory):
        """A FileHistory whose writing can be switched off (``/set nohistory``)."""

        enabled = True

        def store_string(self, string: str) -> None:
            if self.enabled:
                try:
                    super().store_string(string)
                except OSError:
                    self.enabled = False      # an unwritable history must not end the session

    path = history_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        h = SwitchableFileHistory(str(path))
    except OSError:
        return InMemoryHistory()
    h.enabled = enabled
    return h


def _key_bindings() -> Any:
    from prompt_toolkit.key_binding import KeyBindings

    kb = KeyBindings()

    @kb.add("c-c")
    def _interrupt(event: Any) -> None:
        buf = event.app.current_buffer
        if buf.text:
            buf.reset()
        else:
            event.app.exit(exception=KeyboardInterrupt, style="class:aborting")

    @kb.add("c-g")
    def _edit(event: Any) -> None:
        event.app.current_buffer.open_in_editor(validate_and_handle=False)

    return kb


class Repl:
    def __init__(self, client: Client, opts: RunOptions, info: dict[str, Any], *, show_thinking: bool = True):
        self.client = client
        self.opts = opts
        self.info = info
        self.show_thinking = show_thinking
        self.history = _history(not config().nohistory)
        self._session: Any = None

    # --- used by slash commands ---------------------------------------------------------------------
    def history_enabled(self, on: bool) -> None:
        if hasattr(self.history, "enabled"):
            self.history.enabled = on

    def switch_model(self, name: str, info: dict[str, Any]) -> None:
        """``/load``: another model, an empty conversation and no session system message (the loaded
        model's own SYSTEM applies)."""
        self.opts.model = name
        self.opts.messages = []
        self.opts.system = ""
        self.info = info
        load_model(self.client, self.opts)
        self.show_stored_messages()

    def show_stored_messages(self) -> None:
        """A saved session's turns, as Ollama prints them when the model is loaded."""
        self.opts.base_messages = [dict(m) for m in self.info.get("messages") or []]
        for m in self.opts.base_messages:
            if m.get("role") == "user":
                print(f">>> {m.get('content', '')}")
            elif m.get("role") == "assistant":
                view = AnswerView(sys.stdout, wrap=self.opts.wordwrap)
                view.content(m.get("content", ""))
                view.end_line()
                print()
        sys.stdout.flush()

    # --- the loop ----------------------------------------------------------------------------------
    def _read(self, continuing: bool) -> str:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.formatted_text import FormattedText

        if self._session is None:
            self._session = PromptSession(history=self.history, key_bindings=_key_bindings(),
                                          enable_open_in_editor=False)
        hint = ALT_PLACEHOLDER if continuing else PLACEHOLDER
        return self._session.prompt("... " if continuing else ">>> ",
                                    placeholder=FormattedText([("fg:ansibrightblack", hint)]))

    def run(self) -> int:
        self.show_stored_messages()
        buf: list[str] = []
        mode = ""              # "" | "prompt" | "system": inside a \"\"\" block
        while True:
            try:
                line = self._read(bool(mode))
            except KeyboardInterrupt:
                if not mode:
                    print("Use Ctrl + d or /bye to exit.", flush=True)
                buf, mode = [], ""
                continue
            except EOFError:
                print()
                return 0

            if mode:
                done = line.endswith('"""')
                buf.append(line[:-3] if done else line)
                if not done:
                    continue
                # The lines between the quotes; a """ alone on the first or last line adds no blank line.
                if buf and buf[0] == "":
                    buf = buf[1:]
                if buf and buf[-1] == "":
                    buf = buf[:-1]
                text = "\n".join(buf)
                buf, kind, mode = [], mode, ""
                if kind == "system":
                    slash.set_system(self, text)
                    continue
            elif line.startswith('"""'):
                rest = line[3:]
                if rest.endswith('"""') and len(rest) >= 3:
                    text = rest[:-3]
                else:
                    buf, mode = [rest], "prompt"
                    continue
            elif line.startswith("/"):
                action = slash.handle(self, line)
                if action.kind == "exit":
                    return 0
                if action.kind == "system":
                    buf, mode = [action.text], "system"
                continue
            else:
                text = line
            if text.strip():
                self._ask(text)

    def _ask(self, text: str) -> None:
        msg: dict[str, Any] = {"role": "user", "content": text}
        if "vision" in (self.info.get("capabilities") or []):
            try:
                msg["content"], images = extract(text)
            except ImageError as e:
                print(f"Error: Couldn't process image: {e}", file=sys.stderr, flush=True)
                return
            if images:
                msg["images"] = [base64.b64encode(i).decode() for i in images]
        self.opts.messages.append(msg)
        try:
            chat_turn(self.client, self.opts, show_thinking=self.show_thinking)
        except ClientError as e:
            print(f"Error: {e}", file=sys.stderr, flush=True)
        except KeyboardInterrupt:        # between chunks' handling and the stats: the answer is over
            print(flush=True)
