"""A model split over RPC workers vs the same model local, pyollama beside llama.cpp's llama-bench.

    python -m bench.rpc [--model smollm2] [--threads 2] [--prompt 512] [--gen 128] [--reps 3] [--no-netns]

Configurations: the model on the local CPU; whole on 1 worker; split 1:1 over 2 workers — with the
workers on loopback and, where the kernel allows network namespaces, each in a namespace of its own
reached over a veth pair (tests/rpc/netns.py; needs root). Workers are ``pyollama worker`` processes
(upstream's RPC server from the pin); llama-bench from the same build talks to the same workers
(``--rpc``, ``-ngl 99``, ``-ts 1/1``).

pyollama runs through ``pyollama serve`` and /api/generate: prefill is ``prompt_eval_count /
prompt_eval_duration`` of a --prompt-token prompt (a fresh one each rep: no cache hit), decode is
``eval_count / eval_duration`` of a --gen-token generation. Bytes per token are what the head's
connections to the workers carried (both directions, TCP payload from ``ss -ti``) during those
requests, per prompt token and per generated token. A worker serves one client at a time, so each
configuration runs pyollama's reps, unloads, then llama-bench's (-r reps) on the same workers.
Prints a markdown table; --json writes the numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.serve.__main__ import _port
from pyollama import pypi_models, rpc
from pyollama.errors import WorkerUnavailable
from pyollama.store import CreateRequest, Store, create
from pyollama.upstream import find_tool
from tests.rpc import netns

TEXT = ("The history of the river valley is long and varied. Farmers grew wheat and barley along its banks, "
        "traders carried salt and copper downstream, and each spring the floods renewed the fields. ")


class Worker:
    def __init__(self, host: str, threads: int, log, ns: str | None = None):
        self.endpoint = f"{host}:{_port()}"
        cmd = [sys.executable, "-m", "pyollama", "worker", "--host", host, "-p", self.endpoint.rsplit(":", 1)[1],
               "-t", str(threads)]
        self.proc = subprocess.Popen((["ip", "netns", "exec", ns] if ns else []) + cmd, stdout=log, stderr=log)
        deadline = time.monotonic() + 60
        while True:
            try:
                rpc.probe(self.endpoint, timeout=2)
                return
            except WorkerUnavailable:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"worker {self.endpoint} did not start") from None
                time.sleep(0.2)

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)


def link_bytes(endpoints: list[str]) -> int:
    """TCP payload the head's connections to ``endpoints`` have carried so far (sent + received)."""
    total = 0
    for ep in endpoints:
        host, port = ep.rsplit(":", 1)
        out = subprocess.run(["ss", "-tinH", "state", "established", "dst", host, "dport", f"= :{port}"],
                             capture_output=True, text=True, check=True).stdout
        total += sum(int(n) for n in re.findall(r"bytes_(?:sent|received):(\d+)", out))
    return total


class Server:
    def __init__(self, store: Path, endpoints: list[str], log):
        self.url = f"http://127.0.0.1:{_port()}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA_", "PYOLLAMA_"))}
        env.update(PYOLLAMA_HOST=self.url[7:], PYOLLAMA_MODELS=str(store), PYOLLAMA_NOPRUNE="1",
                   PYOLLAMA_RPC_SERVERS=",".join(endpoints),
                   PYOLLAMA_SPARE_RUNNER="0")      # no spare process starting beside a measured rep
        self.proc = subprocess.Popen([sys.executable, "-m", "pyollama", "serve"], env=env, stdout=log, stderr=log)
        self.http = httpx.Client(base_url=self.url, timeout=600)
        deadline = time.monotonic() + 60
        while True:
            try:
                if self.http.get("/").status_code == 200:
                    return
            except httpx.TransportError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("pyollama serve did not start") from None
                time.sleep(0.2)

    def generate(self, prompt: str, n: int, options: dict) -> dict:
        r = self.http.post("/api/generate", json={"model": "bench", "prompt": prompt, "raw": True, "stream": False,
                                                  "options": {"temperature": 0, "num_predict": n, **options}})
        r.raise_for_status()
        return r.json()

    def text_of_tokens(self, text: str, n: int) -> str:
        """The first ``n`` tokens of ``text`` as text, by the model's own tokenizer."""
        toks = self.http.post("/api/tokenize", json={"model": "bench", "content": text,
                                                       "add_special": False}).json()["tokens"][:n]
        return self.http.post("/api/detokenize", json={"model": "bench", "tokens": toks}).json()["content"]

    def close(self):
        self.http.post("/api/generate", json={"model": "bench", "keep_alive": 0})
        self.proc.terminate()
        self.proc.wait(30)


