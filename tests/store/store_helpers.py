"""Helpers for the store tests: tiny generated GGUFs and LoRA adapters, tree snapshots."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import gguf
import numpy as np


def write_tiny_gguf(path: Path, *, seed: int = 0, arch: str = "llama", n_embd: int = 16, n_vocab: int = 32,
                    kind: str = "model", file_type: int = 0, size_kib: int = 0, chat_template: str | None = None,
                    pooling: bool = False, tensor_dtype=np.float32) -> Path:
    """A small but well-formed GGUF (header, tokenizer, a few tensors). ``size_kib`` pads with an extra
    tensor so writers have several chunks to write."""
    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(path, arch)
    w.add_type(kind)
    w.add_name(f"tiny-{seed}")
    w.add_block_count(1)
    w.add_context_length(128)
    w.add_embedding_length(n_embd)
    w.add_feed_forward_length(2 * n_embd)
    w.add_head_count(2)
    w.add_file_type(file_type)
    if pooling:
        w.add_pooling_type(gguf.PoolingType.MEAN)
    w.add_tokenizer_model("gpt2")
    w.add_token_list([f"t{i}" for i in range(n_vocab)])
    w.add_token_types([1] * n_vocab)
    if chat_template is not None:
        w.add_chat_template(chat_template)
    w.add_tensor("token_embd.weight", rng.standard_normal((n_vocab, n_embd)).astype(tensor_dtype))
    w.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    if size_kib:
        w.add_tensor("pad.weight", rng.standard_normal((size_kib * 256,)).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def write_tiny_lora(path: Path, *, arch: str = "llama", n_embd: int = 576, rank: int = 4, seed: int = 0,
                    target: str = "blk.0.attn_q.weight") -> Path:
    """A LoRA adapter GGUF in llama.cpp's format (general.type=adapter, lora_a/lora_b pairs)."""
    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(path, arch)
    w.add_type(gguf.GGUFType.ADAPTER)
    w.add_string(gguf.Keys.Adapter.TYPE, "lora")
    w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(rank))
    w.add_tensor(target + ".lora_a", (rng.standard_normal((rank, n_embd)) * 0.01).astype(np.float32))
    w.add_tensor(target + ".lora_b", np.zeros((n_embd, rank), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def snapshot(root: Path) -> dict[str, str]:
    """Relative path → sha256 (directories as "dir") of everything under ``root``."""
    out: dict[str, str] = {}
    if not root.exists():
        return out
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root)] = "dir"
        for f in filenames:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, root)] = hashlib.sha256(Path(p).read_bytes()).hexdigest()
    return out


def sha256_file(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for c in iter(lambda: f.read(1 << 20), b""):
            h.update(c)
    return h.hexdigest()


def run(events) -> list[dict]:
    return list(events)
