"""The REPL's slash commands (docs/contract.md §15): ``/set``, ``/show``, ``/load``, ``/save``, ``/clear``,
``/list``, ``/bye`` (``/exit``), ``/?`` (``/help``). Messages and wording follow Ollama's CLI, so people
(and scripts) that know one know the other.

:func:`handle` returns what the REPL should do next; it never raises for a user mistake, it prints
a line saying what was wrong, as Ollama's REPL does. Server errors (a failed /save, say) print
``Error: ...`` and the session goes on.

Thread-safety: called from the REPL's thread only.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyollama.errors import ClientError

if TYPE_CHECKING:
    from pyollama.cli.repl import Repl

HELP = """Available Commands:
  /set            Set session variables
  /show           Show model information
  /load <model>   Load a session or model
  /save <model>   Save your current session
  /clear          Clear session context
  /list           List the models on the server
  /bye            Exit
  /?, /help       Help for a command
  /? shortcuts    Help for keyboard shortcuts

Use \"\"\" to begin a multi-line message.
"""

HELP_SET = """Available Commands:
  /set parameter ...     Set a parameter
  /set system <string>   Set system message
  /set history           Enable history
  /set nohistory         Disable history
  /set wordwrap          Enable wordwrap
  /set nowordwrap        Disable wordwrap
  /set format json       Enable JSON mode
  /set noformat          Disable formatting
  /set verbose           Show LLM stats
  /set quiet             Disable LLM stats
  /set think [level]     Enable thinking (level: low, medium, high)
  /set nothink           Disable thinking
"""

HELP_SHOW = """Available Commands:
  /show info         Show details for this model
  /show license      Show model license
  /show modelfile    Show Modelfile for this model
  /show parameters   Show parameters for this model
  /show system       Show system message
  /show template     Show prompt template
"""

HELP_SHORTCUTS = """Available keyboard shortcuts:
  Ctrl + a            Move to the beginning of the line (Home)
  Ctrl + e            Move to the end of the line (End)
   Alt + b            Move back (left) one word
   Alt + f            Move forward (right) one word
  Ctrl + k            Delete the sentence after the cursor
  Ctrl + u            Delete the sentence before the cursor
  Ctrl + w            Delete the word before the cursor

  Ctrl + l            Clear the screen
  Ctrl + g            Open $VISUAL/$EDITOR to compose a prompt
  Ctrl + c            Stop the model from responding
  Ctrl + d            Exit (/bye)
"""

HELP_PARAMETERS = """Available Parameters:
  /set parameter seed <int>             Random number seed
  /set parameter num_predict <int>      Max number of tokens to predict
  /set parameter top_k <int>            Pick from top k num of tokens
  /set parameter top_p <float>          Pick token based on sum of probabilities
  /set parameter min_p <float>          Pick token based on top token probability * min_p
  /set parameter num_ctx <int>          Set the context size
  /set parameter temperature <float>    Set creativity level
  /set parameter repeat_penalty <float> How strongly to penalize repetitions
  /set parameter repeat_last_n <int>    Set how far back to look for repetitions
  /set parameter num_gpu <int>          The number of layers to send to the GPU
  /set parameter stop <string> <string> ...   Set the stop parameters
