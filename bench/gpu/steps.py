"""The Python side of bench/gpu/run.sh: one subcommand per step, each writing one JSON result.

    python -m bench.gpu.steps env        --json F                 devices, nvidia-smi, versions
    python -m bench.gpu.steps identity   --json F --models A B …  greedy tokens: pyollama vs llama-server
    python -m bench.gpu.steps placement  --json F --model M       /api/ps under pyollama serve: all layers,
                                                                  num_gpu N, KV type under a capped GPU
    python -m bench.gpu.steps report     --work W --out O         results/*.json → O/report.md + report.json

run.sh sets the environment (PYTHONPATH, PYOLLAMA_TOOLS_DIR, LD_LIBRARY_PATH) and time-boxes each step.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
GIB = 1 << 30


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, timeout: float, logfile: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            tail = logfile.read_text(errors="replace")[-3000:] if logfile and logfile.exists() else ""
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode} before {url} answered:\n{tail}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")
        time.sleep(0.2)


def stop(proc: subprocess.Popen, grace: float = 20) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def tool(name: str) -> str:
    from pyollama.upstream import find_tool

    exe = find_tool(name)
    if exe is None:
        raise RuntimeError(f"{name} is not built (PYOLLAMA_BUILD_TOOLS=ON; PYOLLAMA_TOOLS_DIR={os.environ.get('PYOLLAMA_TOOLS_DIR')})")
    return str(exe)


def devices_subprocess() -> list[dict]:
    """pyollama.backends() in a child process, so this process holds no GPU context (and no GPU memory)."""
    r = subprocess.run([sys.executable, "-c", "import json, pyollama; print(json.dumps(pyollama.backends()))"],
                       capture_output=True, text=True, timeout=120, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"pyollama.backends() failed: {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


# --- env ---------------------------------------------------------------------------------------------
def cmd_env(args) -> dict:
    out: dict[str, Any] = {"python": sys.version.split()[0], "executable": sys.executable,
                           "platform": platform.platform(), "cpus": os.cpu_count()}
    smi = shutil.which("nvidia-smi")
    if smi:
        fields = "name,memory.total,memory.used,memory.free,driver_version,compute_cap,clocks.max.sm,power.limit"
        q = subprocess.run([smi, f"--query-gpu={fields}", "--format=csv"],
                           capture_output=True, text=True, check=False)
        out["nvidia_smi"] = (q.stdout or q.stderr).strip()
    try:
        out["backends"] = devices_subprocess()
    except Exception as e:  # noqa: BLE001 - recorded, the report shows it
        out["backends_error"] = str(e)
    code = "from pyollama import _native; print(_native.system_info()); print(_native.backend_dir())"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    out["system_info"] = r.stdout.strip() or r.stderr[-1000:]
    for name in ("llama-server", "llama-bench"):
        with contextlib.suppress(Exception):
            out[name] = tool(name)
    with contextlib.suppress(Exception):
        r = subprocess.run([tool("llama-bench"), "--list-devices"], capture_output=True, text=True, timeout=60, check=False)
        out["llama_bench_devices"] = (r.stdout + r.stderr).strip()[-2000:]
    out["gpu"] = [d for d in out.get("backends", []) if d.get("type") in ("gpu", "igpu")]
    return out


# --- identity ------------------------------------------------------------------------------------------
def cmd_identity(args) -> dict:
    """Greedy tokens of pyollama's engine vs llama-server from the same build, per model and prompt.
    Same context, batch sizes and threads on both, every prompt evaluated as one batch; llama-server gets
    the token ids pyollama tokenized (tokenization is compared separately with /tokenize)."""
    from pyollama.engine import LLM
    from tests.engine.test_reference import PROMPTS

    prompts = PROMPTS[: args.prompts]
    exe = tool("llama-server")
    res: dict[str, Any] = {"config": {"n_predict": args.n_predict, "n_ctx": args.ctx, "threads": args.threads,
                                      "ngl": args.ngl, "prompts": len(prompts)}, "models": {}}
    for path in args.models:
        name = Path(path).stem
        port = free_port()
        logfile = Path(args.logdir) / f"identity-llama-server-{name}.log"
        logfile.parent.mkdir(parents=True, exist_ok=True)
        cmd = [exe, "-m", path, "--host", "127.0.0.1", "--port", str(port), "-c", str(args.ctx), "-np", "1",
               "-t", str(args.threads), "-tb", str(args.threads), "-b", "512", "-ub", "512", "--no-warmup",
               "-ngl", str(args.ngl), "--ctx-checkpoints", "0", "--cache-ram", "0"]
        entry: dict[str, Any] = {"path": path, "llama_server_args": cmd[1:], "prompts": []}
        res["models"][name] = entry
        t0 = time.monotonic()
        with open(logfile, "wb") as lf:
            proc = subprocess.Popen(cmd, stdout=lf, stderr=lf)
        try:
            wait_http(f"http://127.0.0.1:{port}/health", proc, 180, logfile)
            client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300)
            with LLM(path, num_ctx=args.ctx, num_batch=512, num_thread=args.threads,
                     num_gpu=-1 if args.ngl else 0) as llm:
                for i, prompt in enumerate(prompts):
                    ours_tok = llm.tokenize(prompt)
                    r = client.post("/tokenize", json={"content": prompt, "add_special": True, "parse_special": True})
                    r.raise_for_status()
                    theirs_tok = r.json()["tokens"]
                    r = client.post("/completion", json={"prompt": ours_tok, "n_predict": args.n_predict,
                                                         "temperature": 0, "cache_prompt": False,
                                                         "return_tokens": True, "stream": False})
                    r.raise_for_status()
                    upstream = r.json()["tokens"]
                    g = llm.complete(ours_tok, num_predict=args.n_predict, temperature=0, cache=False)
                    if upstream and llm.vocab.is_eog(upstream[-1]):
                        upstream = upstream[:-1]
                    ours = list(g.tokens)
                    n = max(len(ours), len(upstream))
                    equal = sum(1 for a, b in zip(ours, upstream) if a == b)
                    first = next((k for k, (a, b) in enumerate(zip(ours, upstream)) if a != b),
                                 None if len(ours) == len(upstream) else min(len(ours), len(upstream)))
                    entry["prompts"].append({"prompt": i, "prompt_tokens": len(ours_tok),
                                             "tokenize_equal": ours_tok == theirs_tok, "equal": equal, "total": n,
                                             "identical": ours == upstream, "first_divergence": first,
                                             "done_reason": g.done_reason,
                                             "ours": ours if ours != upstream else None,
                                             "upstream": upstream if ours != upstream else None})
                    log(f"identity {name} prompt {i}: {equal}/{n} equal, tokenization "
                        f"{'equal' if ours_tok == theirs_tok else 'DIFFERENT'}")
            client.close()
        except Exception as e:  # noqa: BLE001 - one model's failure is recorded, the next still runs
            entry["error"] = f"{type(e).__name__}: {e}"
            log(f"identity {name}: {entry['error']}")
        finally:
            stop(proc)
        entry["seconds"] = round(time.monotonic() - t0, 1)
        entry["equal"] = sum(p["equal"] for p in entry["prompts"])
        entry["total"] = sum(p["total"] for p in entry["prompts"])
        entry["identical_prompts"] = sum(p["identical"] for p in entry["prompts"])
        entry["tokenize_equal"] = sum(p["tokenize_equal"] for p in entry["prompts"])
        write_json(args.json, res)                  # partial results survive a kill
    return res


# --- placement ----------------------------------------------------------------------------------------
class Serve:
    """`pyollama serve` on a loopback port with its own store and log."""

    def __init__(self, store: Path, logfile: Path, env_extra: dict[str, str]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "PYOLLAMA_HOST": f"127.0.0.1:{self.port}", "PYOLLAMA_MODELS": str(store),
                    "PYOLLAMA_NOPRUNE": "1", "PYOLLAMA_KEEP_ALIVE": "-1", **env_extra}
        for k in ("OLLAMA_HOST", "OLLAMA_MODELS"):
            self.env.pop(k, None)
        self.logfile = logfile
        self.lf = open(logfile, "ab")  # noqa: SIM115 - open for the server's lifetime
        self.lf.write(f"\n===== pyollama serve {json.dumps(env_extra)} =====\n".encode())
        self.lf.flush()
        self.proc = subprocess.Popen([sys.executable, "-m", "pyollama", "serve"], env=self.env,
                                     stdout=self.lf, stderr=self.lf)
        try:
            wait_http(self.url + "/", self.proc, 120, logfile)
        except BaseException:
            stop(self.proc)
            self.lf.close()
            raise
        self.client = httpx.Client(base_url=self.url, timeout=600)

    def cli(self, *argv: str) -> str:
        r = subprocess.run([sys.executable, "-m", "pyollama", *argv], env=self.env, capture_output=True, text=True,
                           timeout=600, check=False)
        if r.returncode != 0:
            raise RuntimeError(f"pyollama {' '.join(argv)}: {r.stderr.strip()[-1500:]}")
        return r.stdout

    def generate(self, model: str, options: dict) -> dict:
        t0 = time.monotonic()
        r = self.client.post("/api/generate", json={"model": model, "prompt": "The capital of France is",
                                                    "raw": True, "stream": False,
                                                    "options": {"num_predict": 8, "temperature": 0, **options}})
        body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {"text": r.text}
        out = {"status": r.status_code, "seconds": round(time.monotonic() - t0, 2), "options": options}
        if r.status_code != 200:
            out["error"] = body.get("error", body)
        else:
            out.update({k: body.get(k) for k in ("load_duration", "eval_count", "eval_duration", "done_reason")})
        return out

    def ps(self) -> dict:
        return self.client.get("/api/ps").json()

    def close(self) -> None:
        self.client.close()
        stop(self.proc, 30)
        self.lf.close()


def kv_bytes(meta: dict, num_ctx: int, bytes_per: float = 2.0) -> int:
    """KV cache of ``num_ctx`` cells: n_layer × n_ctx × n_head_kv × head_dim × 2 (K and V) × bytes."""
    arch = meta["general.architecture"]
    n_embd, n_head = meta[f"{arch}.embedding_length"], meta[f"{arch}.attention.head_count"]
    n_head_kv = meta.get(f"{arch}.attention.head_count_kv", n_head)
    head_dim = n_embd // n_head
    return int(meta[f"{arch}.block_count"] * num_ctx * n_head_kv * head_dim * 2 * bytes_per)


def capped_overhead(free: int, need: int, kv16: int) -> dict:
    """OLLAMA_GPU_OVERHEAD that leaves the scheduler room for ``need - kv16/5`` bytes on a GPU with
    ``free`` bytes free: below the f16 need, above the q8_0 one (about need - 0.47 kv16)."""
    usable = need - kv16 // 5
    try:
        # room = free - overhead - GPU_MARGIN
        from pyollama.scheduler.fit import GPU_MARGIN
        overhead = max(0, int(free - GPU_MARGIN - usable))
        formula = "overhead = gpu_free - GPU_MARGIN - (size_vram_3a - kv_f16/5)"
        extra = {"gpu_margin": GPU_MARGIN}
    except ImportError:                                  # header estimate: room = (free - overhead) * 0.9
        from pyollama.scheduler.memory import GPU_HEADROOM
        overhead = max(0, int(free - usable / GPU_HEADROOM))
        formula = "overhead = gpu_free - (size_3a - kv_f16/5) / GPU_HEADROOM"
        extra = {"gpu_headroom": GPU_HEADROOM}
    return {"gpu_free": free, "need_f16_vram": need, "target_room": usable, **extra,
            "OLLAMA_GPU_OVERHEAD": overhead, "formula": formula}


def _ps_row(ps: dict, model: str) -> dict | None:
    return next((m for m in ps.get("models", []) if m.get("name", "").split(":")[0] == model), None)


def cmd_placement(args) -> dict:
    from pyollama.store import gguf_meta

    work = Path(args.work)
    store = work / "placement-store"
    shutil.rmtree(store, ignore_errors=True)
    store.mkdir(parents=True)
    logfile = Path(args.logdir) / "placement-serve.log"
    logfile.parent.mkdir(parents=True, exist_ok=True)
    logfile.write_bytes(b"")
    model, path = "gpubench", str(Path(args.model).resolve())
    meta = {k: v for k, v in gguf_meta.read(path, tensors=False).kv.items()
            if not isinstance(v, gguf_meta.SkippedArray)}
    res: dict[str, Any] = {"model": path, "num_ctx_small": args.ctx, "num_ctx_large": args.big_ctx,
                           "num_gpu_partial": args.num_gpu, "loads": []}

    def record(label: str, srv: Serve, options: dict) -> dict:
        try:
            g = srv.generate(model, options)
            load = {"label": label, "generate": g, "api_ps": srv.ps()}
        except Exception as e:  # noqa: BLE001 - recorded; the next load still runs
            load = {"label": label, "generate": {"status": None, "error": f"{type(e).__name__}: {e}"}, "api_ps": {}}
            res["loads"].append(load)
            log(f"placement {label}: {load['generate']['error']}")
            write_json(args.json, res)
            return load
        g = load["generate"]
        try:
            load["pyollama_ps"] = srv.cli("ps")
        except Exception as e:  # noqa: BLE001
            load["pyollama_ps"] = f"error: {e}"
        row = _ps_row(load["api_ps"], model) or {}
        load["size"], load["size_vram"] = row.get("size"), row.get("size_vram")
        load["kv_cache_type"] = row.get("kv_cache_type")
        res["loads"].append(load)
        log(f"placement {label}: status {g['status']} size {row.get('size')} size_vram {row.get('size_vram')} "
            f"kv_cache_type {row.get('kv_cache_type')} {g.get('error', '')}")
        write_json(args.json, res)
        return load

    srv = Serve(store, logfile, {})
    try:
        modelfile = work / "Modelfile.placement"
        modelfile.write_text(f"FROM {path}\n")
        t0 = time.monotonic()
        srv.cli("create", model, "-f", str(modelfile))
        res["create_seconds"] = round(time.monotonic() - t0, 1)
        record("1 default (all layers)", srv, {"num_ctx": args.ctx})
        record(f"2 num_gpu {args.num_gpu}", srv, {"num_ctx": args.ctx, "num_gpu": args.num_gpu})
        big = record(f"3a num_ctx {args.big_ctx}, f16 KV, no overhead", srv, {"num_ctx": args.big_ctx})
    finally:
        srv.close()

    # (3b) cap the usable GPU memory between what the big context needs on the GPU with a q8_0 KV cache
    # (about need - 0.47 kv16) and with f16 (need): at need - kv16/5, so that only a quantized KV cache
    # lets every layer fit. The scheduler's room per GPU is free - OLLAMA_GPU_OVERHEAD - GPU_MARGIN
    # (scheduler/fit.py); the server's own CUDA context, if it holds one, lowers it a little further,
    # which the window allows for.
    kv16 = kv_bytes(meta, args.big_ctx)
    res["kv_f16_bytes_at_big_ctx"] = kv16
    devs = devices_subprocess()
    gpus = [d for d in devs if d.get("type") in ("gpu", "igpu")]
    res["gpus"] = gpus
    need = big.get("size_vram") or big.get("size") or 0
    if gpus and need:
        res["capped"] = capped_overhead(gpus[0]["memory_free"], need, kv16)
        overhead = res["capped"]["OLLAMA_GPU_OVERHEAD"]
    else:
        overhead = 0
        res["capped"] = {"note": "no GPU (or no size from load 3a): OLLAMA_GPU_OVERHEAD=0, nothing to cap",
                         "OLLAMA_GPU_OVERHEAD": 0}
    srv = Serve(store, logfile, {"OLLAMA_GPU_OVERHEAD": str(overhead), "PYOLLAMA_GPU_OVERHEAD": str(overhead)})
    try:
        record(f"3b num_ctx {args.big_ctx}, OLLAMA_GPU_OVERHEAD={overhead}", srv, {"num_ctx": args.big_ctx})
    finally:
        srv.close()
    text = logfile.read_text(errors="replace")
    res["log_lines"] = [line for line in text.splitlines()
                        if re.search(r"load|offload|layer|GPU|VRAM|kv|KV|cache type|fit|placement|memory|=====",
                                     line)][-80:]
    return res


# --- report -------------------------------------------------------------------------------------------
def write_json(path: str | None, obj: Any) -> None:
    if path:
        tmp = Path(path).with_suffix(".tmp")
        tmp.write_text(json.dumps(_clean(obj), indent=1, default=str))
        tmp.replace(path)


def _clean(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def _f(x: Any, fmt: str = ".1f") -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, fmt)


def _gib(x: Any) -> str:
    return "–" if not isinstance(x, (int, float)) else f"{x / GIB:.2f} GiB"


STEP_ORDER = ("setup", "build", "env", "models", "identity", "engine", "serve", "placement")


def cmd_report(args) -> dict:
    work, out = Path(args.work), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    status = {}
    sf = work / "status.json"
    if sf.exists():
        status = json.loads(sf.read_text())
    results = {}
    for f in sorted((work / "results").glob("*.json")):
        with contextlib.suppress(ValueError):
            results[f.stem] = json.loads(f.read_text())
    report = {"meta": status.get("meta", {}), "steps": status.get("steps", {}), "results": results}
    write_json(str(out / "report.json"), report)

    md = [f"# pyollama GPU validation — {report['meta'].get('started', '')}", ""]
    meta = report["meta"]
    md += [f"- mode: {meta.get('mode', '?')}, host: {meta.get('host', '?')}, git: {meta.get('git', '?')}",
           f"- python: {meta.get('python', '?')}, budget: {meta.get('budget_s', '?')} s", ""]
    md += ["## Steps", "", "| step | status | seconds | note |", "|---|---|---:|---|"]
    steps = report["steps"]
    for name in sorted(steps, key=lambda n: (STEP_ORDER.index(n) if n in STEP_ORDER else 99, n)):
        s = steps[name]
        md.append(f"| {name} | {s.get('status', '')} | {_f(s.get('seconds'), '.0f')} | "
                  f"{str(s.get('note', '')).replace('|', '/')[:200]} |")
    md.append("")

    env = results.get("env")
    if env:
        md += ["## Devices", "", "```", env.get("nvidia_smi", "(no nvidia-smi)"), "```", ""]
        md += ["`pyollama.backends()`:", "", "```", json.dumps(env.get("backends", env.get("backends_error")),
                                                               indent=1), "```", ""]
        if env.get("system_info"):
            md += ["```", env["system_info"], "```", ""]
    build = results.get("build")
    if build:
        md += ["## Build", "", "| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in build.items()), ""]
    models = results.get("models")
    if models:
        md += ["## Models (random weights, seed 0)", "", "| model | parameters | file | shape | made in |",
               "|---|---:|---:|---|---:|"]
        for name, m in models.get("models", {}).items():
            md.append(f"| {name} | {m['params'] / 1e6:.0f} M | {m['bytes'] / 2**20:.0f} MiB | "
                      f"{json.dumps(m['shape'])} | {m['seconds']} s |")
        md.append("")
    ident = results.get("identity")
    if ident:
        md += ["## Token identity: pyollama engine vs llama-server (greedy)", "",
               f"config: {json.dumps(ident.get('config'))}", "",
               "| model | tokens equal | prompts identical | tokenization equal | note |", "|---|---:|---:|---:|---|"]
        for name, m in ident.get("models", {}).items():
            n = len(m.get("prompts", []))
            md.append(f"| {name} | {m.get('equal', 0)}/{m.get('total', 0)} | {m.get('identical_prompts', 0)}/{n} | "
                      f"{m.get('tokenize_equal', 0)}/{n} | {m.get('error', '')[:150]} |")
        md += ["", "| model | prompt | equal/total | first divergence |", "|---|---:|---:|---:|"]
        for name, m in ident.get("models", {}).items():
            for p in m.get("prompts", []):
                md.append(f"| {name} | {p['prompt']} | {p['equal']}/{p['total']} | {_f(p['first_divergence'], 'd')} |")
        md.append("")
    eng = [(k, v) for k, v in results.items() if k.startswith("engine")]
    if eng:
        md += ["## Engine: pyollama vs llama-bench (tokens/s, medians)", "",
               "| model | test | pyollama | llama-bench | ratio | config |", "|---|---|---:|---:|---:|---|"]
        for _, e in eng:
            cfg = e.get("config", {})
            for r in e.get("rows", []):
                md.append(f"| {Path(r['model']).stem} | {r['test']} | {_f(r['pyollama'])} ± {_f(r['pyollama_sd'])} | "
                          f"{_f(r['llama_bench'])} ± {_f(r['llama_bench_sd'])} | {_f(r['ratio'], '.3f')} | "
                          f"t={cfg.get('threads')} ngl={cfg.get('ngl')} reps={cfg.get('reps')} |")
        md.append("")
    serve = results.get("serve")
    if serve:
        cfg = serve.get("config", {})
        md += ["## Serving: pyollama serve vs llama-server (streaming, closed loop)", "",
               (f"model {Path(str(cfg.get('model'))).name}, slots {cfg.get('slots')}, ctx/slot {cfg.get('ctx')}, "
                f"requests/round {cfg.get('requests')}, rounds {cfg.get('rounds')}, tokens {cfg.get('tokens')}, "
                f"ngl {cfg.get('ngl')}; engine alone {_f(serve.get('engine_alone_ms_per_token'), '.2f')} ms/token"),
               "",
               "| concurrency | server | tok/s | ratio | tok/req | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | ITL p99 ms |",
               "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
        for r in sorted(serve.get("results", []), key=lambda r: (r["concurrency"], r["server"] != "pyollama")):
            md.append(f"| {r['concurrency']} | {r['server']} | {_f(r['tok_s'])} | {_f(r['ratio'], '.2f')} | "
                      f"{_f(r['per_req'])} | {_f(r['ttft50'], '.0f')} | {_f(r['ttft99'], '.0f')} | "
                      f"{_f(r['itl50'], '.2f')} | {_f(r['itl99'], '.2f')} |")
        md.append("")
    pl = results.get("placement")
    if pl:
        md += ["## Placement under pyollama serve", "",
               "| load | status | size | size_vram | kv_cache_type | PROCESSOR (pyollama ps) | error |",
               "|---|---:|---:|---:|---|---|---|"]
        for ld in pl.get("loads", []):
            proc = ""
            lines = str(ld.get("pyollama_ps", "")).splitlines()
            if len(lines) >= 2:
                m = re.search(r"(\d+% (?:GPU|CPU)|\d+%/\d+% CPU/GPU|Unknown)", lines[1])
                proc = m.group(1) if m else lines[1][:60]
            g = ld.get("generate", {})
            md.append(f"| {ld['label']} | {g.get('status')} | {_gib(ld.get('size'))} | {_gib(ld.get('size_vram'))} | "
                      f"{ld.get('kv_cache_type') or '–'} | {proc} | {str(g.get('error', ''))[:150]} |")
        md += ["", f"capped run: `{json.dumps(pl.get('capped'))}`", ""]
        for ld in pl.get("loads", []):
            md += [f"`/api/ps` after {ld['label']}:", "", "```json", json.dumps(ld.get("api_ps"), indent=1)[:2500],
                   "```", "", "```", str(ld.get("pyollama_ps", "")).strip(), "```", ""]
        if pl.get("log_lines"):
            md += ["serve log (loading/placement lines):", "", "```", *pl["log_lines"], "```", ""]
    errors = {k: v for k, v in steps.items() if v.get("status") not in ("ok", "skipped")}
    if errors:
        md += ["## Failures (last lines of each step's output)", ""]
        for k, v in errors.items():
            md += [f"### {k}: {v.get('status')}", "", "```", str(v.get("tail", ""))[-3000:], "```", ""]
    (out / "report.md").write_text("\n".join(md) + "\n")
    return report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("env")
    p.add_argument("--json")
    p = sub.add_parser("identity")
    p.add_argument("--json")
    p.add_argument("--models", nargs="+", required=True)
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--n-predict", type=int, default=32)
    p.add_argument("--ctx", type=int, default=4096)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--ngl", type=int, default=99)
    p.add_argument("--logdir", default=".")
    p = sub.add_parser("placement")
    p.add_argument("--json")
    p.add_argument("--model", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--ctx", type=int, default=4096)
    p.add_argument("--big-ctx", type=int, default=131072)
    p.add_argument("--num-gpu", type=int, default=8)
    p.add_argument("--logdir", default=".")
    p = sub.add_parser("report")
    p.add_argument("--work", required=True)
    p.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    fn = {"env": cmd_env, "identity": cmd_identity, "placement": cmd_placement, "report": cmd_report}[args.cmd]
    res = fn(args)
    if args.cmd != "report":
        write_json(args.json, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
