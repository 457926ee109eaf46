"""pyollama serve vs llama.cpp's llama-server, side by side, streaming, closed loop.

    python -m bench.serve [--concurrency 1 4 8] [--requests 16] [--rounds 3] [--tokens 64] [--png F]
                          [--model smollm2|PATH.gguf] [--ngl N] [--parallel N] [--json F] [--log F]

Both servers are started here from the same pinned build on loopback ports, with the same GGUF,
threads, parallel slots (= the largest concurrency), context per slot and batch size, and a KV
stream per slot. For each concurrency c, c clients each send requests back to back (a new one as
soon as the last finished), every prompt distinct so no request rides on another's prompt cache;
generation is greedy, up to --tokens, and both stop at end-of-generation (their greedy outputs are
token-identical, so both generate the same tokens; llama-server's ``ignore_eos`` would hand it fewer
prefills per token than a client of Ollama's API can ask for). Each level runs in paired rounds,
alternating which server goes first, because a small shared machine drifts by ±10 % within minutes.
Reported per server: median aggregate generated tokens/s over the rounds, the median of the
per-round ratios to llama-server, mean tokens per request, time to first token (TTFT) and
inter-token latency (ITL) p50/p99 over all rounds.

Also: the engine alone (pyollama.engine, one sequence) decode ms/token, so the server's ITL
overhead per token at concurrency 1 can be read off.

--model takes a PyPI model name or any GGUF path (created in the server's store with a Modelfile);
--ngl N puts N layers on the GPU on both sides (llama-server -ngl N, pyollama num_gpu N; 99 = all);
--parallel sets the slots of both (default: the largest concurrency); --json writes the results.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench import require_matplotlib
from pyollama import pypi_models
from pyollama.upstream import find_tool

TEMPLATE = "<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n"
QUESTIONS = ["Tell me about the history of {x}.", "Write a short poem about {x}.", "Explain how {x} works.",
             "Give three facts about {x}.", "Describe {x} to a child.", "What is the future of {x}?"]
TOPICS = ["bridges", "volcanoes", "tea", "bicycles", "the moon", "rivers", "libraries", "trains", "bees",
          "glass", "maps", "clocks", "salt", "kites", "coral", "paper"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prompts(n: int) -> list[str]:
    return [TEMPLATE.format(q=QUESTIONS[i % len(QUESTIONS)].format(x=TOPICS[(i // len(QUESTIONS)) % len(TOPICS)])
                            + f" (#{i})") for i in range(n)]


class Target:
    name: str

    async def stream(self, client: httpx.AsyncClient, prompt: str, n: int) -> tuple[list[float], int]:
        """Send one request; return the arrival times (perf_counter) of each streamed chunk and the number
        of tokens generated as the server counts them (a token ending in an incomplete UTF-8 character
        arrives with the next one, so chunks can be fewer than tokens; 0 if the server did not say)."""
        raise NotImplementedError


class LlamaServer(Target):
    name = "llama-server"

    def __init__(self, path, threads, slots, ctx, batch, log, ngl: int | None = None):
        exe = find_tool("llama-server")
        if exe is None:
            sys.exit("llama-server is not built: PYOLLAMA_BUILD_TOOLS=ON (scripts/bootstrap.sh does)")
        self.url = f"http://127.0.0.1:{_port()}"
        self.args = [str(exe), "-m", str(path), "--host", "127.0.0.1", "--port", self.url.rsplit(":", 1)[1],
                     "-t", str(threads), "-tb", str(threads), "-np", str(slots), "-c", str(ctx * slots),
                     "-b", str(batch), "-ub", str(batch), "--no-kv-unified", "--cache-ram", "0"]
        if ngl is not None:
            self.args += ["-ngl", str(ngl)]
        self.proc = subprocess.Popen(self.args, stdout=log, stderr=log)

    async def stream(self, client, prompt, n):
        body = {"prompt": prompt, "n_predict": n, "temperature": 0, "stream": True,
                "cache_prompt": True}
        times, count = [], 0
        async with client.stream("POST", self.url + "/completion", json=body) as r:
            async for line in r.aiter_lines():
                if line.startswith("data: "):
                    chunk = json.loads(line[6:])
                    if chunk.get("content") or chunk.get("tokens"):
                        times.append(time.perf_counter())
                    if chunk.get("stop"):
                        count = int(chunk.get("tokens_predicted") or 0)
        return times, count

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)


class Pyollama(Target):
    name = "pyollama"

    def __init__(self, path, threads, slots, ctx, batch, log, store, ngl: int | None = None):
        self.url = f"http://127.0.0.1:{_port()}"
        self.env = env = {**os.environ, "PYOLLAMA_HOST": self.url[7:], "PYOLLAMA_MODELS": store,
                          "PYOLLAMA_NUM_PARALLEL": str(slots), "PYOLLAMA_CONTEXT_LENGTH": str(ctx),
                          "PYOLLAMA_KEEP_ALIVE": "-1", "PYOLLAMA_NOPRUNE": "1"}
        self.model = "bench"
        self.options = {"temperature": 0, "num_thread": threads, "num_batch": batch, "num_ctx": ctx}
        if ngl is not None:
            self.options["num_gpu"] = ngl
        self.proc = subprocess.Popen([sys.executable, "-m", "pyollama", "serve"], env=env, stdout=log, stderr=log)

    def import_model(self, package: str) -> None:
        subprocess.run([sys.executable, "-m", "pyollama", "import-pypi", package, "--name", self.model],
                       env=self.env, check=True, stdout=subprocess.DEVNULL)

    def create_model(self, path: Path) -> None:
        """A model from a GGUF file, as `pyollama create NAME -f Modelfile` makes it."""
        modelfile = Path(self.env["PYOLLAMA_MODELS"]).parent / "Modelfile"
        modelfile.write_text(f"FROM {Path(path).resolve()}\n")
        r = subprocess.run([sys.executable, "-m", "pyollama", "create", self.model, "-f", str(modelfile)],
                           env=self.env, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"pyollama create failed: {r.stderr.strip()[-2000:]}")

    async def stream(self, client, prompt, n):
        body = {"model": self.model, "prompt": prompt, "raw": True, "stream": True,
                "options": {**self.options, "num_predict": n}}
        times, count = [], 0
        async with client.stream("POST", self.url + "/api/generate", json=body) as r:
            async for line in r.aiter_lines():
                if line:
                    chunk = json.loads(line)
                    if "error" in chunk:
                        raise RuntimeError(chunk["error"])
                    if not chunk.get("done"):
                        times.append(time.perf_counter())
                    else:
                        count = int(chunk.get("eval_count") or 0)
        return times, count

    def close(self):
        self.proc.terminate()
        self.proc.wait(30)


async def wait_ready(url: str, path: str, timeout=180) -> None:
    async with httpx.AsyncClient() as c:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                r = await c.get(url + path)
                if r.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


async def run_level(target: Target, conc: int, n_requests: int, n_tokens: int, offset: int) -> dict:
    ps = prompts(offset + n_requests)[offset:]
    queue = list(ps)
    ttft, itl, tokens, done = [], [], 0, 0
    t0 = time.perf_counter()

    async def client_loop(client):
        nonlocal tokens, done
        while queue:
            p = queue.pop()
            start = time.perf_counter()
            times, count = await target.stream(client, p, n_tokens)
            if times:
                ttft.append(times[0] - start)
                itl.extend(b - a for a, b in zip(times, times[1:]))
                tokens += count or len(times)
                done += 1

    # No keep-alive: llama-server closes idle connections, and reusing one it just closed fails
    # the request; a fresh connection per request costs both servers the same.
    limits = httpx.Limits(max_connections=conc + 2, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=None, limits=limits) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(conc)))
    return {"tok_s": tokens / (time.perf_counter() - t0), "tokens": tokens, "done": done,
            "ttft": ttft, "itl": itl}


def summarize(rounds: list[dict], base: list[dict]) -> dict:
    """One server at one level over all rounds: median tok/s, its ratio as the median of the
    per-round ratios against ``base`` (paired rounds cancel the machine's drift), latencies pooled."""
    q = lambda xs, p: statistics.quantiles(xs, n=100)[p - 1] * 1e3 if len(xs) >= 2 else float("nan")
    ttft = [x for r in rounds for x in r["ttft"]]
    itl = [x for r in rounds for x in r["itl"]]
    return {"tok_s": statistics.median(r["tok_s"] for r in rounds),
            "ratio": statistics.median(a["tok_s"] / b["tok_s"] for a, b in zip(rounds, base)),
            "per_req": sum(r["tokens"] for r in rounds) / max(1, sum(r["done"] for r in rounds)),
            "ttft50": q(ttft, 50), "ttft99": q(ttft, 99), "itl50": q(itl, 50), "itl99": q(itl, 99)}


def engine_alone(path, threads, ctx, batch, n_tokens, ngl: int | None = None) -> float:
    from pyollama.engine import LLM

    gpu = {} if ngl is None else {"num_gpu": ngl}
    with LLM(path, num_ctx=ctx, num_thread=threads, num_batch=batch, **gpu) as llm:
        llm.complete(prompts(1)[0], num_predict=8, temperature=0)
        runs = []
        for p in prompts(3):
            g = llm.complete(p, num_predict=n_tokens, temperature=0, cache=False, stop=[])
            runs.append(g.eval_duration / g.eval_count / 1e6)
        return statistics.median(runs)


async def main_async(args) -> int:
    from_pypi = args.model in pypi_models.MODELS
    path = pypi_models.fetch(args.model) if from_pypi else Path(args.model)
    if not from_pypi and not path.is_file():
        sys.exit(f"--model: {args.model} is neither a PyPI model ({', '.join(pypi_models.MODELS)}) nor a GGUF file")
    slots = args.parallel or max(args.concurrency)
    if len(args.requests) not in (1, len(args.concurrency)):
        sys.exit("--requests: give one value, or one per concurrency level")
    requests = args.requests * len(args.concurrency) if len(args.requests) == 1 else args.requests
    runs: dict[tuple[str, int], list[dict]] = {}
    logpath = Path(args.log) if args.log else Path(__file__).resolve().parents[1] / "results" / "serve-servers.log"
    logpath.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        log = open(logpath, "wb")
        print(f"server logs: {logpath}", file=sys.stderr)
        store = str(Path(tmp) / "models")
        ours = Pyollama(None, args.threads, slots, args.ctx, args.batch, log, store, args.ngl)
        theirs = LlamaServer(path, args.threads, slots, args.ctx, args.batch, log, args.ngl)
        try:
            await wait_ready(ours.url, "/")
            if from_pypi:
                ours.import_model(args.model)
            else:
                ours.create_model(path)
            await wait_ready(theirs.url, "/health")
            for t in (ours, theirs):                      # load and warm both
                await run_level(t, 1, 1, 8, offset=900)
            offset = 0
            for conc, n_req in zip(args.concurrency, requests):
                for r in range(args.rounds):
                    # Same prompts for both in a round; who goes first alternates between rounds.
                    for t in ((theirs, ours) if r % 2 == 0 else (ours, theirs)):
                        got = await run_level(t, conc, n_req, args.tokens, offset)
                        runs.setdefault((t.name, conc), []).append(got)
                    offset += n_req
        finally:
            ours.close()
            theirs.close()
            log.close()
    eng = engine_alone(path, args.threads, args.ctx, args.batch, args.tokens, args.ngl)

    results = {(name, conc): summarize(runs[(name, conc)], runs[("llama-server", conc)])
               for name, conc in runs}
    if args.json:
        config = {k: getattr(args, k) for k in ("model", "concurrency", "requests", "rounds", "tokens", "threads",
                                                 "ctx", "batch", "ngl")}
        with open(args.json, "w") as f:
            json.dump({"config": {**config, "requests": requests, "slots": slots,
                                  "llama_server_args": theirs.args[1:]},
                       "engine_alone_ms_per_token": eng,
                       "results": [{"server": name, "concurrency": conc, **r} for (name, conc), r in results.items()],
                       "rounds": [{"server": name, "concurrency": conc,
                                   "tok_s": [r["tok_s"] for r in rs], "done": [r["done"] for r in rs],
                                   "tokens": [r["tokens"] for r in rs]} for (name, conc), rs in runs.items()]},
                      f, indent=1, default=str)
    print(f"\nmodel={args.model} threads={args.threads} slots={slots} ctx/slot={args.ctx} "
          f"requests/round={'/'.join(map(str, requests))} rounds={args.rounds} max tokens/request={args.tokens}\n")
    print("| concurrency | server | tok/s | ratio | tok/req | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | ITL p99 ms |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for conc in args.concurrency:
        for name in ("pyollama", "llama-server"):
            r = results[(name, conc)]
            print(f"| {conc} | {name} | {r['tok_s']:.1f} | {r['ratio']:.2f} | {r['per_req']:.1f} | "
                  f"{r['ttft50']:.0f} | "
                  f"{r['ttft99']:.0f} | {r['itl50']:.2f} | {r['itl99']:.2f} |")
    c1 = results.get(("pyollama", 1))
    if c1:
        print(f"\nengine alone: {eng:.2f} ms/token; pyollama serve ITL p50 at concurrency 1: "
              f"{c1['itl50']:.2f} ms -> overhead {c1['itl50'] - eng:+.2f} ms/token")
    if args.png:
        _plot(results, args.concurrency, args.png)
    return 0


def _plot(results, levels, path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name in ("pyollama", "llama-server"):
        ax.plot(levels, [results[(name, c)]["tok_s"] for c in levels], marker="o", label=name)
    ax.set_xlabel("concurrent streams")
    ax.set_ylabel("aggregate tokens/s")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.serve", description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2", help="a PyPI model (smollm2) or a GGUF file")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--requests", type=int, nargs="+", default=[16],
                    help="requests per round and concurrency level (one value, or one per level)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="paired rounds per level, alternating which server goes first")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=2048, help="context per slot")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--ngl", type=int, help="layers on the GPU for both (-ngl, num_gpu); 99 = all")
    ap.add_argument("--parallel", type=int, help="slots of both servers (default: the largest concurrency)")
    ap.add_argument("--png", help="write a chart of tokens/s per concurrency here (needs matplotlib)")
    ap.add_argument("--json", help="write the results here as JSON")
    ap.add_argument("--log", help="the servers' log (default: bench/results/serve-servers.log)")
    args = ap.parse_args(argv)
    if args.png:
        require_matplotlib()
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