def run_pyollama(store, endpoints, options, args, log) -> dict:
    s = Server(store, endpoints, log)
    options = {**options, "num_ctx": 2 * args.prompt + args.gen}      # one runner for every request
    try:
        prompt = s.text_of_tokens(TEXT * (args.prompt // 20 + 1), args.prompt - 3)   # + BOS and "N. ": --prompt
        s.generate("Hello", 4, options)                            # load + warm-up
        pp, tg, pp_bytes, tg_bytes, n_prompt = [], [], [], [], []
        for rep in range(args.reps):
            b0 = link_bytes(endpoints)
            r = s.generate(f"{rep + 1}. {prompt}", 1, options)
            b1 = link_bytes(endpoints)
            n_prompt.append(r["prompt_eval_count"])
            pp.append(r["prompt_eval_count"] / (r["prompt_eval_duration"] / 1e9))
            pp_bytes.append((b1 - b0) / r["prompt_eval_count"])
            r = s.generate(f"Count from {rep + 1} to 1000: {rep + 1}, {rep + 2}, {rep + 3},", args.gen, options)
            b2 = link_bytes(endpoints)
            tg.append(r["eval_count"] / (r["eval_duration"] / 1e9))
            tg_bytes.append((b2 - b1) / r["eval_count"])
        ps = s.http.get("/api/ps").json()["models"]
        devices = {d["name"]: d["size"] for d in ps[0].get("devices", [])} if ps else {}
        return {"pp": pp, "tg": tg, "pp_bytes": statistics.median(pp_bytes), "tg_bytes": statistics.median(tg_bytes),
                "devices": devices, "prompt_tokens": statistics.median(n_prompt)}
    finally:
        s.close()


def run_llama_bench(path, endpoints, args) -> dict:
    exe = find_tool("llama-bench")
    if exe is None:
        sys.exit("llama-bench is not built: rebuild with PYOLLAMA_BUILD_TOOLS=ON (scripts/bootstrap.sh does)")
    cmd = [str(exe), "-m", str(path), "-t", str(args.threads), "-p", str(args.prompt), "-n", str(args.gen),
           "-r", str(args.reps), "-o", "json"]
    if endpoints:
        cmd += ["--rpc", ",".join(endpoints), "-ngl", "99"]
        if len(endpoints) > 1:
            cmd += ["-ts", "/".join("1" * len(endpoints))]
    else:
        cmd += ["-ngl", "0"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    # the median of the reps, as ours (avg_ts is their mean)
    return {("pp" if row["n_prompt"] else "tg"): statistics.median(row["samples_ts"]) for row in json.loads(out)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.rpc", description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2", help="a PyPI model name or a GGUF path")
    ap.add_argument("--threads", type=int, default=2, help="threads on the head and on each worker")
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--gen", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-netns", action="store_true", help="loopback only")
    ap.add_argument("--json", help="write the results here as JSON")
    args = ap.parse_args(argv)

    path = pypi_models.fetch(args.model) if args.model in pypi_models.MODELS else Path(args.model)
    work = Path(tempfile.mkdtemp(prefix="bench-rpc-"))
    store = work / "models"
    req = CreateRequest(model="bench", from_path=path)
    req.validate()
    for _ in create(Store(store), req):
        pass
    log = open(work / "log.txt", "ab")  # noqa: SIM115 - closed at the end
    print(f"logs: {work / 'log.txt'}", file=sys.stderr)

    why = "--no-netns" if args.no_netns else netns.unavailable()
    places = [("loopback", [None, None])]
    hosts: list[netns.Host] = []
    if why:
        print(f"netns configurations skipped: {why}", file=sys.stderr)
    else:
        hosts = [netns.Host(i).start() for i in range(2)]
        places.append(("netns", hosts))
    rows = []
    try:
        rows.append(("local CPU", run_pyollama(store, [], {"num_gpu": 0, "num_thread": args.threads}, args, log),
                     run_llama_bench(path, [], args)))
        for place, where in places:
            ws = [Worker(h.addr if h else "127.0.0.1", args.threads, log, h.name if h else None) for h in where]
            try:
                for n in (1, 2):
                    eps = [w.endpoint for w in ws[:n]]
                    opts = {"num_gpu": -1, "num_thread": args.threads, **({"tensor_split": "1,1"} if n > 1 else {})}
                    name = f"{n} worker{'s' if n > 1 else ''} ({place})"
                    print(f"  {name}…", file=sys.stderr)
                    rows.append((name, run_pyollama(store, eps, opts, args, log), run_llama_bench(path, eps, args)))
            finally:
                for w in ws:
                    w.close()
    finally:
        for h in hosts:
            h.stop()
        log.close()

    print(f"\nmodel={path.name} threads={args.threads} (head and each worker) reps={args.reps}, medians, tokens/s\n")
    print(f"| placement | prefill pp{args.prompt} | vs llama-bench | decode tg{args.gen} | vs llama-bench "
          "| bytes/prompt token | bytes/generated token |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    out = []
    for name, ours, ref in rows:
        pp, tg = statistics.median(ours["pp"]), statistics.median(ours["tg"])
        print(f"| {name} | {pp:.1f} | {pp / ref['pp']:.2f} | {tg:.1f} | {tg / ref['tg']:.2f} "
              f"| {ours['pp_bytes']:,.0f} | {ours['tg_bytes']:,.0f} |")
        out.append({"placement": name, "prompt_tokens": ours["prompt_tokens"], "pp": pp, "tg": tg,
                    "llama_bench_pp": ref["pp"], "llama_bench_tg": ref["tg"],
                    "bytes_per_prompt_token": ours["pp_bytes"], "bytes_per_generated_token": ours["tg_bytes"],
                    "devices": ours["devices"]})
    if args.json:
        Path(args.json).write_text(json.dumps({"config": vars(args), "rows": out}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
