"""Interrupted pulls: SIGKILL at ~25/50/90 % of a blob resumes with only the remainder (206s in the
registry's access log); a connection cut mid-blob is retried within the same run."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from registry_helpers import fast_options, leftovers, make_model
from registry_servers import FaultProxy

from pyollama.store import Store
from pyollama.store.registry import pull, push

CHILD = Path(__file__).with_name("pull_child.py")
SIZE = 12 << 20


def _saved(store: Store, digest: str) -> int:
    """Bytes the part-state files say are done."""
    base = store.blobs.path(digest).name + "-partial-"
    return sum(json.loads(p.read_text())["Completed"] for p in store.blobs.dir.glob(base + "*"))


def _blob_gets(log, digest: str) -> list:
    return [a for a in log if a.method == "GET" and a.path.endswith(f"/blobs/{digest}")]


@pytest.mark.slow
def test_sigkill_at_25_50_90_percent_resumes_with_only_the_rest(tmp_path: Path, registry) -> None:
    src = Store(tmp_path / "src")
    name = f"{registry.host}/team/big:v1"
    m = make_model(src, name, model_size=SIZE)
    list(push(src, name, options=fast_options()))
    big = m.layers[0]
    proxy = FaultProxy(registry.port)
    proxy.rate = 6 << 20          # 12 MiB in ~2 s: the kill points are easy to hit
    via = f"127.0.0.1:{proxy.port}/team/big:v1"
    dst = Store(tmp_path / "dst")
    opts = {"insecure": True, "min_part": 1 << 20, "buffer_size": 64 << 10, "save_interval": 0.02,
            "backoff": 0.02, "progress_interval": 0.02}
    try:
        for frac in (0.25, 0.50, 0.90):
            agent = f"kill-{frac}"
            child = subprocess.Popen([sys.executable, str(CHILD), str(dst.root), via,
                                      json.dumps({**opts, "user_agent": agent})],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and (not dst.blobs.dir.is_dir() or
                                                   _saved(dst, big.digest) < frac * SIZE):
                assert child.poll() is None, child.stdout.read().decode()
                time.sleep(0.01)
            child.send_signal(signal.SIGKILL)
            child.wait()
            child.stdout.close()
            saved = _saved(dst, big.digest)
            assert frac * SIZE <= saved < SIZE
            # nothing half-written: no final blob, no manifest, only the partial and its states
            assert not dst.blobs.has(big.digest) and not dst.exists(via)
            # (a part-state temp file the kill cut short may remain; prune removes a dead writer's)
            assert all("-partial" in x or x.startswith(f".tmp-{child.pid}-") for x in leftovers(dst))
            # re-run directly (same name through the proxy, unthrottled), tagged by its own User-Agent
            proxy.rate = 0
            mark = registry.log_mark()
            events = list(pull(dst, via, options=fast_options(user_agent=f"resume-{frac}",
                                                               min_part=1 << 20)))
            assert events[-1] == {"status": "success"}
            gets = [a for a in _blob_gets(registry.access_log(mark), big.digest)
                    if a.agent == f"resume-{frac}"]
            assert gets and all(a.status == 206 for a in gets)
            assert sum(a.bytes for a in gets) == SIZE - saved       # exactly the remainder
            assert dst.blobs.verify(big.digest)
            assert all(x.startswith(f".tmp-{child.pid}-") for x in leftovers(dst))
            dst.prune()
            assert leftovers(dst) == []
            # start over for the next kill point
            dst.delete(via)
            proxy.rate = 6 << 20
    finally:
        proxy.close()


def test_connection_cut_mid_blob_is_retried_in_the_same_run(tmp_path: Path, registry) -> None:
    src = Store(tmp_path / "src")
    name = f"{registry.host}/team/cut:v1"
    m = make_model(src, name, model_size=4 << 20)
    list(push(src, name, options=fast_options()))
    proxy = FaultProxy(registry.port)
    try:
        proxy.cut_after = (3 << 20) // 2       # mid-blob
        via = f"127.0.0.1:{proxy.port}/team/cut:v1"
        dst = Store(tmp_path / "dst")
        mark = registry.log_mark()
        events = list(pull(dst, via, options=fast_options()))
        assert proxy.cuts == 1
        assert events[-1] == {"status": "success"}
        assert dst.blobs.verify(m.layers[0].digest) and leftovers(dst) == []
        assert dst.manifest(via).bytes() == m.bytes()
        gets = _blob_gets(registry.access_log(mark), m.layers[0].digest)
        assert len(gets) > len([p for p in range(0, 4 << 20, 256 << 10)])   # one part was asked again
    finally:
        proxy.close()


def test_stalled_stream_is_retried(tmp_path: Path, registry) -> None:
    src = Store(tmp_path / "src")
    name = f"{registry.host}/team/stall:v1"
    m = make_model(src, name, model_size=1 << 20)
    list(push(src, name, options=fast_options()))
    proxy = FaultProxy(registry.port)
    try:
        proxy.rate = 64 << 10                  # 64 KiB/s: a 256 KiB part takes longer than the stall limit
        via = f"127.0.0.1:{proxy.port}/team/stall:v1"
        dst = Store(tmp_path / "dst")
        t0 = time.monotonic()
        with pytest.raises(Exception) as ei:
            list(pull(dst, via, options=fast_options(stall_timeout=0.3, max_stalls=2, parallel=1)))
        # no hang: bounded by stalls × stall timeout, and the error says why
        assert time.monotonic() - t0 < 20
        assert "stalled" in str(ei.value) or "timed out" in str(ei.value)
        assert not dst.exists(via) and not dst.blobs.has(m.layers[0].digest)
    finally:
        proxy.close()


def test_closing_the_iterator_cancels_and_a_later_pull_resumes(tmp_path: Path, registry) -> None:
    src = Store(tmp_path / "src")
    name = f"{registry.host}/team/cancel:v1"
    m = make_model(src, name, model_size=4 << 20)
    list(push(src, name, options=fast_options()))
    big = m.layers[0]
    proxy = FaultProxy(registry.port)
    proxy.rate = 2 << 20
    via = f"127.0.0.1:{proxy.port}/team/cancel:v1"
    dst = Store(tmp_path / "dst")
    try:
        it = pull(dst, via, options=fast_options())
        for ev in it:
            if ev.get("digest") == big.digest and ev.get("completed", 0) > big.size // 4:
                break
        t0 = time.monotonic()
        it.close()
        assert time.monotonic() - t0 < 5                       # stops promptly
        saved = _saved(dst, big.digest)
        assert 0 < saved < big.size and not dst.exists(via) and not dst.blobs.has(big.digest)
        proxy.rate = 0
        mark = registry.log_mark()
        assert list(pull(dst, via, options=fast_options()))[-1] == {"status": "success"}
        fetched = sum(a.bytes for a in _blob_gets(registry.access_log(mark), big.digest))
        assert fetched == big.size - saved and leftovers(dst) == []
    finally:
        proxy.close()
