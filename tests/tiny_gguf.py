"""Tiny random-weight GGUF models for fast tests, written with the `gguf` package.

A 2-layer llama (n_embd 64) with the real SentencePiece vocabulary of the pinned tree's
`ggml-vocab-llama-spm.gguf` (32000 tokens), so tokenization is real and decoding takes
milliseconds. Outputs are gibberish, but deterministic for a given seed.
"""
from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

_COPY_KEYS = ("tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens",
              "tokenizer.ggml.scores", "tokenizer.ggml.token_type", "tokenizer.ggml.bos_token_id",
              "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id",
              "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token")


def _copy_field(w: gguf.GGUFWriter, field) -> None:
    value = field.contents()
    kind = field.types[0]
    if kind == gguf.GGUFValueType.ARRAY:
        w.add_array(field.name, value)
    elif kind == gguf.GGUFValueType.STRING:
        w.add_string(field.name, value)
    elif kind == gguf.GGUFValueType.BOOL:
        w.add_bool(field.name, value)
    elif kind == gguf.GGUFValueType.FLOAT32:
        w.add_float32(field.name, value)
    else:
        w.add_uint32(field.name, value)


def write_tiny_llama(path: Path, vocab_gguf: Path, *, n_embd: int = 64, n_layer: int = 2, n_head: int = 4,
                     n_head_kv: int = 2, n_ff: int = 128, n_ctx: int = 512, seed: int = 0,
                     chat_template: str | None = None) -> Path:
    rng = np.random.default_rng(seed)
    src = gguf.GGUFReader(vocab_gguf)
    n_vocab = len(src.fields["tokenizer.ggml.tokens"].contents())
    head_dim = n_embd // n_head

    w = gguf.GGUFWriter(path, "llama")
    w.add_name("tiny-random-llama")
    w.add_context_length(n_ctx)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(head_dim)
    w.add_vocab_size(n_vocab)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    for key in _COPY_KEYS:
        if key in src.fields:
            _copy_field(w, src.fields[key])
    if chat_template:
        w.add_chat_template(chat_template)

    def t(name: str, *shape: int, scale: float = 0.05, dtype=np.float16):
        w.add_tensor(name, (rng.standard_normal(shape) * scale).astype(dtype))

    t("token_embd.weight", n_vocab, n_embd, scale=0.5)
    for i in range(n_layer):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(n_embd, np.float32))
        t(f"blk.{i}.attn_q.weight", n_embd, n_embd)
        t(f"blk.{i}.attn_k.weight", n_head_kv * head_dim, n_embd)
        t(f"blk.{i}.attn_v.weight", n_head_kv * head_dim, n_embd)
        t(f"blk.{i}.attn_output.weight", n_embd, n_embd)
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(n_embd, np.float32))
        t(f"blk.{i}.ffn_gate.weight", n_ff, n_embd)
        t(f"blk.{i}.ffn_up.weight", n_ff, n_embd)
        t(f"blk.{i}.ffn_down.weight", n_embd, n_ff)
    w.add_tensor("output_norm.weight", np.ones(n_embd, np.float32))
    t("output.weight", n_vocab, n_embd, scale=0.5)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
