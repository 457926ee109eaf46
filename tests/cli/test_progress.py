"""Progress for create, push and pull: bars on a terminal, plain lines when piped — both seen as a person
would (a pseudo-terminal read as a screen; a pipe read as text). Pull and push go to a real
docker-registry on loopback."""
from __future__ import annotations

import re
import sys

import pytest

from tests.cli.term import Terminal

pytestmark = [pytest.mark.model, pytest.mark.slow]

BAR = re.compile(r"[━╸╺]{5,}")          # rich's bar glyphs


def run_on_terminal(cli, *args: str, cols: int = 120) -> Terminal:
    t = Terminal([sys.executable, "-m", "pyollama", *args], env=cli.env, cwd=cli.cwd, cols=cols)
    code = t.wait_exit(timeout=180)
    assert code == 0, t.transcript()
    return t


def assert_plain(stderr: str) -> None:
    assert "\x1b" not in stderr and "\r" not in stderr, repr(stderr[:500])
    assert not BAR.search(stderr)


def test_create_progress_piped_and_on_a_terminal(cli, fresh_gguf):
    piped_src = fresh_gguf(21)
    (cli.cwd / "Modelfile").write_text(f"FROM {piped_src}\n")
    r = cli.ok("create", "progress-piped", "--quantize", "q8_0")
    try:
        assert_plain(r.stderr)
        lines = r.stderr.splitlines()
        assert lines[0] == "gathering model components"
        upload = [x for x in lines if x.startswith("copying file ")]
        assert re.fullmatch(r"copying file [0-9a-f]{12} \(\d+(\.\d)? MB\)", upload[0])
        assert re.fullmatch(r"copying file [0-9a-f]{12}: 100% of .* in [\d.]+s \(.*/s\)", upload[-1])
        assert "quantizing F16 model to Q8_0" in r.stderr
        assert lines[-1] == "success"
    finally:
        cli.ok("rm", "progress-piped")

    tty_src = fresh_gguf(22)                      # new bytes: the upload happens again, on the terminal
    (cli.cwd / "Modelfile").write_text(f"FROM {tty_src}\n")
    t = run_on_terminal(cli, "create", "progress-tty", "--quantize", "q8_0")
    try:
        screen = t.transcript()
        assert re.search(r"copying file [0-9a-f]{12}\s+100%\s+" + BAR.pattern, screen), screen
        assert re.search(r"quantizing F16 model to Q8_0\s+100%", screen), screen
        assert screen.splitlines()[-1].strip() == "success"
        assert b"\x1b[" in t.raw                   # drawn in place, with escape sequences
    finally:
        cli.ok("rm", "progress-tty")


def test_push_and_pull_progress(cli, cli_models, registry):
    remote = f"{registry.host}/library/tiny-remote:v1"
    cli.ok("cp", cli_models["tiny"], remote)
    try:
        pushed = cli.ok("push", remote, "--insecure")
        assert_plain(pushed.stderr)
        lines = pushed.stderr.splitlines()
        assert lines[0] == "retrieving manifest" and lines[-1] == "success"
        assert any(re.fullmatch(r"pushing [0-9a-f]{12}: 100% of .*", x) for x in lines), lines
        assert "pushing manifest" in lines

        cli.ok("rm", remote)
        pulled = cli.ok("pull", remote, "--insecure")
        assert_plain(pulled.stderr)
        lines = pulled.stderr.splitlines()
        assert lines[0] == "pulling manifest" and lines[-1] == "success"
        layers = [x for x in lines if re.fullmatch(r"pulling [0-9a-f]{12} \(.*\)", x)]
        assert layers and all(any(x.startswith(layer.split(" (")[0] + ": 100%") for x in lines) for layer in layers)
        assert "verifying sha256 digest" in lines and "writing manifest" in lines
        assert remote in cli.ok("list").stdout

        cli.ok("rm", remote)
        t = run_on_terminal(cli, "pull", remote, "--insecure")
        screen = t.transcript()
        assert "pulling manifest" in screen and screen.splitlines()[-1].strip() == "success"
        assert re.search(r"pulling [0-9a-f]{12}\s+100%\s+" + BAR.pattern + r" [\d.]+ \w?B in [\d.]+s", screen), screen
        assert b"\x1b[" in t.raw
        assert cli.ok("run", remote, "hi").stdout.strip()          # the pulled model runs

        # `run` pulls a model it does not have, with progress, then answers.
        cli.ok("rm", remote)
        r = cli.ok("run", remote, "hi", "--insecure")
        assert r.stdout.strip() and "pulling manifest" in r.stderr and r.stderr.splitlines()[-1] == "success"

        # A model the registry does not have: one clear line, non-zero.
        r = cli("pull", f"{registry.host}/library/never-pushed:latest", "--insecure")
        assert r.returncode == 1 and r.stderr.splitlines()[-1].startswith("Error: ")
    finally:
        cli("rm", remote)
