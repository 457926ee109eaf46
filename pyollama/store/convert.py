"""Hugging Face safetensors → GGUF, for BERT-family embedding models (numpy + the ``gguf`` package).

Why not the vendored ``convert_hf_to_gguf.py``: it imports torch and transformers (hundreds of MB, slow
to import on a 2-core machine) for what is, for BERT, a rename + dtype cast + vocabulary copy. This module
does the same steps the vendored ``BertModel`` converter does, with the same tensor-name map
(``gguf.get_tensor_name_map``), the same dtype policy (2-D weights F16, norms/biases/position and
token-type embeddings F32), the same phantom-space WordPiece vocabulary and ``gguf.SpecialVocab`` for the
special tokens — so llama.cpp loads the result as it loads the upstream converter's.

Only BERT is supported; anything else raises :class:`ConvertError` naming the architecture.

Thread-safety: pure function of its inputs; writes only the output path.
"""
from __future__ import annotations

import json
import re
import struct
from collections.abc import Iterator
from pathlib import Path

import gguf
import numpy as np

from pyollama.errors import ConvertError

SUPPORTED = ("BertModel", "BertForMaskedLM", "BertForSequenceClassification", "CamembertModel")

_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
           "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


# -- safetensors ----------------------------------------------------------------------------------
def read_safetensors(path: Path) -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(name, array)`` from a .safetensors file, memory-mapped; BF16 is widened to F32.
    (The format is an 8-byte header length, a JSON header, then raw little-endian data.)"""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise ConvertError(f"{path.name}: not a safetensors file")
        (n,) = struct.unpack("<Q", head)
        if n > 100 << 20:
            raise ConvertError(f"{path.name}: not a safetensors file")
        try:
            header = json.loads(f.read(n))
        except ValueError:
            raise ConvertError(f"{path.name}: not a safetensors file") from None
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        raw = data[start:end]
        shape = tuple(info["shape"])
        dt = info["dtype"]
        if dt == "BF16":
            arr = (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32).reshape(shape)
        elif dt in _DTYPES:
            arr = raw.view(_DTYPES[dt]).reshape(shape)
        else:
            raise ConvertError(f"{path.name}: tensor {name} has unsupported dtype {dt}")
        yield name, arr


def safetensors_files(directory: Path) -> list[Path]:
    files = sorted(directory.glob("model*.safetensors")) or sorted(directory.glob("*.safetensors"))
    if not files:
        raise ConvertError(f"no safetensors files found in {directory}")
    return files


# -- vocabulary -----------------------------------------------------------------------------------
def _vocab(directory: Path, vocab_size: int) -> tuple[list[str], list[int]]:
    """WordPiece tokens in id order with llama.cpp's phantom-space spelling, and their token types."""
    by_id: dict[int, str] = {}
    special: set[int] = set()
    tj = directory / "tokenizer.json"
    if tj.is_file():
        t = json.loads(tj.read_text(encoding="utf-8"))
        model = t.get("model") or {}
        if model.get("type") not in (None, "WordPiece"):
            raise ConvertError(f"tokenizer type {model.get('type')} is not WordPiece")
        by_id = {i: tok for tok, i in (model.get("vocab") or {}).items()}
        for a in t.get("added_tokens") or []:
            by_id[a["id"]] = a["content"]
            if a.get("special"):
                special.add(a["id"])
    elif (directory / "vocab.txt").is_file():
        for i, tok in enumerate((directory / "vocab.txt").read_text(encoding="utf-8").split("\n")):
            if tok:
                by_id[i] = tok
        special = {i for i, tok in by_id.items() if re.fullmatch(r"\[(PAD|UNK|CLS|SEP|MASK)\]", tok)}
    else:
        raise ConvertError(f"no tokenizer.json or vocab.txt in {directory}")
    size = max(vocab_size, max(by_id) + 1 if by_id else 0)
    tokens: list[str] = []
    types: list[int] = []
    for i in range(size):
        tok = by_id.get(i)
        if tok is None:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in special:
            tokens.append(tok)
            types.append(gguf.TokenType.CONTROL)
        else:
            tokens.append(tok[2:] if tok.startswith("##") else "\u2581" + tok)
            types.append(gguf.TokenType.NORMAL)
    return tokens, types


