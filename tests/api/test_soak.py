"""Soak (opt-in): concurrent streaming clients against one real server for a set time, with random
disconnects, keep_alive expiries and model switches. Afterwards the server is still up, every model
unloads on its own (a leaked lease would keep it loaded for ever), all slots serve at once again, no
request hung, and the server's RSS and open file descriptors stayed flat.

    PYOLLAMA_SOAK_SECONDS=1800 .venv/bin/python -m pytest tests/api/test_soak.py -m soak -s

``PYOLLAMA_SOAK_CLIENTS`` (default 8) and ``PYOLLAMA_SOAK_REPORT`` (a JSON file for the figures) are
optional. Without ``PYOLLAMA_SOAK_SECONDS`` the test is skipped: it is too long for CI.
"""
from __future__ import annotations

import json
import os
import random
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import Server
from tests.api.helpers import C, E, G, T, wait_until

pytestmark = [pytest.mark.soak, pytest.mark.model, pytest.mark.slow]

SECONDS = float(os.environ.get("PYOLLAMA_SOAK_SECONDS", "0") or 0)
CLIENTS = int(os.environ.get("PYOLLAMA_SOAK_CLIENTS", "8") or 8)
PARALLEL, MAX_LOADED = 2, 2
REQUEST_TIMEOUT = 300.0     # a request slower than this counts as hung (loads and queueing included)
DISCONNECT = 0.33        # of streamed requests; embeddings are not streamed: ~30 % of all requests
KEEP_ALIVES = [None, None, "3s", "10s", 0]


