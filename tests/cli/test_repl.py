"""The interactive session (``pyollama run MODEL``) under a real pseudo-terminal, read as a screen."""
from __future__ import annotations

import re
import sys

import pytest

from tests.cli.term import Terminal

pytestmark = [pytest.mark.model, pytest.mark.slow]


@pytest.fixture
def repl(cli, tmp_path):
    """Start ``pyollama run MODEL`` in a terminal; all are closed at the end of the test."""
    started: list[Terminal] = []

    def start(model: str, *, cols: int = 100, env: dict[str, str] | None = None) -> Terminal:
        t = Terminal([sys.executable, "-m", "pyollama", "run", model], env={**cli.env, **(env or {})},
                     cwd=tmp_path, cols=cols)
        started.append(t)
        t.wait_idle()
        return t

    yield start
    for t in started:
        t.close()


def after(text: str, marker: str) -> str:
    """What the screen shows after the last line that starts with ``marker``."""
    lines = text.splitlines()
    found = [i for i, line in enumerate(lines) if line.startswith(marker)]
    return "\n".join(lines[found[-1] + 1:]) if found else ""


def answer_after(t: Terminal, marker: str) -> str:
    body = after(t.transcript(), marker)
    return body.split("\n>>> ", 1)[0].strip()


def modelfile_messages(cli, name: str) -> list[tuple[str, str]]:
    """(role, text) of the MESSAGE lines of ``show --modelfile``."""
    from pyollama.store import modelfile

    parsed = modelfile.parse(cli.ok("show", name, "--modelfile").stdout)
    return [(c.key, c.value) for c in parsed.commands if c.instruction == "MESSAGE"]


def test_system_multiline_save_and_load(repl, cli, cli_models):
    t = repl(cli_models["chat"])
    assert t.last_line() == ">>> Send a message (/? for help)"          # the placeholder
    t.submit("/set system Always answer like a pirate.")
    assert "Set system message." in t.transcript()
    t.submit('"""')                                                       # a multi-line message
    assert t.last_line() == "... Press Enter to send"
    t.submit("Tell me about")
    t.submit('the sea."""')
    assert answer_after(t, '... the sea."""')
    t.submit("/show system")
    assert "Always answer like a pirate." in after(t.transcript(), ">>> /show system")
    t.submit("/save pirate-session")
    assert "Created new model 'pirate-session'" in t.transcript()
    try:
        t.submit("/load pirate-session")
        shown = after(t.transcript(), ">>> /load pirate-session")
        # The saved turns are replayed: the user's two lines, then the answer.
        assert shown.startswith("Loading model 'pirate-session'\n>>> Tell me about\nthe sea.")
        t.submit("Who are you?")
        assert answer_after(t, ">>> Who are you?")
        t.send("/bye\r")
        assert t.wait_exit() == 0

        mf = cli.ok("show", "pirate-session", "--modelfile").stdout
        assert re.search(r'^SYSTEM (""")?Always answer like a pirate\.', mf, re.MULTILINE)
        msgs = modelfile_messages(cli, "pirate-session")
        assert msgs[0] == ("user", "Tell me about\nthe sea.") and msgs[1][0] == "assistant" and msgs[1][1]
    finally:
        cli.ok("rm", "pirate-session")


def test_ctrl_c_stops_the_answer_and_keeps_the_session(repl, cli, cli_models):
    t = repl(cli_models["tiny"])
    # greedy: the tiny model's random-weight text is then the same every run (sampled, it can contain a
    # carriage return, which no Modelfile can hold, or an early end-of-text)
    t.submit("/set parameter temperature 0")
    t.submit("/set parameter num_predict 100000")
    assert "Set parameter 'num_predict' to '100000'" in t.transcript()
    t.send("Tell me everything.\r")
    t.wait(lambda: len(answer_after(t, ">>> Tell me everything.")) > 80, what="the answer to start")
    t.key("ctrl-c")
    t.wait_idle(timeout=30)
    partial = answer_after(t, ">>> Tell me everything.")
    # With one slot per model, this answer can only come if the first generation was really stopped.
    t.submit("/set parameter num_predict 4")
    t.submit("And now?", timeout=60)
    assert answer_after(t, ">>> And now?")
    t.submit("/save tiny-interrupted")
    try:
        msgs = modelfile_messages(cli, "tiny-interrupted")
        assert [r for r, _ in msgs] == ["user", "assistant", "user", "assistant"]
        # The part shown before Ctrl+C is kept as the reply (random text from the tiny model: compare
        # only that it is the partial answer, not the exact characters the emulator drew).
        assert len(msgs[1][1]) >= 40 and partial
    finally:
        cli.ok("rm", "tiny-interrupted")
    t.key("ctrl-c")                                               # on an empty line: says how to leave
    t.wait_text(r"Use Ctrl \+ d or /bye to exit\.")
    t.key("ctrl-d")
    assert t.wait_exit() == 0


def test_history_is_recalled_in_a_new_session(repl, cli, cli_models):
    t = repl(cli_models["tiny"])
    t.submit("remember this line 42")
    t.submit("/set nohistory")
    t.submit("not saved 7")
    t.key("ctrl-d")
    assert t.wait_exit() == 0
    saved = (cli.env_home() / ".pyollama" / "history").read_text()
    assert "remember this line 42" in saved and "not saved 7" not in saved

    t2 = repl(cli_models["tiny"])
    t2.key("up")
    t2.wait(lambda: t2.last_line() == ">>> /set nohistory", what="the last saved line")
    t2.key("up")
    t2.wait(lambda: t2.last_line() == ">>> remember this line 42", what="the line before it")


