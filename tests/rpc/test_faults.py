"""Workers that go away or misbehave: the server stays up, says which worker and why, and carries on
with the devices that remain."""
from __future__ import annotations

import signal
import time

import pytest

from pyollama import rpc
from tests.rpc.conftest import MODEL, Peer, generate, hello, stream_until_killed

pytestmark = [pytest.mark.model, pytest.mark.slow]


def test_worker_killed_mid_stream(serve, workers):
    a, b = workers(2)
    s = serve(PYOLLAMA_RPC_SERVERS=f"{a.endpoint},{b.endpoint}")
    n, last = stream_until_killed(s, a)
    assert "error" in last, last
    assert f"RPC worker {a.endpoint}" in last["error"], last["error"]
    assert last["_after_kill_s"] < 20, last          # the runner dies at once, not by a watchdog
    assert s.get("/").status_code == 200
    # the next request loads again, on what remains: the other worker (and the CPU)
    out = generate(s, MODEL, "Hello", n=8)
    assert out["eval_count"] == 8
    (m,) = s.ps()
    names = {d["name"] for d in m["devices"]}
    assert f"RPC[{a.endpoint}]" not in names and f"RPC[{b.endpoint}]" in names, names
    assert f"RPC worker {a.endpoint}" in s.log_text()


def test_worker_silent_mid_stream(serve, workers):
    """A worker that stops answering (a frozen host; the kernel still holds the connection open) fails
    the step after PYOLLAMA_STEP_TIMEOUT, naming it; the next load leaves it out."""
    a, b = workers(2)
    s = serve(PYOLLAMA_RPC_SERVERS=f"{a.endpoint},{b.endpoint}", PYOLLAMA_STEP_TIMEOUT="4s")
    try:
        _, last = stream_until_killed(s, a, how="stop")
        assert f"RPC worker {a.endpoint}: accepted the connection but did not answer" in last.get("error", ""), last
        assert "PYOLLAMA_STEP_TIMEOUT" in last["error"] and last["_after_kill_s"] < 20, last
        out = generate(s, MODEL, "Hello", n=8, num_gpu=-1)
        assert out["eval_count"] == 8
        (m,) = s.ps()
        assert {d["name"] for d in m["devices"]} == {"CPU", f"RPC[{b.endpoint}]"}
    finally:
        a.proc.send_signal(signal.SIGCONT)


@pytest.mark.parametrize("answer,why", [
    (lambda conn: None, "accepted the connection but did not answer"),
    (hello((rpc.PROTOCOL_MAJOR - 1, 0, 0)), f"speaks RPC protocol {rpc.PROTOCOL_MAJOR - 1}.0.0; this build speaks"),
], ids=["silent", "other-version"])
def test_bad_worker_is_skipped(serve, workers, answer, why):
    (good,) = workers(1)
    bad = Peer(answer)
    try:
        t0 = time.monotonic()
        s = serve(PYOLLAMA_RPC_SERVERS=f"{bad.endpoint},{good.endpoint}")
        out = generate(s, MODEL, "Hello", n=8, num_gpu=-1)
        assert time.monotonic() - t0 < 60
        assert out["eval_count"] == 8
        (m,) = s.ps()
        names = {d["name"] for d in m["devices"]}
        assert names == {"CPU", f"RPC[{good.endpoint}]"}, names
        log = s.log_text()
        assert f"RPC worker {bad.endpoint}: {why}" in log, log
    finally:
        bad.close()


def test_all_workers_gone_loads_on_the_cpu(serve, workers):
    (a,) = workers(1)
    s = serve(PYOLLAMA_RPC_SERVERS=a.endpoint)
    a.kill()
    out = generate(s, MODEL, "Hello", n=8)
    assert out["eval_count"] == 8
    (m,) = s.ps()
    assert m["size_vram"] == 0 and [d["name"] for d in m["devices"]] == ["CPU"]
