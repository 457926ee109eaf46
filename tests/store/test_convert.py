"""safetensors import: MiniLM (BERT) → GGUF, through create (folder and API ``files``)."""
from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
import pytest
from store_helpers import run, sha256_file

from pyollama.store import CreateRequest, Store, create, create_from_modelfile, gguf_meta, model_path, show
from pyollama.store.convert import ConvertError, convert_bert, read_safetensors


@pytest.mark.model
def test_minilm_converts_to_bert_gguf(store: Store, minilm_dir: Path) -> None:
    ev = run(create_from_modelfile(store, "all-minilm", f"FROM {minilm_dir}\n"))
    assert ev[0]["status"] == "converting model"
    path = model_path(store, "all-minilm")          # the converted GGUF, for the engine's embedding test
    info = gguf_meta.read(path, max_array=None)
    kv = info.kv
    assert kv["general.architecture"] == "bert"
    assert kv["bert.embedding_length"] == 384 and kv["bert.block_count"] == 6
    assert kv["bert.context_length"] == 512 and kv["bert.feed_forward_length"] == 1536
    assert kv["bert.attention.head_count"] == 12 and kv["bert.attention.causal"] is False
    assert kv["bert.pooling_type"] == int(gguf.PoolingType.MEAN)
    assert kv["tokenizer.ggml.model"] == "bert" and len(kv["tokenizer.ggml.tokens"]) == 30522
    assert kv["tokenizer.ggml.tokens"][101] == "[CLS]" and kv["tokenizer.ggml.tokens"][2023] == "\u2581this"
    assert kv["tokenizer.ggml.token_type"][101] == int(gguf.TokenType.CONTROL)
    assert kv["tokenizer.ggml.bos_token_id"] == 101 and kv["tokenizer.ggml.unknown_token_id"] == 100
    assert kv["tokenizer.ggml.seperator_token_id"] == 102 and kv["tokenizer.ggml.padding_token_id"] == 0
    assert kv["general.file_type"] == 1
    tensors = {t.name: t for t in info.tensors}
    want = {"token_embd.weight", "position_embd.weight", "token_types.weight", "token_embd_norm.weight",
            "token_embd_norm.bias"}
    for i in range(6):
        for n in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_up", "ffn_down"):
            want |= {f"blk.{i}.{n}.weight", f"blk.{i}.{n}.bias"}
        for n in ("attn_output_norm", "layer_output_norm"):
            want |= {f"blk.{i}.{n}.weight", f"blk.{i}.{n}.bias"}
    assert set(tensors) == want
    assert tensors["token_embd.weight"].shape == (384, 30522) and tensors["token_embd.weight"].type.name == "F16"
    assert tensors["position_embd.weight"].type.name == "F32"
    assert tensors["blk.0.attn_q.bias"].type.name == "F32"
    # Values survive: the F16 word embeddings equal the safetensors ones rounded to F16.
    src = dict(read_safetensors(minilm_dir / "model.safetensors"))["embeddings.word_embeddings.weight"]
    r = gguf.GGUFReader(path)
    emb = next(t for t in r.tensors if t.name == "token_embd.weight")
    assert np.array_equal(np.asarray(emb.data), src.astype(np.float16))
    shown = show(store, "all-minilm")
    assert shown["capabilities"] == ["embedding"]
    assert shown["details"]["family"] == "bert" and shown["details"]["quantization_level"] == "F16"
    assert shown["details"]["parameter_size"] == "22.57M"


@pytest.mark.model
def test_api_files_give_the_same_gguf(store: Store, minilm_dir: Path) -> None:
    """The server path (files uploaded as blobs, converted from links) gives the very same GGUF blob."""
    files = {}
    for p in sorted(minilm_dir.rglob("*")):
        if p.is_file() and (p.suffix in (".json", ".safetensors", ".txt")):
            files[str(p.relative_to(minilm_dir))] = store.blobs.put_file(p).digest
    run(create(store, CreateRequest.from_api({"model": "api-minilm", "files": files})))
    run(create(store, CreateRequest(model="dir-minilm", from_path=minilm_dir)))
    assert sha256_file(model_path(store, "api-minilm")) == sha256_file(model_path(store, "dir-minilm"))
    assert not [p for p in store.root.iterdir() if p.name.startswith(".tmp-")]   # work folder removed


