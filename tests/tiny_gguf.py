"""Tiny random-weight GGUF files for fast tests, written with the `gguf` package.

One writer, :func:`write_tiny_gguf`, for every test that needs a model file:

* the store's tests take the defaults: a header-only model (no transformer blocks; token embeddings
  and the final norm, 32 * 16 + 16 parameters) with a made-up vocabulary, small enough to create,
  copy and push many times; the store reads it but never runs it;
* the engine, runner and API tests use :func:`write_tiny_llama`, the same writer with a real vocabulary
  (a vocab-only GGUF of the pinned llama.cpp tree, so tokenization is real) and two blocks: a llama
  that loads and decodes in milliseconds.

Outputs are gibberish, but deterministic for a given seed. :func:`write_tiny_lora` writes a LoRA
adapter in llama.cpp's format.
"""
from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

_COPY_KEYS = ("tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens",
              "tokenizer.ggml.scores", "tokenizer.ggml.token_type", "tokenizer.ggml.bos_token_id",
              "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id",
              "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token")

# general.file_type → the dtype of the 2-D weights, so the header says what the tensors hold.
_DTYPES = {gguf.LlamaFileType.ALL_F32: np.float32, gguf.LlamaFileType.MOSTLY_F16: np.float16}


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


def _add_shape(w: gguf.GGUFWriter, *, n_ctx: int, n_embd: int, n_layer: int, n_ff: int, n_head: int,
               n_head_kv: int, head_dim: int) -> None:
    """The hyperparameters every generated llama-like model writes."""
    w.add_context_length(n_ctx)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(head_dim)


def _random_tensors(w: gguf.GGUFWriter, rng: np.random.Generator, dtype=np.float32):
    """``t(name, *shape, scale=0.05)``: adds a tensor of normal random values to ``w``."""
    def t(name: str, *shape: int, scale: float = 0.05) -> None:
        w.add_tensor(name, (rng.standard_normal(shape) * scale).astype(dtype))
    return t


def save(w: gguf.GGUFWriter) -> None:
    """Write header, key/values and tensors, and close."""
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_tiny_gguf(path: Path, *, arch: str = "llama", seed: int = 0, name: str | None = None,
                    vocab: Path | None = None, n_vocab: int = 32, n_embd: int = 16, n_layer: int = 0,
                    n_head: int = 2, n_head_kv: int | None = None, n_ff: int | None = None, n_ctx: int = 128,
                    file_type: int = gguf.LlamaFileType.ALL_F32, pooling: bool = False,
                    chat_template: str | None = None, size_kib: int = 0) -> Path:
    """A small, well-formed GGUF model.

    ``vocab``: copy the tokenizer from this GGUF (``n_vocab`` is then its size), else ``n_vocab`` tokens
    ``t0``, ``t1``, ... . ``n_layer``: transformer blocks, with an output head; 0 writes the embeddings
    and final norm only. ``pooling`` makes it an embedding model; ``size_kib`` pads with an extra tensor
    so writers have several chunks to write."""
    rng = np.random.default_rng(seed)
    n_head_kv = n_head if n_head_kv is None else n_head_kv
    n_ff = 2 * n_embd if n_ff is None else n_ff
    head_dim = n_embd // n_head
    dtype = _DTYPES[gguf.LlamaFileType(file_type)]
    src = gguf.GGUFReader(vocab) if vocab is not None else None
    if src is not None:
        n_vocab = len(src.fields["tokenizer.ggml.tokens"].contents())

    w = gguf.GGUFWriter(path, arch)
    w.add_name(name if name is not None else f"tiny-{seed}")
    _add_shape(w, n_ctx=n_ctx, n_embd=n_embd, n_layer=n_layer, n_ff=n_ff, n_head=n_head, n_head_kv=n_head_kv,
               head_dim=head_dim)
    w.add_vocab_size(n_vocab)
    w.add_file_type(file_type)
    if pooling:
        w.add_pooling_type(gguf.PoolingType.MEAN)
    if src is not None:
        for key in _COPY_KEYS:
            if key in src.fields:
                _copy_field(w, src.fields[key])
    else:
        w.add_tokenizer_model("gpt2")
        w.add_token_list([f"t{i}" for i in range(n_vocab)])
        w.add_token_types([1] * n_vocab)
    if chat_template is not None:
        w.add_chat_template(chat_template)

    t = _random_tensors(w, rng, dtype)

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
    if n_layer:
        t("output.weight", n_vocab, n_embd, scale=0.5)
    if size_kib:
        w.add_tensor("pad.weight", rng.standard_normal((size_kib * 256,)).astype(np.float32))
    save(w)
    return path