"""

THINK_LEVELS = ("low", "medium", "high", "max")


@dataclass
class Action:
    """What the REPL does after a line: ``exit``, ``continue`` (prompt again), ``system`` (start a
    multi-line system message with ``text`` so far), or ``message`` (send ``text`` as a user turn)."""

    kind: str
    text: str = ""


CONTINUE = Action("continue")


def out(text: str = "") -> None:
    print(text, flush=True)


def handle(repl: Repl, line: str) -> Action:
    """Interpret one complete input line that starts with ``/``."""
    words = line.split()
    cmd = words[0] if words else ""
    args = words[1:]
    try:
        if cmd in ("/bye", "/exit"):
            return Action("exit")
        if cmd in ("/?", "/help"):
            return _help(args)
        if cmd == "/set":
            return _set(repl, line, args)
        if cmd == "/show":
            return _show(repl, args)
        if cmd == "/load":
            return _load(repl, args)
        if cmd == "/save":
            return _save(repl, args)
        if cmd == "/clear":
            repl.opts.messages = [{"role": "system", "content": repl.opts.system}] if repl.opts.system else []
            out("Cleared session context")
            return CONTINUE
        if cmd == "/list":
            from pyollama.cli.tables import list_rows, print_table

            print_table(["NAME", "ID", "SIZE", "MODIFIED"], list_rows(repl.client.get("/api/tags")["models"],
                                                                    args[0] if args else ""))
            return CONTINUE
    except ClientError as e:
        print(f"Error: {e}", file=sys.stderr, flush=True)
        return CONTINUE
    out(f"Unknown command '{cmd}'. Type /? for help")
    return CONTINUE


def _help(args: list[str]) -> Action:
    topic = args[0].lstrip("/") if args else ""
    text = {"set": HELP_SET, "show": HELP_SHOW, "shortcut": HELP_SHORTCUTS, "shortcuts": HELP_SHORTCUTS,
            "parameter": HELP_PARAMETERS, "parameters": HELP_PARAMETERS}.get(topic, HELP)
    out(text)
    return CONTINUE


# --- /set ----------------------------------------------------------------------------------------
def _set(repl: Repl, line: str, args: list[str]) -> Action:
    opts = repl.opts
    if not args:
        out(HELP_SET)
        return CONTINUE
    what = args[0]
    if what == "history":
        repl.history_enabled(True)
        out("Set 'history' mode.")
    elif what == "nohistory":
        repl.history_enabled(False)
        out("Set 'nohistory' mode.")
    elif what in ("wordwrap", "nowordwrap"):
        opts.wordwrap = what == "wordwrap"
        out(f"Set '{what}' mode.")
    elif what in ("verbose", "quiet"):
        opts.verbose = what == "verbose"
        out(f"Set '{what}' mode.")
    elif what == "format":
        if len(args) < 2 or args[1] != "json":
            out("Invalid or missing format. For 'json' mode use '/set format json'")
        else:
            opts.format = "json"
            out("Set format to 'json' mode.")
    elif what == "noformat":
        opts.format = None
        out("Disabled format.")
    elif what == "think":
        level = args[1] if len(args) > 1 else ""
        if level and level not in THINK_LEVELS:
            out(f"Invalid think level '{level}': use one of {', '.join(THINK_LEVELS)}")
            return CONTINUE
        opts.think = level or True
        _warn_thinking(repl)
        out(f"Set 'think' mode to '{level}'." if level else "Set 'think' mode.")
    elif what == "nothink":
        opts.think = False
        out("Set 'nothink' mode.")
    elif what == "parameter":
        _set_parameter(repl, args[1:])
    elif what == "system":
        # Everything after "/set system", spacing kept; a leading \"\"\" starts a multi-line message.
        text = line.split("system", 1)[1].strip() if len(args) > 1 else ""
        if not text:
            out(HELP_SET)
            return CONTINUE
        if text.startswith('"""'):
            body = text[3:]
            if body.endswith('"""') and len(body) >= 3:
                set_system(repl, body[:-3])
                return CONTINUE
            return Action("system", body)
        set_system(repl, text)
    else:
        out(f"Unknown command '/set {what}'. Type /? for help")
    return CONTINUE


def set_system(repl: Repl, text: str) -> None:
    """As Ollama: the system message goes into the conversation, replacing a system message that is the
    last one so far."""
    opts = repl.opts
    opts.system = text
    msg = {"role": "system", "content": text}
    if opts.messages and opts.messages[-1].get("role") == "system":
        opts.messages[-1] = msg
    else:
        opts.messages.append(msg)
    out("Set system message.")


def _warn_thinking(repl: Repl) -> None:
    caps = repl.info.get("capabilities") or []
    if "thinking" not in caps:
        out(f"warning: model '{repl.opts.model}' does not support thinking output")


