"""Runner faults through a real server: a runner that crashes (mid-stream, mid-load), freezes, hangs in a
step or a load, or sends a torn frame fails the requests on it with an error that says so; the server stays
up, /api/ps drops the runner, no child process is left behind, and the next request loads the model
again and answers exactly as before.

Faults come from the runner child's hook (``PYOLLAMA_RUNNER_FAULT``: one fault per file written) or from
signals sent here to the runner process.
"""
from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import Server
from tests.api.helpers import T

pytestmark = [pytest.mark.model, pytest.mark.slow]

GREEDY = {"temperature": 0, "seed": 42, "num_predict": 8, "num_ctx": 512}
ENDLESS = {"temperature": 0, "num_predict": 100000, "num_ctx": 512}
# The server's PYOLLAMA_RUNNER_TIMEOUT, _STEP_TIMEOUT and _LOAD_TIMEOUT (s). A frozen child is frozen
# mid-step too, so the silence bound must be the shorter one for the test to see which fired.
HANG, STEP, LOAD = 4, 6, 8


@pytest.fixture(scope="module")
def faulty(model_store, tmp_path_factory) -> Iterator[tuple[Server, Path]]:
    d = tmp_path_factory.mktemp("faults")
    fault = d / "fault"
    s = Server({"PYOLLAMA_MODELS": str(model_store), "PYOLLAMA_RUNNER_FAULT": str(fault),
                "PYOLLAMA_RUNNER_TIMEOUT": str(HANG), "PYOLLAMA_STEP_TIMEOUT": str(STEP),
                "PYOLLAMA_LOAD_TIMEOUT": str(LOAD)}, d / "server.log")
    yield s, fault
    s.stop()


def _generate(s: Server) -> httpx.Response:
    return s.post("/api/generate", json={"model": T, "prompt": "hi", "stream": False, "options": GREEDY})


@pytest.fixture(scope="module")
def reference(faulty) -> str:
    r = _generate(faulty[0])
    assert r.status_code == 200, r.text
    return r.json()["response"]


def _recovered(s: Server, reference: str, old_pids: list[int]) -> None:
    """The server is up, nothing is left of the broken runner, and a fresh one answers as before."""
    for _ in range(100):                            # the runner's exit is noticed by the reader, then unloaded
        if not s.ps() and not (set(s.runner_pids()) & set(old_pids)):
            break
        time.sleep(0.1)
    assert s.ps() == [], "the broken runner is still listed"
    for pid in old_pids:
        assert pid not in s.runner_pids(), f"runner {pid} was left behind"
    r = _generate(s)
    assert r.status_code == 200 and r.json()["response"] == reference, r.text
    assert len(s.ps()) == 1


def _arm(s: Server, fault: Path, what: str) -> None:
    """Unload the model, so that the next request loads a runner that claims the fault ``what``."""
    s.post("/api/generate", json={"model": T, "keep_alive": 0})
    fault.write_text(what)


def _stream_until_error(s: Server, after_first=None) -> tuple[dict, float]:
    """Stream an endless generate; call ``after_first()`` once the first chunk is in; return the error line
    and the seconds from then to it."""
    body = {"model": T, "prompt": "Once upon a time", "options": ENDLESS}
    with httpx.Client(base_url=s.url, timeout=60) as c, c.stream("POST", "/api/generate", json=body) as r:
        assert r.status_code == 200
        it = r.iter_lines()
        json.loads(next(it))
        if after_first:
            after_first()
        t0 = time.monotonic()
        rest = [json.loads(x) for x in it if x]
    assert rest and "error" in rest[-1], rest[-3:]
    return rest[-1], time.monotonic() - t0


@pytest.mark.parametrize("sig", [signal.SIGSEGV, signal.SIGKILL])
def test_signal_mid_stream(faulty, reference, sig):
    s, _ = faulty
    _generate(s)
    pids = s.runner_pids()
    err, _ = _stream_until_error(s, lambda: os.kill(pids[0], sig))
    assert f"signal {int(sig)}" in err["error"]
    _recovered(s, reference, pids)


@pytest.mark.parametrize("action,sig", [("segv", signal.SIGSEGV), ("abort", signal.SIGABRT)])
def test_crash_mid_load(faulty, reference, action, sig):
    s, fault = faulty
    _arm(s, fault, f"load {action}")
    r = _generate(s)
    assert r.status_code == 500 and f"signal {int(sig)}" in r.json()["error"], r.text
    _recovered(s, reference, [])


def test_frozen_runner_is_replaced(faulty, reference):
    s, _ = faulty
    _generate(s)
    pids = s.runner_pids()
    err, waited = _stream_until_error(s, lambda: os.kill(pids[0], signal.SIGSTOP))
    assert "stopped answering" in err["error"] and f"PYOLLAMA_RUNNER_TIMEOUT={HANG}" in err["error"]
    assert waited < HANG + 10, waited
    _recovered(s, reference, pids)


def test_stuck_step_is_replaced(faulty, reference):
    s, fault = faulty
    _arm(s, fault, "step 3 hang")
    err, waited = _stream_until_error(s)
    assert "one batch step has run for" in err["error"], err
    assert waited < STEP + 10, waited
    _recovered(s, reference, [])


def test_hung_load_times_out_and_the_child_is_killed(faulty, reference):
    s, fault = faulty
    _arm(s, fault, "load hang")
    t0 = time.monotonic()
    r = _generate(s)
    assert r.status_code == 500 and "timed out waiting for tiny" in r.json()["error"], r.text
    assert time.monotonic() - t0 < LOAD + 10
    _recovered(s, reference, [])
    assert len(s.runner_pids()) == 1, "the hung child outlived its load timeout"


def test_torn_frame(faulty, reference):
    s, fault = faulty
    _arm(s, fault, "step 2 garbage")
    err, _ = _stream_until_error(s)
    assert "broken message" in err["error"], err
    _recovered(s, reference, [])
    assert "Traceback" not in s.log_text()