def test_nohistory_env_writes_no_history(repl, cli, cli_models):
    t = repl(cli_models["tiny"], env={"OLLAMA_NOHISTORY": "1"})
    t.submit("keep this out of history")
    t.send("/bye\r")
    assert t.wait_exit() == 0
    path = cli.env_home() / ".pyollama" / "history"
    assert not path.exists() or "keep this out" not in path.read_text()


def test_word_wrap_show_help_and_settings(repl, cli, cli_models):
    t = repl(cli_models["chat"], cols=40)
    t.submit("Why is the sky blue?")
    shown = answer_after(t, ">>> Why is the sky blue?")
    lines = shown.splitlines()
    assert len(lines) > 1 and all(len(line) <= 39 for line in lines)
    t.submit("/save wrapped")
    try:
        full = modelfile_messages(cli, "wrapped")[1][1]
        assert shown.split() == full.split()                 # wrapped only between words, nothing lost
    finally:
        cli.ok("rm", "wrapped")
    t.submit("/set nowordwrap")
    assert "Set 'nowordwrap' mode." in t.transcript()

    checks = {
        "/show info": ("architecture", "context length", "Capabilities"),
        "/show parameters": ("Model defined parameters:", "num_predict"),
        "/show template": ("im_start",),
        "/show modelfile": ("# Modelfile generated by",),
        "/?": ("Available Commands:", "/set", "/bye"),
        "/? set": ("/set parameter ...",),
        "/? shortcuts": ("Ctrl + d",),
        "/list": ("NAME", "smollm2:135m"),
        "/set format json": ("Set format to 'json' mode.",),
        "/set noformat": ("Disabled format.",),
        "/set think": ("does not support thinking", "Set 'think' mode."),
        "/set nothink": ("Set 'nothink' mode.",),
        "/set parameter temperature hot": ("Couldn't set parameter",),
        "/frobnicate": ("Unknown command '/frobnicate'. Type /? for help",),
        "/load no-such-model": ("Couldn't find model 'no-such-model'",),
    }
    for line, needles in checks.items():
        t.submit(line)
        out = after(t.transcript(), f">>> {line}").replace("\n", "")    # the 40-column terminal wraps
        for needle in needles:
            assert needle in out, (line, needle, out)
    t.submit("/set verbose")
    t.submit("Hi")
    assert re.search(r"eval rate:\s+[\d.]+ tokens/s", after(t.transcript(), ">>> Hi"))
    t.send("/bye\r")
    assert t.wait_exit() == 0


def test_context_window_keeps_the_newest_turn(repl, cli, cli_models):
    """A small num_ctx: older turns are dropped by the server (Ollama's rule) and the conversation goes on;
    a message that cannot fit on its own is reported in one line, not cut, and the session goes on."""
    t = repl(cli_models["tiny"])
    t.submit("/set parameter num_ctx 256")
    t.submit("/set verbose")
    # ~70 tokens a turn: five turns do not fit in 256, so the server must drop the oldest to answer.
    for i in range(5):
        t.submit(f"Turn {i}: " + "words and more words " * 12)
        shown = after(t.transcript(), f">>> Turn {i}:")
        assert "Error" not in shown and "eval rate:" in shown, t.transcript()
    count = int(re.findall(r"prompt eval count:\s+(\d+)", t.transcript())[-1])
    assert 0 < count < 256
    t.submit("too long " * 300)
    assert re.search(r"Error: .*exceeds the context length", after(t.transcript(), ">>> too long"))
    t.submit("Still there?")
    assert answer_after(t, ">>> Still there?") and "Error" not in after(t.transcript(), ">>> Still there?")
    t.submit("/save tiny-ctx")
    try:
        users = [m for r, m in modelfile_messages(cli, "tiny-ctx") if r == "user"]
        assert users[-1] == "Still there?" and not any(u.startswith("too long") for u in users)
        assert len(users) == 6                                # the session kept every turn it answered
    finally:
        cli.ok("rm", "tiny-ctx")


def test_ctrl_c_stops_a_one_shot_run(cli, cli_models, cli_server, tmp_path):
    # greedy, never stops by itself (sampled, a random-weight model can draw its end token early)
    (tmp_path / "Modelfile").write_text("FROM tiny\nPARAMETER num_predict -1\nPARAMETER temperature 0\n")
    cli.ok("create", "tiny-endless", "-f", str(tmp_path / "Modelfile"))
    try:
        t = Terminal([sys.executable, "-m", "pyollama", "run", "tiny-endless", "go on"], env=cli.env, cwd=tmp_path)
        try:
            t.wait(lambda: len(t.transcript()) > 200, what="the answer to stream")
            t.key("ctrl-c")
            assert t.wait_exit() == 130
        finally:
            t.close()
        # One slot per model: this short request is answered only if the endless one was cancelled.
        r = cli_server.post("/api/generate", json={"model": "tiny-endless", "prompt": "x", "stream": False,
                                                   "options": {"num_predict": 3}}, timeout=60)
        assert r.status_code == 200 and r.json()["done"]
    finally:
        cli.ok("rm", "tiny-endless")
