"""PYOLLAMA_SPARE_RUNNER (default on; off in the other tests): the server keeps one runner process started ahead
of need, a model load takes it, another follows, and none outlives the server."""
from __future__ import annotations

import os

import pytest

from tests.api.helpers import wait_until

pytestmark = pytest.mark.model


def test_a_load_takes_the_spare_and_another_follows(serve):
    s = serve(PYOLLAMA_SPARE_RUNNER="1")
    assert wait_until(lambda: len(s.runner_pids()) == 1, 30)
    (spare,) = s.runner_pids()
    assert s.ps() == []                                        # a process, no model
    r = s.post("/api/generate", json={"model": "tiny", "prompt": "hi", "stream": False,
                                      "options": {"num_predict": 2}})
    assert r.status_code == 200 and r.json()["done"], r.text
    assert spare in s.runner_pids() and [m["name"] for m in s.ps()] == ["tiny:latest"]
    assert wait_until(lambda: len(s.runner_pids()) == 2, 30)   # the next spare, a moment later
    (second,) = set(s.runner_pids()) - {spare}
    r = s.post("/api/generate", json={"model": "tiny", "prompt": "", "keep_alive": 0})
    assert r.status_code == 200
    assert wait_until(lambda: s.runner_pids() == [second], 30)  # the runner is gone, the spare stays
    r = s.post("/api/generate", json={"model": "tiny", "prompt": "hi", "stream": False,
                                      "options": {"num_predict": 2}})
    assert r.status_code == 200 and second in s.runner_pids()
    assert wait_until(lambda: len(s.runner_pids()) == 2, 30)    # the spare taken again is replaced again
    every = s.runner_pids()
    assert s.stop() == 0
    for pid in every:
        assert wait_until(lambda: not os.path.exists(f"/proc/{pid}") or _zombie(pid), 10), pid


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