def _proc_figures(pid: int) -> tuple[int, int]:
    """(RSS in KiB, open file descriptors) of ``pid``; (0, 0) once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
        return rss, len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, StopIteration):
        return 0, 0


def _request(rng: random.Random) -> tuple[str, dict[str, Any], bool]:
    """A random request: (path, body, streamed)."""
    model = rng.choices([T, C, G, E], weights=[45, 30, 15, 10])[0]
    ka = rng.choice(KEEP_ALIVES)
    extra = {} if ka is None else {"keep_alive": ka}
    if model == E:
        n = rng.randint(1, 4)
        return "/api/embed", {"model": E, "input": [f"text {rng.random()}"] * n, **extra}, False
    opts = {"num_predict": rng.randint(1, 48), "temperature": rng.choice([0, 0.8]), "seed": rng.randint(0, 99),
            "num_ctx": rng.choice([512, 512, 512, 1024])}          # a num_ctx change reloads the model
    prompt = f"Tell me about the number {rng.randint(0, 10**6)}."
    kind = rng.choice(["generate", "chat", "openai"] if model != G else ["generate"])
    if kind == "generate":
        return "/api/generate", {"model": model, "prompt": prompt, "options": opts, **extra}, True
    if kind == "chat":
        return "/api/chat", {"model": model, "messages": [{"role": "user", "content": prompt}],
                             "options": opts, **extra}, True
    return "/v1/chat/completions", {"model": model, "messages": [{"role": "user", "content": prompt}],
                                    "max_tokens": opts["num_predict"], "stream": True, "seed": opts["seed"]}, True


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.failures: list[str] = []

    def add(self, what: str, failure: str | None = None) -> None:
        with self.lock:
            self.counts[what] += 1
            if failure and len(self.failures) < 50:
                self.failures.append(failure)


def _client(url: str, seed: int, until: float, tally: Tally) -> None:
    rng = random.Random(seed)
    while time.monotonic() < until:
        # a client that left opens a fresh connection, as a new user would
        with httpx.Client(base_url=url, timeout=httpx.Timeout(REQUEST_TIMEOUT, connect=10)) as c:
            while time.monotonic() < until:
                if _one(c, rng, tally):
                    break


def _one(c: httpx.Client, rng: random.Random, tally: Tally) -> bool:
    """One random request; True when the client walked away from it mid-stream."""
    path, body, streamed = _request(rng)
    leave_after = rng.randint(1, 5) if streamed and rng.random() < DISCONNECT else 0
    t0 = time.monotonic()
    try:
        if not streamed:
            r = c.post(path, json=body)
            ok = r.status_code == 200
            tally.add("ok" if ok else "failed", None if ok else f"{path} {r.status_code} {r.text[:200]}")
            return False
        with c.stream("POST", path, json=body) as r:
            if r.status_code != 200:
                r.read()
                tally.add("failed", f"{path} {r.status_code} {r.text[:200]}")
                return False
            n = 0
            for line in r.iter_lines():
                if not line:
                    continue
                n += 1
                if '"error"' in line:
                    tally.add("failed", f"{path} in-stream {line[:200]}")
                    return False
                if leave_after and n >= leave_after:
                    tally.add("disconnected")
                    return True
            tally.add("ok")
    except httpx.TimeoutException:
        tally.add("hung", f"{path} no answer after {time.monotonic() - t0:.0f} s: {json.dumps(body)[:200]}")
    except httpx.TransportError as e:
        tally.add("transport_error", f"{path} {type(e).__name__}: {e}")
    return False


def _monitor(s: Server, stop: threading.Event, samples: list[dict], problems: list[str], every: float) -> None:
    while not stop.wait(every):
        rss, fds = _proc_figures(s.proc.pid)
        runners = {pid: _proc_figures(pid) for pid in s.runner_pids()}
        try:
            ps = s.ps()
        except httpx.HTTPError as e:
            problems.append(f"/api/ps failed: {e}")
            continue
        names = [m["name"] for m in ps]
        if len(set(names)) != len(names) or len(names) > MAX_LOADED or any(m["size"] <= 0 for m in ps):
            problems.append(f"/api/ps inconsistent: {ps}")
        samples.append({"t": time.monotonic(), "rss_kib": rss, "fds": fds, "loaded": names,
                        "runners": {str(p): {"rss_kib": r, "fds": f} for p, (r, f) in runners.items()}})
        if len(runners) > MAX_LOADED + 1:          # one more may be on its way out while another loads
            problems.append(f"{len(runners)} runner processes for at most {MAX_LOADED} models")


def _slots_serve_together(s: Server) -> bool:
    """PARALLEL long streams on one model all produce their first token before any of them ends: no slot
    is held by a request that is gone."""
    firsts: list[float] = []
    ends: list[float] = []
    lock = threading.Lock()

    def one() -> None:
        body = {"model": T, "prompt": "count", "options": {"num_predict": 200, "num_ctx": 512, "temperature": 0}}
        with httpx.Client(base_url=s.url, timeout=120) as c, c.stream("POST", "/api/generate", json=body) as r:
            first = True
            for line in r.iter_lines():
                if line and first:
                    with lock:
                        firsts.append(time.monotonic())
                    first = False
        with lock:
            ends.append(time.monotonic())

    threads = [threading.Thread(target=one) for _ in range(PARALLEL)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(firsts) == PARALLEL and max(firsts) < min(ends)


@pytest.mark.skipif(SECONDS <= 0, reason="set PYOLLAMA_SOAK_SECONDS to run the soak")
def test_soak(model_store, tmp_path):
    s = Server({"PYOLLAMA_MODELS": str(model_store), "PYOLLAMA_NUM_PARALLEL": str(PARALLEL),
                "PYOLLAMA_MAX_LOADED_MODELS": str(MAX_LOADED), "PYOLLAMA_KEEP_ALIVE": "5s"}, tmp_path / "server.log")
    try:
        rss0, fds0 = _proc_figures(s.proc.pid)
        tally = Tally()
        samples: list[dict] = []
        problems: list[str] = []
        stop = threading.Event()
        mon = threading.Thread(target=_monitor, args=(s, stop, samples, problems, max(2.0, min(15.0, SECONDS / 60))))
        mon.start()
        t_start = time.monotonic()
        until = t_start + SECONDS
        clients = [threading.Thread(target=_client, args=(s.url, 1000 + i, until, tally)) for i in range(CLIENTS)]
        for t in clients:
            t.start()
        for t in clients:
            t.join(SECONDS + REQUEST_TIMEOUT + 60)
        stuck_clients = sum(t.is_alive() for t in clients)
        stop.set()
        mon.join()
        server_alive = s.proc.poll() is None
        unloaded = server_alive and wait_until(lambda: not s.ps() and not s.runner_pids(), 60, every=0.5)
        together = server_alive and _slots_serve_together(s)
        wait_until(lambda: not s.runner_pids(), 30, every=0.5) if server_alive else None
        rss1, fds1 = _proc_figures(s.proc.pid)

        # after the warm-up (every model loaded a few times, allocator pools grown): the first third
        steady = [x for x in samples if x["t"] >= t_start + SECONDS / 3]
        rss_steady = [x["rss_kib"] for x in steady]
        runner_rss = [r["rss_kib"] for x in steady for r in x["runners"].values()]
        report = {
            "seconds": SECONDS, "clients": CLIENTS, "requests": dict(tally.counts),
            "server_alive": server_alive, "stuck_clients": stuck_clients,
            "models_unloaded_after": unloaded, "slots_serve_together_after": together,
            "server_rss_mib": {"start": rss0 / 1024, "steady_first": rss_steady[0] / 1024 if rss_steady else None,
                               "steady_max": max(rss_steady) / 1024 if rss_steady else None,
                               "steady_last": rss_steady[-1] / 1024 if rss_steady else None, "end": rss1 / 1024},
            "server_fds": {"start": fds0, "max": max((x["fds"] for x in samples), default=0), "end": fds1},
            "runner_rss_mib_max": max(runner_rss, default=0) / 1024,
            "runner_fds_max": max((r["fds"] for x in samples for r in x["runners"].values()), default=0),
            "samples": len(samples), "problems": problems[:20], "failures": tally.failures[:20],
        }
        text = json.dumps(report, indent=1)
        print(text)
        out = os.environ.get("PYOLLAMA_SOAK_REPORT")
        if out:
            Path(out).write_text(text + "\n" + json.dumps(samples) + "\n")
        assert server_alive, s.log_text()
        assert stuck_clients == 0 and tally.counts["hung"] == 0, tally.failures
        assert tally.counts["failed"] == 0 and tally.counts["transport_error"] == 0, tally.failures
        assert not problems, problems
        assert unloaded, "a model stayed loaded after every client left: a leaked lease"
        assert together, "the slots no longer serve together: a leaked slot"
        assert fds1 <= fds0 + 4, (fds0, fds1)
        if rss_steady:          # flat within noise: after the warm-up it grows by less than a tenth
            assert max(rss_steady) - rss_steady[0] < max(0.1 * rss_steady[0], 32 * 1024), report["server_rss_mib"]
    finally:
        s.stop()
