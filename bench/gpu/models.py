"""Random-weight test models for bench/gpu, generated where they run (nothing to carry).

    python -m bench.gpu.models --out DIR [--size full|dry] [--threads N] [--json FILE]

Writes into DIR, reusing files already there with the same recipe:

    llama1b-f16.gguf      Llama 3.2 1B's shape (n_embd 2048, 16 layers, 32 heads, 8 KV heads, n_ff 8192,
                          the llama-bpe vocabulary of 128256 tokens, tied embeddings): 1.24 B parameters
    llama1b-q4_k_m.gguf   the same, quantized to Q4_K_M by pyollama (llama.cpp's llama_model_quantize)
    small-f16.gguf        a ~50 M-parameter llama with the llama-spm vocabulary (32000 tokens)

``--size dry`` makes the same three files at toy sizes (for a CPU dry run). Weights are N(0, 0.02) with a
fixed seed, so every run writes the same bytes.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VOCAB_DIR = REPO / "vendor" / "llama.cpp" / "models"

SHAPES = {
    "full": {
        "llama1b": {"vocab": "ggml-vocab-llama-bpe.gguf", "n_embd": 2048, "n_layer": 16, "n_head": 32,
                    "n_head_kv": 8, "n_ff": 8192, "n_ctx": 131072},
        "small": {"vocab": "ggml-vocab-llama-spm.gguf", "n_embd": 512, "n_layer": 10, "n_head": 8, "n_head_kv": 4,
                  "n_ff": 1536, "n_ctx": 4096, "rope_freq_base": 10000.0},
    },
    "dry": {
        "llama1b": {"vocab": "ggml-vocab-llama-bpe.gguf", "n_embd": 256, "n_layer": 4, "n_head": 8,
                    "n_head_kv": 2, "n_ff": 768, "n_ctx": 131072},
        "small": {"vocab": "ggml-vocab-llama-spm.gguf", "n_embd": 128, "n_layer": 2, "n_head": 4, "n_head_kv": 2,
                  "n_ff": 384, "n_ctx": 4096, "rope_freq_base": 10000.0},
    },
}


def n_params(shape: dict, n_vocab: int) -> int:
    e, f, hd = shape["n_embd"], shape["n_ff"], shape["n_embd"] // shape["n_head"]
    per_layer = 2 * e * e + 2 * e * shape["n_head_kv"] * hd + 3 * e * f + 2 * e
    return n_vocab * e + shape["n_layer"] * per_layer + e


def generate(out: Path, size: str = "full", threads: int = 0, log=print) -> dict:
    from tests.tiny_gguf import write_random_llama

    out.mkdir(parents=True, exist_ok=True)
    res: dict = {"size": size, "models": {}}
    for key, shape in SHAPES[size].items():
        shape = dict(shape)
        vocab = VOCAB_DIR / shape.pop("vocab")
        if not vocab.is_file():
            raise SystemExit(f"{vocab} is missing (vendor/ not extracted?)")
        path = out / f"{key}-f16.gguf"
        recipe = json.dumps({"vocab": vocab.name, **shape, "seed": 0, "scale": 0.02, "draw": "chunked-normal-1"},
                            sort_keys=True)
        stamp = path.with_suffix(".recipe")
        t0 = time.monotonic()
        if path.exists() and stamp.exists() and stamp.read_text() == recipe:
            log(f"models: {path.name} is current")
        else:
            log(f"models: writing {path.name} ({shape})")
            write_random_llama(path, vocab, seed=0, scale=0.02, name=f"bench-gpu-{key}", threads=threads, **shape)
            stamp.write_text(recipe)
        from pyollama.store import gguf_meta

        n_vocab = gguf_meta.read(vocab, tensors=False).kv["tokenizer.ggml.tokens"].count
        res["models"][f"{key}-f16"] = {"path": str(path), "bytes": path.stat().st_size, "shape": shape,
                                       "vocab": vocab.name, "n_vocab": n_vocab,
                                       "params": n_params(shape, n_vocab),
                                       "seconds": round(time.monotonic() - t0, 1)}
    # Q4_K_M of the 1B, with pyollama's quantize (llama_model_quantize of the same build)
    src = out / "llama1b-f16.gguf"
    dst = out / "llama1b-q4_k_m.gguf"
    t0 = time.monotonic()
    if dst.exists() and dst.stat().st_mtime >= src.stat().st_mtime:
        log(f"models: {dst.name} is current")
    else:
        from pyollama import _native

        log(f"models: quantizing {src.name} to Q4_K_M ({threads or 'all'} threads)")
        tmp = dst.with_name(dst.name + ".tmp")
        _native.quantize(str(src), str(tmp), "Q4_K_M", nthread=threads)
        tmp.replace(dst)
    res["models"]["llama1b-q4_k_m"] = {**res["models"]["llama1b-f16"], "path": str(dst), "bytes": dst.stat().st_size,
                                       "seconds": round(time.monotonic() - t0, 1)}
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", choices=list(SHAPES), default="full")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--json", help="write what was made here")
    args = ap.parse_args(argv)
    res = generate(Path(args.out), args.size, args.threads)
    for name, m in res["models"].items():
        print(f"  {name}: {m['params'] / 1e6:.0f} M parameters, {m['bytes'] / 2**20:.0f} MiB, {m['seconds']} s")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
