"""pyollama's engine vs llama.cpp's own llama-bench, side by side in one run.

    python -m bench.engine [--models smollm2 gemma3] [--threads 2] [--prompt 512] [--gen 128] [--reps 5]
                           [--ngl N] [--json FILE]

Both sides use the same GGUF, thread count, batch/ubatch size and prompt length, from the same
pinned build (llama-bench comes from PYOLLAMA_BUILD_TOOLS=ON). Runs alternate between the two
so background load hits both alike. Prefill (pp): one batch of --prompt tokens into an empty
KV cache. Decode (tg): --gen tokens one at a time from an empty cache. llama-bench decodes a
fixed token and never samples; pyollama's figure is its real generation loop (greedy sampling,
incremental detokenization, stop checks included), so the ratio charges pyollama for all of it.
Prints a markdown table; --png writes a bar chart (needs matplotlib), --json the numbers. --ngl N
offloads N layers to the GPU on both sides (llama-bench -ngl N, pyollama num_gpu=N; 99 = all);
without it each side keeps its default.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from bench import require_matplotlib
from pyollama import pypi_models
from pyollama.engine import LLM
from pyollama.upstream import find_tool


def llama_bench(path, threads, n_prompt, n_gen, batch, ngl: int | None = None) -> dict[str, float]:
    exe = find_tool("llama-bench")
    if exe is None:
        sys.exit("llama-bench is not built: rebuild with PYOLLAMA_BUILD_TOOLS=ON (scripts/bootstrap.sh does)")
    cmd = [str(exe), "-m", str(path), "-t", str(threads), "-p", str(n_prompt), "-n", str(n_gen),
           "-b", str(batch), "-ub", str(batch), "-r", "1", "-o", "json", "--no-warmup"]
    if ngl is not None:
        cmd += ["-ngl", str(ngl)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    res = {}
    for row in json.loads(out):
        key = "pp" if row["n_prompt"] > 0 else "tg"
        res[key] = row["avg_ts"]
    return res


def pyollama_bench(llm: LLM, n_prompt: int, n_gen: int) -> dict[str, float]:
    vocab = llm.vocab
    # A prompt of n_prompt ordinary tokens (llama-bench uses random ones; the content does not
    # change the cost of a batch).
    tokens = ([vocab.bos] if vocab.bos >= 0 else []) + [1000 + (i * 7919) % 20000 for i in range(n_prompt)]
    tokens = tokens[:n_prompt]
    g = llm.generate(tokens, num_predict=1, temperature=0, cache=False).result()
    pp = n_prompt / (g.prompt_eval_duration / 1e9)
    start = tokens[:1]
    g = llm.generate(start, num_predict=n_gen, temperature=0, cache=False, stop=[]).result()
    # the first generated token's decode is part of eval; eval_count tokens were sampled and
    # eval_count - 1 decoded after the prompt: time per sampled token, like llama-bench's tg
    tg = g.eval_count / (g.eval_duration / 1e9)
    if g.eval_count < n_gen:
        print(f"  note: generation ended after {g.eval_count} tokens ({g.done_reason})", file=sys.stderr)
    return {"pp": pp, "tg": tg}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.engine", description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["smollm2", "gemma3"], help="PyPI model names or GGUF paths")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--gen", type=int, default=128)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--ngl", type=int, help="layers on the GPU for both (llama-bench -ngl, num_gpu); 99 = all")
    ap.add_argument("--png", help="write a bar chart here")
    ap.add_argument("--json", help="write the results here as JSON")
    args = ap.parse_args(argv)
    if args.png:
        require_matplotlib()

    rows = []
    for name in args.models:
        path = pypi_models.fetch(name) if name in pypi_models.MODELS else name
        gpu = {} if args.ngl is None else {"num_gpu": args.ngl}
        llm = LLM(path, num_ctx=max(4096, args.prompt + args.gen + 16), num_batch=args.batch,
                  num_thread=args.threads, **gpu)
        pyollama_bench(llm, min(args.prompt, 64), 8)                    # warm-up
        llama_bench(path, args.threads, 64, 8, args.batch, args.ngl)
        ours = {"pp": [], "tg": []}
        ref = {"pp": [], "tg": []}
        for _ in range(args.reps):
            r = llama_bench(path, args.threads, args.prompt, args.gen, args.batch, args.ngl)
            o = pyollama_bench(llm, args.prompt, args.gen)
            for k in ("pp", "tg"):
                ref[k].append(r[k])
                ours[k].append(o[k])
            time.sleep(0.2)
        llm.close()
        for k, label in (("pp", f"prefill pp{args.prompt}"), ("tg", f"decode tg{args.gen}")):
            a, b = statistics.median(ours[k]), statistics.median(ref[k])
            rows.append((name, label, a, statistics.pstdev(ours[k]), b, statistics.pstdev(ref[k]), a / b))

    print(f"\nthreads={args.threads} batch={args.batch} reps={args.reps} (medians, tokens/s)\n")
    print("| model | test | pyollama | llama-bench | ratio |")
    print("|---|---|---:|---:|---:|")
    for name, label, a, sa, b, sb, ratio in rows:
        print(f"| {name} | {label} | {a:.1f} ± {sa:.1f} | {b:.1f} ± {sb:.1f} | {ratio:.3f} |")
    if args.png:
        _plot(rows, args.png)
    if args.json:
        config = {k: getattr(args, k) for k in ("threads", "prompt", "gen", "batch", "reps", "ngl")}
        with open(args.json, "w") as f:
            json.dump({"config": config, "rows": [
                {"model": str(name), "test": label, "pyollama": a, "pyollama_sd": sa, "llama_bench": b,
                 "llama_bench_sd": sb, "ratio": ratio} for name, label, a, sa, b, sb, ratio in rows]}, f, indent=1)
    return 0


def _plot(rows, path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r[0]}\n{r[1]}" for r in rows]
    x = range(len(rows))
    fig, ax = plt.subplots(figsize=(1.8 * len(rows) + 2, 4))
    ax.bar([i - 0.2 for i in x], [r[2] for r in rows], 0.4, label="pyollama")
    ax.bar([i + 0.2 for i in x], [r[4] for r in rows], 0.4, label="llama-bench")
    for i, r in enumerate(rows):
        ax.text(i, max(r[2], r[4]), f"{r[6]:.2f}x", ha="center", va="bottom")
    ax.set_xticks(list(x), labels)
    ax.set_ylabel("tokens/s")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    sys.exit(main())