def _set_parameter(repl: Repl, args: list[str]) -> None:
    if len(args) < 2:
        out(HELP_PARAMETERS)
        return
    name, values = args[0], args[1:]
    from pyollama.store import options as O

    if name in O.REMOVED_OPTIONS or name not in O.OPTIONS:
        out(f"Couldn't set parameter: unknown parameter '{name}'")
        return
    try:
        if name == "stop":
            value: Any = [O.parse_text(name, v) for v in values]
        else:
            value = O.parse_text(name, " ".join(values))
    except O.OptionError as e:
        out(f"Couldn't set parameter: {e}")
        return
    repl.opts.options[name] = value
    out(f"Set parameter '{name}' to '{', '.join(values)}'")


# --- /show ---------------------------------------------------------------------------------------
def _show(repl: Repl, args: list[str]) -> Action:
    if not args:
        out(HELP_SHOW)
        return CONTINUE
    what = args[0]
    opts = repl.opts
    body: dict[str, Any] = {"model": opts.model}
    if opts.system:
        body["system"] = opts.system
    if opts.options:
        body["options"] = opts.options
    resp = repl.client.post("/api/show", body)
    if what == "info":
        from pyollama.cli.tables import print_show

        print_show(resp)
    elif what == "license":
        out(resp.get("license") or "No license was specified for this model.")
    elif what == "modelfile":
        out(resp.get("modelfile") or "")
    elif what == "parameters":
        out("Model defined parameters:")
        params = resp.get("parameters") or ""
        if params:
            for line in params.splitlines():
                out(f"  {line}")
        else:
            out("  No additional parameters were specified for this model.")
        out()
        if opts.options:
            out("User defined parameters:")
            for k, v in opts.options.items():
                out(f"  {k:<30} {v}")
            out()
    elif what == "system":
        text = opts.system or resp.get("system") or ""
        out(text + "\n" if text else "No system message was specified for this model.")
    elif what == "template":
        out(resp.get("template") or "No prompt template was specified for this model.")
    else:
        out(f"Unknown command '/show {what}'. Type /? for help")
    return CONTINUE


# --- /load and /save -----------------------------------------------------------------------------
def _load(repl: Repl, args: list[str]) -> Action:
    if len(args) != 1:
        out("Usage:\n  /load <modelname>")
        return CONTINUE
    name = args[0]
    out(f"Loading model '{name}'")
    try:
        info = repl.client.post("/api/show", {"model": name})
    except ClientError as e:
        if e.status == 404:
            out(f"Couldn't find model '{name}'")
            return CONTINUE
        raise
    repl.switch_model(name, info)
    return CONTINUE


def save_request(repl: Repl, name: str) -> dict[str, Any]:
    """``/save``: a model from the current one with the session's system message, parameters and
    conversation. The model's stored messages come first: the server prepends them to every chat (so
    the session does not resend them), and a saved model's messages replace the base's."""
    opts = repl.opts
    body: dict[str, Any] = {"model": name, "from": opts.model, "stream": False}
    if opts.system:
        body["system"] = opts.system
    if opts.options:
        body["parameters"] = dict(opts.options)
    # The session's system messages are the SYSTEM layer above; the turns become MESSAGE lines.
    turns = [m for m in opts.messages if m.get("role") in ("user", "assistant")]
    msgs = [{"role": m["role"], "content": m.get("content", "")} for m in opts.base_messages + turns]
    if msgs:
        body["messages"] = msgs
    return body


def _save(repl: Repl, args: list[str]) -> Action:
    if len(args) != 1:
        out("Usage:\n  /save <modelname>")
        return CONTINUE
    name = args[0]
    try:
        repl.client.post("/api/create", save_request(repl, name))
    except ClientError as e:
        if "invalid model name" in str(e):
            out(f"error: The model name '{name}' is invalid")
            return CONTINUE
        raise
    out(f"Created new model '{name}'")
    return CONTINUE