def test_unsupported_architecture(tmp_path: Path, store: Store) -> None:
    d = tmp_path / "llama"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    (d / "model.safetensors").write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(ConvertError, match="unsupported architecture 'LlamaForCausalLM'"):
        convert_bert(d, tmp_path / "out.gguf")
    with pytest.raises(ConvertError, match="unsupported architecture"):
        run(create(store, CreateRequest(model="x", from_path=d)))
    assert store.blobs.digests() == []


def test_bf16_safetensors_are_widened(tmp_path: Path) -> None:
    values = np.array([1.0, -2.5, 3.140625], dtype=np.float32)
    bf16 = (values.view(np.uint32) >> 16).astype(np.uint16)
    header = json.dumps({"w": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 6]}}).encode()
    p = tmp_path / "x.safetensors"
    p.write_bytes(len(header).to_bytes(8, "little") + header + bf16.tobytes())
    ((name, arr),) = list(read_safetensors(p))
    assert name == "w" and arr.dtype == np.float32 and arr.tolist() == values.tolist()


def _native_available() -> bool:
    try:
        from pyollama import _native  # noqa: F401
    except ImportError:
        return False
    return True


def _bert_reference(weights: dict[str, np.ndarray], ids: list[int]) -> np.ndarray:
    """MiniLM's sentence embedding in plain numpy from the safetensors weights (BERT + mean pooling)."""
    import math
    w = {k: np.asarray(v, dtype=np.float32) for k, v in weights.items()}
    erf = np.vectorize(math.erf)

    def ln(x: np.ndarray, p: str) -> np.ndarray:
        m = x.mean(-1, keepdims=True)
        v = ((x - m) ** 2).mean(-1, keepdims=True)
        return (x - m) / np.sqrt(v + 1e-12) * w[p + ".weight"] + w[p + ".bias"]

    def lin(x: np.ndarray, p: str) -> np.ndarray:
        return x @ w[p + ".weight"].T + w[p + ".bias"]

    n, heads, dh = len(ids), 12, 32
    x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n]
         + w["embeddings.token_type_embeddings.weight"][0])
    x = ln(x, "embeddings.LayerNorm")
    for i in range(6):
        p = f"encoder.layer.{i}."
        q, k, v = (lin(x, p + f"attention.self.{t}").reshape(n, heads, dh).transpose(1, 0, 2)
                   for t in ("query", "key", "value"))
        a = q @ k.transpose(0, 2, 1) / math.sqrt(dh)
        a = np.exp(a - a.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        x = ln(x + lin((a @ v).transpose(1, 0, 2).reshape(n, 384), p + "attention.output.dense"),
               p + "attention.output.LayerNorm")
        h = lin(x, p + "intermediate.dense")
        x = ln(x + lin(0.5 * h * (1 + erf(h / math.sqrt(2))), p + "output.dense"), p + "output.LayerNorm")
    m = x.mean(0)
    return m / np.linalg.norm(m)


@pytest.mark.model
@pytest.mark.skipif(not _native_available(), reason="pyollama._native (the engine extension) cannot be imported")
def test_converted_minilm_embeds_like_the_original(store: Store, minilm_dir: Path) -> None:
    """llama.cpp's embedding of the converted GGUF equals a numpy BERT run on the original weights."""
    from pyollama.engine.llm import LLM
    run(create(store, CreateRequest(model="all-minilm", from_path=minilm_dir)))
    weights = dict(read_safetensors(minilm_dir / "model.safetensors"))
    with LLM(str(model_path(store, "all-minilm")), embedding=True, num_ctx=512) as llm:
        texts = ["hello world", "The quick brown fox jumps over the lazy dog."]
        got = llm.embed(texts)
        assert llm.tokenize("hello world", parse_special=False) == [101, 7592, 2088, 102]   # [CLS] hello world [SEP]
        for text, row in zip(texts, got):
            ref = _bert_reference(weights, llm.tokenize(text, parse_special=False))
            assert float(ref @ row) > 0.9999
