"""One conversation with a model: its settings and messages, one streamed turn at a time.

``chat_turn`` sends the whole conversation to ``/api/chat``; the server keeps it inside the context
window by Ollama's rule (drop whole messages from the front, keep every system message and always the
newest one, docs/contract.md §2.2). When even the newest message cannot fit, the server answers 400 and the
turn fails with that message: the user's turn is taken back out of the history, so the session goes on
and the newest turn is never lost silently.

Ctrl+C during an answer stops it (closing the stream makes the server cancel the generation) and keeps
the part already shown as the assistant's reply. Ollama drops it, which leaves two user turns in a row;
keeping it means the history is what the person saw. Stopped before anything was shown, the turn is
taken out altogether.

Thread-safety: used from the main thread (Ctrl+C arrives there as KeyboardInterrupt).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import IO, Any

from pyollama.cli.client import Client
from pyollama.cli.display import AnswerView, Spinner, print_stats


@dataclass
class RunOptions:
    model: str
    wordwrap: bool = True
    verbose: bool = False
    format: str | dict[str, Any] | None = None
    think: bool | str | None = None            # None: the server's default for the model
    hide_thinking: bool = False
    keep_alive: str | None = None
    insecure: bool = False
    system: str = ""                            # /set system (shown by /show system, saved by /save)
    options: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    base_messages: list[dict[str, Any]] = field(default_factory=list)   # the model's stored MESSAGEs

    def request_extras(self) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if self.options:
            body["options"] = dict(self.options)
        if self.format:
            body["format"] = self.format
        if self.think is not None:
            body["think"] = self.think
        if self.keep_alive is not None:
            body["keep_alive"] = self.keep_alive
        return body


@dataclass
class TurnResult:
    content: str = ""
    thinking: str = ""
    final: dict[str, Any] | None = None
    interrupted: bool = False


def _stream_answer(client: Client, path: str, body: dict[str, Any], opts: RunOptions, *,
                   show_thinking: bool, out: IO[str] | None = None) -> TurnResult:
    out = out or sys.stdout
    view = AnswerView(out, wrap=opts.wordwrap, show_thinking=show_thinking)
    result = TurnResult()
    spinner = Spinner()
    chunks = client.stream(path, body)
    try:
        for chunk in chunks:
            spinner.stop()
            if "message" in chunk:
                msg = chunk.get("message") or {}
                view.thinking(msg.get("thinking") or "")
                view.content(msg.get("content") or "")
            else:
                view.thinking(chunk.get("thinking") or "")
                view.content(chunk.get("response") or "")
            if chunk.get("done"):
                result.final = chunk
    except KeyboardInterrupt:
        result.interrupted = True
    finally:
        spinner.stop()
        chunks.close()            # leaves the connection: the server cancels the generation
        view.end_line()
    result.content, result.thinking = view.content_text, view.thinking_text
    return result


def chat_turn(client: Client, opts: RunOptions, *, show_thinking: bool = True) -> TurnResult:
    """Send ``opts.messages`` (ending with the new user message) and stream the answer. On success or
    interruption the assistant's reply is appended; on an error the user's message is removed again and
    the error propagates."""
    body = {"model": opts.model, "messages": opts.messages, "stream": True, **opts.request_extras()}
    try:
        result = _stream_answer(client, "/api/chat", body, opts, show_thinking=show_thinking)
    except BaseException:
        if opts.messages and opts.messages[-1].get("role") == "user":
            opts.messages.pop()
        raise
    if result.interrupted and not (result.content or result.thinking):
        opts.messages.pop()                  # stopped before a word was said: the turn never happened
        return result
    reply: dict[str, Any] = {"role": "assistant", "content": result.content}
    if result.thinking:
        reply["thinking"] = result.thinking
    opts.messages.append(reply)
    print()                                  # a blank line between the answer and the next prompt
    if opts.verbose and result.final is not None:
        print_stats(result.final)
    return result


def generate_once(client: Client, opts: RunOptions, prompt: str, *, show_thinking: bool,
                  images: list[str] | None = None) -> TurnResult:
    """``run MODEL PROMPT``: one ``/api/generate`` call (with base64 ``images``), streamed to stdout."""
    body: dict[str, Any] = {"model": opts.model, "prompt": prompt, "stream": True, **opts.request_extras()}
    if images:
        body["images"] = images
    if opts.system:
        body["system"] = opts.system
    result = _stream_answer(client, "/api/generate", body, opts, show_thinking=show_thinking)
    if opts.verbose and result.final is not None:
        print_stats(result.final)
    return result


def load_model(client: Client, opts: RunOptions) -> None:
    """Load the model before the first prompt (``messages: []`` only loads, docs/contract.md §2.2), with the
    spinner, so the first answer does not pay for it."""
    body: dict[str, Any] = {"model": opts.model, "messages": [], "stream": False}
    extras = opts.request_extras()
    for key in ("options", "keep_alive", "think"):      # think: a model without it fails here, early
        if key in extras:
            body[key] = extras[key]
    spinner = Spinner()
    try:
        client.post("/api/chat", body)
    finally:
        spinner.stop()
