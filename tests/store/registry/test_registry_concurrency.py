"""Simultaneous pulls of one model share one download: each byte range is served once, both succeed."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

from registry_helpers import fast_options, leftovers, make_model
from registry_servers import FaultProxy

from pyollama.store import Store
from pyollama.store.registry import pull, push

CHILD = Path(__file__).with_name("pull_child.py")


def _setup(tmp_path: Path, registry, size: int):
    src = Store(tmp_path / "src")
    name = f"{registry.host}/team/shared:v1"
    m = make_model(src, name, model_size=size)
    list(push(src, name, options=fast_options()))
    return name, m


def _blob_traffic(log, m) -> tuple[int, int]:
    gets = [a for a in log if a.method == "GET" and "/blobs/" in a.path]
    return len(gets), sum(a.bytes for a in gets)


def test_two_threads_share_one_download(tmp_path: Path, registry) -> None:
    _, m = _setup(tmp_path, registry, 4 << 20)
    proxy = FaultProxy(registry.port)
    proxy.rate = 8 << 20             # slow enough that both pulls are surely inside the download together
    via = f"127.0.0.1:{proxy.port}/team/shared:v1"
    dst = Store(tmp_path / "dst")
    results: dict[int, list[dict]] = {}
    start = threading.Barrier(2)

    def run(i: int) -> None:
        start.wait()
        results[i] = list(pull(dst, via, options=fast_options()))

    try:
        mark = registry.log_mark()
        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(results) == [0, 1]
        assert all(r[-1] == {"status": "success"} for r in results.values())
        # both saw the big blob's progress, but it was fetched once: one GET per part, bytes = sizes
        for r in results.values():
            assert any(e.get("digest") == m.layers[0].digest and e.get("completed") == m.layers[0].size
                       for e in r)
        parts = -(-m.layers[0].size // (256 << 10))
        count, total = _blob_traffic(registry.access_log(mark), m)
        assert count == parts + 2 and total == sum(x.size for x in m.all_layers())
        assert proxy.down_bytes < sum(x.size for x in m.all_layers()) + (64 << 10)   # + headers
        assert dst.blobs.verify(m.layers[0].digest) and leftovers(dst) == []
    finally:
        proxy.close()


def test_two_processes_share_one_download(tmp_path: Path, registry) -> None:
    _, m = _setup(tmp_path, registry, 4 << 20)
    proxy = FaultProxy(registry.port)
    proxy.rate = 8 << 20
    via = f"127.0.0.1:{proxy.port}/team/shared:v1"
    dst = Store(tmp_path / "dst")
    opts = json.dumps({"insecure": True, "min_part": 256 << 10, "buffer_size": 64 << 10,
                       "save_interval": 0.05, "progress_interval": 0.05, "backoff": 0.02})
    try:
        mark = registry.log_mark()
        kids = [subprocess.Popen([sys.executable, str(CHILD), str(dst.root), via, opts],
                                 stdout=subprocess.PIPE, text=True) for _ in range(2)]
        outs = [k.communicate(timeout=120)[0] for k in kids]
        assert [k.returncode for k in kids] == [0, 0], outs
        for out in outs:
            assert json.loads(out.splitlines()[-1]) == {"status": "success"}
        _, total = _blob_traffic(registry.access_log(mark), m)
        assert total == sum(x.size for x in m.all_layers())         # every byte once
        assert dst.blobs.verify(m.layers[0].digest) and leftovers(dst) == []
    finally:
        proxy.close()