# A 2-layer llama, n_embd 64, F16 weights: what llama.cpp loads and decodes in milliseconds.
_TINY_LLAMA = {"name": "tiny-random-llama", "n_embd": 64, "n_layer": 2, "n_head": 4, "n_head_kv": 2, "n_ff": 128,
               "n_ctx": 512, "file_type": gguf.LlamaFileType.MOSTLY_F16}


def write_tiny_llama(path: Path, vocab_gguf: Path, **overrides) -> Path:
    """:func:`write_tiny_gguf` with the runnable llama's shape and ``vocab_gguf``'s tokenizer."""
    return write_tiny_gguf(path, vocab=vocab_gguf, **{**_TINY_LLAMA, **overrides})


def write_tiny_mmproj(path: Path, *, n_embd_text: int = _TINY_LLAMA["n_embd"], n_embd: int = 32, n_ff: int = 64,
                      n_layer: int = 2, n_head: int = 2, image_size: int = 32, patch: int = 8, seed: int = 0) -> Path:
    """A random-weight vision projector (mmproj) for :func:`write_tiny_llama`: a LLaVA-style CLIP ViT
    (``clip.projector_type`` "mlp": patch embedding, class token, ``n_layer`` pre-norm blocks, a two-layer
    MLP into the text model's ``n_embd_text``), as libmtmd loads it at the pin. An image becomes
    ``(image_size / patch)²`` embeddings (16 by default). No vision model exists on PyPI; identity with
    upstream still holds on random weights."""
    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(path, "clip")
    w.add_string("clip.projector_type", "mlp")
    w.add_bool("clip.has_vision_encoder", True)
    w.add_bool("clip.use_gelu", True)
    w.add_uint32("clip.vision.image_size", image_size)
    w.add_uint32("clip.vision.patch_size", patch)
    w.add_uint32("clip.vision.embedding_length", n_embd)
    w.add_uint32("clip.vision.feed_forward_length", n_ff)
    w.add_uint32("clip.vision.projection_dim", n_embd_text)
    w.add_uint32("clip.vision.block_count", n_layer)
    w.add_uint32("clip.vision.attention.head_count", n_head)
    w.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-5)
    w.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    w.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])
    w.add_uint32("general.file_type", 0)

    t = _random_tensors(w, rng)

    def norm(name: str, n: int) -> None:
        w.add_tensor(f"{name}.weight", np.ones(n, np.float32))
        w.add_tensor(f"{name}.bias", np.zeros(n, np.float32))

    n_pos = (image_size // patch) ** 2 + 1
    t("v.patch_embd.weight", n_embd, 3, patch, patch, scale=0.5)
    t("v.class_embd", n_embd)
    t("v.position_embd.weight", n_pos, n_embd)
    norm("v.pre_ln", n_embd)
    for i in range(n_layer):
        for x in ("q", "k", "v"):
            t(f"v.blk.{i}.attn_{x}.weight", n_embd, n_embd)
            t(f"v.blk.{i}.attn_{x}.bias", n_embd)
        t(f"v.blk.{i}.attn_out.weight", n_embd, n_embd)
        t(f"v.blk.{i}.attn_out.bias", n_embd)
        norm(f"v.blk.{i}.ln1", n_embd)
        norm(f"v.blk.{i}.ln2", n_embd)
        t(f"v.blk.{i}.ffn_up.weight", n_ff, n_embd)        # ggml's ne order: [n_embd, n_ff]
        t(f"v.blk.{i}.ffn_up.bias", n_ff)
        t(f"v.blk.{i}.ffn_down.weight", n_embd, n_ff)
        t(f"v.blk.{i}.ffn_down.bias", n_embd)
    t("mm.0.weight", n_embd_text, n_embd, scale=1.0)
    t("mm.0.bias", n_embd_text)
    t("mm.2.weight", n_embd_text, n_embd_text, scale=1.0)
    t("mm.2.bias", n_embd_text)
    save(w)
    return path


def ppm_image(width: int, height: int, pixel) -> bytes:
    """A binary PPM (P6) image, which upstream's image loader (stb_image) reads: ``pixel(x, y)`` gives
    (r, g, b). Test images without an imaging library."""
    data = bytearray()
    for y in range(height):
        for x in range(width):
            data += bytes(pixel(x, y))
    return b"P6\n%d %d\n255\n" % (width, height) + bytes(data)


def png_image(width: int, height: int, pixel) -> bytes:
    """The same pixels as :func:`ppm_image`, as an 8-bit RGB PNG (zlib from the standard library)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = b"".join(b"\0" + b"".join(bytes(pixel(x, y)) for x in range(width)) for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def gradient_pixel(x: int, y: int) -> tuple[int, int, int]:
    return (x * 6 % 256, y * 10 % 256, 128)


def checker_pixel(x: int, y: int) -> tuple[int, int, int]:
    return (255,) * 3 if (x // 4 + y // 4) % 2 else (0,) * 3


PHOTO = Path(__file__).resolve().parents[1] / "vendor" / "llama.cpp" / "tools" / "mtmd" / "test-1.jpeg"


def sample_images() -> dict[str, bytes]:
    """The vision tests' images: a gradient and a checkerboard (PPM), and upstream's test photo (JPEG) when
    the vendored tree has it."""
    out = {"gradient": ppm_image(40, 24, gradient_pixel), "checker": ppm_image(32, 32, checker_pixel)}
    if PHOTO.exists():
        out["photo"] = PHOTO.read_bytes()
    return out


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
    save(w)
    return path


# Keys a tokenizer may need beyond _COPY_KEYS: BPE vocabularies (gpt2/llama-bpe) need their merges.
_COPY_KEYS_BPE = _COPY_KEYS + ("tokenizer.ggml.merges", "tokenizer.ggml.padding_token_id")
_CHUNK = 1 << 22     # elements per random stream: fixes the values whatever the thread count


def _normal(pool, seed: int, index: int, shape: tuple[int, ...], scale: float, dtype) -> np.ndarray:
    """N(0, scale²) values of ``shape`` in ``dtype``, drawn in fixed chunks of independent streams
    (seed, tensor index, chunk index) on the threads of ``pool`` (numpy releases the GIL while it draws)."""
    out = np.empty(int(np.prod(shape)), dtype)

    def fill(c: int) -> None:
        lo, hi = c * _CHUNK, min(out.size, (c + 1) * _CHUNK)
        a = np.random.default_rng([seed, index, c]).standard_normal(hi - lo, dtype=np.float32)
        a *= scale
        out[lo:hi] = a

    list(pool.map(fill, range((out.size + _CHUNK - 1) // _CHUNK)))
    return out.reshape(shape)


def write_random_llama(path: Path, vocab_gguf: Path, *, n_embd: int, n_layer: int, n_head: int, n_head_kv: int,
                       n_ff: int, n_ctx: int = 131072, seed: int = 0, scale: float = 0.02,
                       file_type: int = gguf.LlamaFileType.MOSTLY_F16, rope_freq_base: float = 500000.0,
                       tied: bool = True, name: str | None = None, threads: int = 0) -> Path:
    """A full-size Llama-architecture model with random weights (N(0, ``scale``), fixed ``seed``) and
    ``vocab_gguf``'s tokenizer (merges included), for speed and exactness checks at real sizes: e.g.
    Llama 3.2 1B's shape is n_embd 2048, n_layer 16, n_head 32, n_head_kv 8, n_ff 8192 with the
    llama-bpe vocabulary (1.24 B parameters, tied embeddings). Weights are drawn on ``threads`` threads
    (0: all cores) in float32, the same values whatever the thread count; norms are ones, so activations
    stay well scaled."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    from pyollama.store import gguf_meta

    dtype = _DTYPES[gguf.LlamaFileType(file_type)]
    head_dim = n_embd // n_head
    # pyollama's reader: a 128k-token vocabulary with its merges in about a second (GGUFReader: ~10 s)
    src = gguf_meta.read(vocab_gguf, max_array=None, tensors=False).kv
    n_vocab = len(src["tokenizer.ggml.tokens"])

    w = gguf.GGUFWriter(path, "llama")
    w.add_name(name if name is not None else f"random-llama-{n_embd}x{n_layer}-{seed}")
    _add_shape(w, n_ctx=n_ctx, n_embd=n_embd, n_layer=n_layer, n_ff=n_ff, n_head=n_head, n_head_kv=n_head_kv,
               head_dim=head_dim)
    w.add_rope_freq_base(rope_freq_base)
    w.add_vocab_size(n_vocab)
    w.add_file_type(file_type)
    for key in _COPY_KEYS_BPE:
        value = src.get(key)
        if isinstance(value, list):
            w.add_array(key, value)            # strings, int32 token types, float32 scores
        elif isinstance(value, str):
            w.add_string(key, value)
        elif isinstance(value, bool):
            w.add_bool(key, value)
        elif isinstance(value, int):
            w.add_uint32(key, value)           # token ids

    with ThreadPoolExecutor(threads or os.cpu_count() or 1) as pool:
        index = 0

        def t(tensor: str, *shape: int) -> None:
            nonlocal index
            index += 1
            w.add_tensor(tensor, _normal(pool, seed, index, shape, scale, dtype))

        t("token_embd.weight", n_vocab, n_embd)
        for i in range(n_layer):
            w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(n_embd, np.float32))
            t(f"blk.{i}.attn_q.weight", n_head * head_dim, n_embd)
            t(f"blk.{i}.attn_k.weight", n_head_kv * head_dim, n_embd)
            t(f"blk.{i}.attn_v.weight", n_head_kv * head_dim, n_embd)
            t(f"blk.{i}.attn_output.weight", n_embd, n_head * head_dim)
            w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(n_embd, np.float32))
            t(f"blk.{i}.ffn_gate.weight", n_ff, n_embd)
            t(f"blk.{i}.ffn_up.weight", n_ff, n_embd)
            t(f"blk.{i}.ffn_down.weight", n_embd, n_ff)
        w.add_tensor("output_norm.weight", np.ones(n_embd, np.float32))
        if not tied:
            t("output.weight", n_vocab, n_embd)
    save(w)
    return path


