"""Pull throughput of one large blob on loopback: pyollama's registry client vs curl, same blob.

Starts a real docker-registry on 127.0.0.1 with a temp storage, pushes a model whose weights are
``--size`` MiB of random bytes (also timing the push), then times, ``--runs`` times each:

* ``curl -o /dev/null`` and ``curl -o <file>`` on the blob URL (one stream);
* ``pyollama.store.registry.pull`` into a fresh store (ranged parts in parallel, written to disk,
  sha256-verified, renamed), i.e. the whole pull as a user runs it.

Prints MiB/s for each (median of the runs) and the ratio. Usage::

    .venv/bin/python bench/registry/pull_throughput.py [--size 512] [--runs 3] [--parallel 4]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "store" / "registry")]

from registry_servers import Registry

from pyollama.store import Store
from pyollama.store import manifest as mf
from pyollama.store.registry import RegistryOptions, pull, push

MiB = 1 << 20


def make_store(root: Path, name: str, size: int) -> mf.Manifest:
    store = Store(root)
    tmp = store.blobs.temp_path()
    with open(tmp, "wb") as f:   # random, so nothing on the way can compress it
        left = size
        while left:
            n = min(left, 16 * MiB)
            f.write(os.urandom(n))
            left -= n
    blob = store.blobs.adopt(tmp)
    cfg = store.blobs.put_bytes(b'{"model_format":"gguf"}')
    m = mf.Manifest(mf.Layer(mf.CONFIG_MEDIA_TYPE, cfg.digest, cfg.size),
                    [mf.Layer(mf.MEDIA_MODEL, blob.digest, blob.size)])
    store.write_manifest(name, m)
    return store.manifest(name)


def curl(url: str, out: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(["curl", "-sS", "--fail", "-o", out, url], check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=512, help="blob size in MiB (default 512)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--parallel", type=int, default=RegistryOptions().parallel,
                    help="ranges in flight (default: the client's, 2 on a 2-core machine, else 4)")
    args = ap.parse_args()
    size = args.size * MiB
    work = Path(tempfile.mkdtemp(prefix="pyollama-bench-registry-", dir=os.environ.get("TMPDIR")))
    reg = Registry(work / "reg").start()
    try:
        name = f"{reg.host}/bench/big:latest"
        src = make_store(work / "src", name, size)
        digest = src.layers[0].digest
        t0 = time.perf_counter()
        for _ in push(Store(work / "src"), name, insecure=True):
            pass
        push_s = time.perf_counter() - t0
        shutil.rmtree(work / "src")
        url = f"{reg.url}/v2/bench/big/blobs/{digest}"

        curl_null = [curl(url, "/dev/null") for _ in range(args.runs)]
        curl_file = []
        for _ in range(args.runs):
            curl_file.append(curl(url, str(work / "curl.out")))
            os.unlink(work / "curl.out")
        ours = []
        opts = RegistryOptions(insecure=True, parallel=args.parallel)
        for i in range(args.runs):
            dst = Store(work / f"dst{i}")
            t0 = time.perf_counter()
            for _ in pull(dst, name, options=opts):
                pass
            ours.append(time.perf_counter() - t0)
            assert dst.blobs.size(digest) == size
            shutil.rmtree(work / f"dst{i}")

        def rate(times: list[float]) -> float:
            return size / MiB / statistics.median(times)

        print(f"blob: {args.size} MiB on loopback, docker-registry {reg.url}, median of {args.runs} runs")
        print(f"push (pyollama, PATCH chunks): {size / MiB / push_s:8.1f} MiB/s")
        print(f"curl -o /dev/null            : {rate(curl_null):8.1f} MiB/s")
        print(f"curl -o file                 : {rate(curl_file):8.1f} MiB/s")
        print(f"pyollama pull ({args.parallel} ranges, verify, rename): {rate(ours):8.1f} MiB/s")
        print(f"ratio curl(/dev/null) / pyollama: {rate(curl_null) / rate(ours):.2f}x, "
              f"curl(file) / pyollama: {rate(curl_file) / rate(ours):.2f}x (target <= 2x)")
    finally:
        reg.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