def _pooling(directory: Path) -> gguf.PoolingType | None:
    modules = directory / "modules.json"
    if not modules.is_file():
        return None
    for mod in json.loads(modules.read_text()):
        if str(mod.get("type", "")).endswith("Pooling"):
            cfg = json.loads((directory / mod["path"] / "config.json").read_text())
            if cfg.get("pooling_mode_mean_tokens"):
                return gguf.PoolingType.MEAN
            if cfg.get("pooling_mode_cls_token"):
                return gguf.PoolingType.CLS
            if cfg.get("pooling_mode_lasttoken"):
                return gguf.PoolingType.LAST
            raise ConvertError("only MEAN, CLS and LAST pooling are supported")
    return None


# -- tensors --------------------------------------------------------------------------------------
def _hf_name(name: str) -> str | None:
    name = name.removeprefix("bert.")
    if name.endswith(".gamma"):
        name = name[:-6] + ".weight"
    if name.endswith(".beta"):
        name = name[:-5] + ".bias"
    if name in ("embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias") or \
            name.startswith(("cls.predictions", "cls.seq_relationship")):
        return None   # pooling head and MLM heads are not used for embeddings
    return name


def convert_bert(src: str | Path, dst: str | Path, *, outtype: str = "f16") -> Path:
    """Convert the Hugging Face folder ``src`` to a GGUF at ``dst``; returns ``dst``."""
    src, dst = Path(src), Path(dst)
    cfg_path = src / "config.json"
    if not cfg_path.is_file():
        raise ConvertError(f"no config.json in {src}")
    hp = json.loads(cfg_path.read_text())
    archs = hp.get("architectures") or []
    if not archs or archs[0] not in SUPPORTED:
        raise ConvertError(f"unsupported architecture {archs[0] if archs else hp.get('model_type')!r}; "
                           f"safetensors import supports {', '.join(SUPPORTED)}")
    if outtype not in ("f16", "f32"):
        raise ConvertError(f"unsupported outtype {outtype}")
    n_layer = int(hp["num_hidden_layers"])
    tmap = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, n_layer)
    w = gguf.GGUFWriter(dst, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.BERT])
    w.add_type(gguf.GGUFType.MODEL)
    # The name comes from the files' content, not the folder: the API path converts from a temp folder
    # of links and must give the same bytes (the same blob) as converting the folder itself.
    if name := str(hp.get("_name_or_path") or "").rstrip("/").rsplit("/", 1)[-1]:
        w.add_name(name)
    w.add_block_count(n_layer)
    w.add_context_length(int(hp.get("max_position_embeddings", 512)))
    w.add_embedding_length(int(hp["hidden_size"]))
    w.add_feed_forward_length(int(hp["intermediate_size"]))
    w.add_head_count(int(hp["num_attention_heads"]))
    w.add_layer_norm_eps(float(hp.get("layer_norm_eps", 1e-12)))
    w.add_causal_attention(False)
    ftype = gguf.LlamaFileType.MOSTLY_F16 if outtype == "f16" else gguf.LlamaFileType.ALL_F32
    w.add_file_type(ftype)
    if (pooling := _pooling(src)) is not None:
        w.add_pooling_type(pooling)

    tokens, types = _vocab(src, int(hp.get("vocab_size", 0)))
    w.add_token_type_count(int(hp.get("type_vocab_size", 1)))
    w.add_tokenizer_model("bert")
    # The pre-tokenizer name matters only for BPE vocabularies; llama.cpp ignores it for WordPiece.
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    gguf.SpecialVocab(src, load_merges=False, n_vocab=len(tokens)).add_to_gguf(w)

    keep_f32 = ("position_embd.weight", "token_types.weight")
    seen = 0
    for path in safetensors_files(src):
        for name, arr in read_safetensors(path):
            hf = _hf_name(name)
            if hf is None:
                continue
            new = tmap.get_name(hf, try_suffixes=(".weight", ".bias"))
            if new is None:
                raise ConvertError(f"cannot map tensor {name!r} to a GGUF name")
            if arr.ndim <= 1 or new.endswith("_norm.weight") or new in keep_f32 or \
                    not new.endswith(".weight") or outtype == "f32":
                data = np.ascontiguousarray(arr, dtype=np.float32)
            else:
                data = np.ascontiguousarray(arr, dtype=np.float16)
            w.add_tensor(new, data)
            seen += 1
    if seen == 0:
        raise ConvertError(f"no tensors found in {src}")
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return dst