_COPY_KEYS_WPM = _COPY_KEYS + ("tokenizer.ggml.seperator_token_id", "tokenizer.ggml.padding_token_id",
                               "tokenizer.ggml.cls_token_id", "tokenizer.ggml.mask_token_id",
                               "tokenizer.ggml.token_type_count")


def write_tiny_bert(path: Path, vocab_gguf: Path, *, rerank: bool = False, seed: int = 0, n_embd: int = 64,
                    n_layer: int = 2, n_head: int = 4, n_ff: int = 128, n_ctx: int = 512) -> Path:
    """A random-weight BERT encoder with ``vocab_gguf``'s WordPiece tokenizer (the vendored bert-bge vocab):
    mean pooling, or with ``rerank`` a classifier head (``cls``, ``cls.output``: one score) and rank
    pooling, as llama.cpp's converter writes a cross-encoder reranker."""
    rng = np.random.default_rng(seed)
    src = gguf.GGUFReader(vocab_gguf)
    n_vocab = len(src.fields["tokenizer.ggml.tokens"].contents())
    w = gguf.GGUFWriter(path, "bert")
    w.add_name(f"tiny-bert-{'reranker' if rerank else 'embed'}-{seed}")
    w.add_context_length(n_ctx)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_layer_norm_eps(1e-12)
    w.add_causal_attention(False)
    w.add_pooling_type(gguf.PoolingType.RANK if rerank else gguf.PoolingType.MEAN)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    for key in _COPY_KEYS_WPM:
        if key in src.fields:
            _copy_field(w, src.fields[key])

    t = _random_tensors(w, rng)

    def norm(tensor: str) -> None:
        w.add_tensor(tensor + ".weight", (1 + rng.standard_normal(n_embd) * 0.05).astype(np.float32))
        t(tensor + ".bias", n_embd)

    t("token_embd.weight", n_vocab, n_embd, scale=0.5)
    t("token_types.weight", 2, n_embd)
    t("position_embd.weight", n_ctx, n_embd)
    norm("token_embd_norm")
    for i in range(n_layer):
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            t(f"blk.{i}.{name}.weight", n_embd, n_embd, scale=0.15)
            t(f"blk.{i}.{name}.bias", n_embd)
        norm(f"blk.{i}.attn_output_norm")
        t(f"blk.{i}.ffn_up.weight", n_ff, n_embd, scale=0.15)
        t(f"blk.{i}.ffn_up.bias", n_ff)
        t(f"blk.{i}.ffn_down.weight", n_embd, n_ff, scale=0.15)
        t(f"blk.{i}.ffn_down.bias", n_embd)
        norm(f"blk.{i}.layer_output_norm")
    if rerank:
        t("cls.weight", n_embd, n_embd, scale=0.3)
        t("cls.bias", n_embd)
        t("cls.output.weight", 1, n_embd, scale=1.0)
        t("cls.output.bias", 1)
    save(w)
    return path
