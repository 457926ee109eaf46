"""GGUF header reading for show/list/create: key/values and tensor infos, never the weights.

Why not ``gguf.GGUFReader``: it builds a numpy view per element of every array, which took 4.8 s for
SmolLM2's header and 24 s for Gemma 3's (262k-token vocabulary) on the project machine — far too slow for
``/api/show``. This reader walks the same format with ``struct`` over an ``mmap`` and *skips* arrays longer
than a limit unless asked for them (``/api/show`` elides arrays of more than 5 elements unless verbose).
The type enums and block sizes come from the ``gguf`` package, and a test checks this reader against
``GGUFReader`` on the real models (tests/store/test_gguf_meta.py).

The reader refuses (InvalidGGUF) every header that llama.cpp's own parser refuses, so create never stores a
file nothing can load; :func:`check_loadable` also refuses the valid headers that make llama.cpp abort the
process instead of failing the load. Both are fuzzed with mutated headers (tests/store/test_gguf_fuzz.py).

Thread-safety: pure functions; each call opens its own mapping (check_loadable remembers the files that
passed in a thread-safe ``lru_cache``).
"""
from __future__ import annotations

import functools
import mmap
import os
import struct
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType, LlamaFileType

from pyollama.errors import InvalidGGUF

GGUF_MAGIC = b"GGUF"
_SCALAR = {
    GGUFValueType.UINT8: "<B", GGUFValueType.INT8: "<b", GGUFValueType.UINT16: "<H",
    GGUFValueType.INT16: "<h", GGUFValueType.UINT32: "<I", GGUFValueType.INT32: "<i",
    GGUFValueType.FLOAT32: "<f", GGUFValueType.BOOL: "<?", GGUFValueType.UINT64: "<Q",
    GGUFValueType.INT64: "<q", GGUFValueType.FLOAT64: "<d",
}


@dataclass(frozen=True)
class SkippedArray:
    """An array that was not read (longer than the caller's limit)."""

    type: GGUFValueType
    count: int


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]          # GGUF order: ne[0] (innermost) first, as Ollama shows it
    type: GGMLQuantizationType
    offset: int                     # relative to the data section

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def n_bytes(self) -> int:
        block, size = GGML_QUANT_SIZES[self.type]
        return self.n_elements // block * size


@dataclass
class GGUFInfo:
    path: Path
    version: int
    kv: dict[str, Any]
    tensors: list[TensorInfo] = field(default_factory=list)
    data_offset: int = 0

    # -- Ollama's derived fields ------------------------------------------------------------------
    @property
    def architecture(self) -> str:
        return str(self.kv.get("general.architecture", ""))

    def arch_key(self, key: str) -> Any:
        return self.kv.get(f"{self.architecture}.{key}")

    @property
    def kind(self) -> str:
        """``general.type``: "model", "adapter", "projector", ... ("model" when absent)."""
        return str(self.kv.get("general.type") or "model")

    @property
    def parameter_count(self) -> int:
        """Sum of tensor elements (Ollama overrides ``general.parameter_count`` with this)."""
        return sum(t.n_elements for t in self.tensors)

    @property
    def file_type(self) -> int | None:
        v = self.kv.get("general.file_type")
        return int(v) if isinstance(v, int) else None

    @property
    def file_type_name(self) -> str:
        return file_type_name(self.file_type)

    @property
    def context_length(self) -> int | None:
        v = self.arch_key("context_length")
        return int(v) if isinstance(v, int) else None

    @property
    def embedding_length(self) -> int | None:
        v = self.arch_key("embedding_length")
        return int(v) if isinstance(v, int) else None

    @property
    def chat_template(self) -> str | None:
        v = self.kv.get("tokenizer.chat_template")
        return v if isinstance(v, str) else None

    @property
    def is_embedding(self) -> bool:
        return self.arch_key("pooling_type") is not None

    @property
    def is_reranker(self) -> bool:
        """Rank pooling: a classifier head that scores a (query, document) pair."""
        return self.arch_key("pooling_type") == POOLING_RANK

    @property
    def has_vision(self) -> bool:
        return self.arch_key("vision.block_count") is not None


POOLING_RANK = 4     # llama_pooling_type LLAMA_POOLING_TYPE_RANK


def file_type_name(ft: int | None) -> str:
    """llama_ftype number → Ollama's quantization level string (``Q4_K_M``, ``F16``, ...)."""
    if ft is None:
        return "unknown"
    try:
        name = LlamaFileType(ft).name
    except ValueError:
        return "unknown"
    return {"ALL_F32": "F32", "MOSTLY_MXFP4_MOE": "MXFP4", "GUESSED": "unknown"}.get(
        name, name.removeprefix("MOSTLY_"))


def human_number(n: int) -> str:
    """Ollama's ``format.HumanNumber`` (parameter size: ``134.52M``, ``8.0B``, ``22K``)."""
    if n >= 1_000_000_000:
        x = n / 1_000_000_000
        return f"{x:.0f}B" if x == int(x) else f"{x:.1f}B"
    if n >= 1_000_000:
        x = n / 1_000_000
        return f"{x:.0f}M" if x == int(x) else f"{x:.2f}M"
    if n >= 1_000:
        return f"{n / 1000:.0f}K"
    return str(n)


class _Cursor:
    def __init__(self, buf: mmap.mmap | bytes, path: Path):
        self.buf = buf
        self.pos = 0
        self.path = path

    def need(self, n: int) -> None:
        if n < 0 or self.pos + n > len(self.buf):
            raise InvalidGGUF(f"{self.path.name}: truncated GGUF header")

    def unpack(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        self.need(size)
        v = struct.unpack_from(fmt, self.buf, self.pos)[0]
        self.pos += size
        return v

    def raw_string(self) -> bytes:
        n = self.unpack("<Q")
        self.need(n)
        self.pos += n
        return bytes(self.buf[self.pos - n:self.pos])

    def string(self) -> str:
        return self.raw_string().decode("utf-8", errors="replace")

    def skip_string(self) -> None:
        n = self.unpack("<Q")
        self.need(n)
        self.pos += n


def _vtype(c: _Cursor) -> GGUFValueType:
    raw = c.unpack("<I")
    try:
        return GGUFValueType(raw)
    except ValueError:
        raise InvalidGGUF(f"{c.path.name}: unknown GGUF value type {raw}") from None


def _value(c: _Cursor, key: str, vt: GGUFValueType, max_array: int | None, raw: bool = False) -> Any:
    if vt == GGUFValueType.STRING:
        return c.string()
    if vt == GGUFValueType.ARRAY:
        et = _vtype(c)
        if et == GGUFValueType.ARRAY:
            # llama.cpp's parser refuses these; reading them recursively would also let a crafted header
            # nest deeper than Python's recursion limit
            raise InvalidGGUF(f"{c.path.name}: key {key!r} is an array of arrays, which llama.cpp does not "
                              "support")
        count = c.unpack("<Q")
        if max_array is not None and count > max_array:
            if et == GGUFValueType.STRING:
                for _ in range(count):
                    c.skip_string()
            else:
                size = struct.calcsize(_SCALAR[et]) * count
                c.need(size)
                c.pos += size
            return SkippedArray(et, count)
        if et == GGUFValueType.STRING:
            return [c.raw_string() for _ in range(count)] if raw else [c.string() for _ in range(count)]
        fmt = _SCALAR[et]
        size = struct.calcsize(fmt)
        c.need(size * count)
        vals = list(struct.unpack_from(f"<{count}{fmt[1]}", c.buf, c.pos))
        c.pos += size * count
        return vals
    return c.unpack(_SCALAR[vt])


# Limits of llama.cpp's own GGUF parser (ggml/src/gguf.cpp): a file past them is refused there, so it is
# refused here too, before create stores it or a loader sees it.
GGML_MAX_DIMS = 4
GGML_MAX_NAME = 64              # bytes, with the terminating NUL
_INT64_MAX = 2**63 - 1


def _tensor_info(c: _Cursor, i: int, names: set[bytes]) -> TensorInfo:
    raw = c.raw_string()
    name = raw.decode("utf-8", errors="replace")
    where = c.path.name
    if len(raw) >= GGML_MAX_NAME:
        raise InvalidGGUF(f"{where}: tensor {i} has a name of {len(raw)} bytes (at most {GGML_MAX_NAME - 1})")
    if raw in names:
        raise InvalidGGUF(f"{where}: duplicate tensor {name!r}")
    names.add(raw)
    n_dims = c.unpack("<I")
    if n_dims > GGML_MAX_DIMS:
        raise InvalidGGUF(f"{where}: tensor {name} has {n_dims} dimensions (at most {GGML_MAX_DIMS})")
    shape = tuple(c.unpack("<Q") for _ in range(n_dims))
    if any(d > _INT64_MAX for d in shape):
        raise InvalidGGUF(f"{where}: tensor {name} has a negative dimension {shape}")
    n = shape[0] if shape else 1
    for d in shape[1:]:          # upstream's overflow test, step by step (a later 0 does not undo it)
        if d > 1 and _INT64_MAX // d < n:
            raise InvalidGGUF(f"{where}: tensor {name} has too many elements {shape}")
        n *= d
    raw_type = c.unpack("<I")
    try:
        ttype = GGMLQuantizationType(raw_type)
    except ValueError:
        raise InvalidGGUF(f"{where}: tensor {name} has unknown type {raw_type}") from None
    block, _ = GGML_QUANT_SIZES[ttype]
    row = shape[0] if shape else 1
    if row % block:
        raise InvalidGGUF(f"{where}: tensor {name} has rows of {row} elements, not a multiple of "
                          f"{ttype.name}'s block of {block}")
    return TensorInfo(name, shape, ttype, c.unpack("<Q"))


def _check_data(path: Path, infos: list[TensorInfo], data_offset: int, align: int, size: int) -> None:
    """Tensors back to back in header order, each padded to ``align``, all inside the file (gguf.cpp and
    llama_model_loader refuse anything else)."""
    expected = 0
    for t in infos:
        if t.offset != expected:
            raise InvalidGGUF(f"{path.name}: tensor {t.name} is at data offset {t.offset}, expected "
                              f"{expected} (corrupt tensor table)")
        n = t.n_bytes
        if data_offset + t.offset + n > size:
            raise InvalidGGUF(f"{path.name}: tensor {t.name} ends past the end of the file (truncated or "
                              "corrupt)")
        expected += (n + align - 1) // align * align


def read(path: str | Path, *, max_array: int | None = 5, tensors: bool = True, full: Collection[str] = (),
         raw_strings: Collection[str] = ()) -> GGUFInfo:
    """Read a GGUF header. Arrays with more than ``max_array`` elements become :class:`SkippedArray`
    (``None`` reads everything), except those of the keys in ``full`` and ``raw_strings`` (string arrays
    read as undecoded bytes). With ``tensors`` the tensor table is read and checked too (shapes, types,
    offsets, data inside the file).

    Everything llama.cpp's GGUF parser refuses raises InvalidGGUF, never another exception."""
    path = Path(path)
    if not path.is_file():
        raise InvalidGGUF(f"{path}: no such file")
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < 24:
            raise InvalidGGUF(f"{path.name}: not a GGUF file")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            if mm[:4] != GGUF_MAGIC:
                raise InvalidGGUF(f"{path.name}: not a GGUF file")
            c = _Cursor(mm, path)
            c.pos = 4
            version = c.unpack("<I")
            if version not in (2, 3):
                raise InvalidGGUF(f"{path.name}: unsupported GGUF version {version}")
            n_tensors = c.unpack("<Q")
            n_kv = c.unpack("<Q")
            if n_kv > size or n_tensors > size:
                raise InvalidGGUF(f"{path.name}: corrupt GGUF header")
            kv: dict[str, Any] = {}
            align = 32
            for i in range(n_kv):
                key = c.string()
                if not key:
                    raise InvalidGGUF(f"{path.name}: key {i} is empty")
                if key in kv:
                    raise InvalidGGUF(f"{path.name}: duplicate key {key!r}")
                vt = _vtype(c)
                whole = key in full or key in raw_strings
                kv[key] = _value(c, key, vt, None if whole else max_array, key in raw_strings)
                if key == "general.alignment":
                    align = kv[key]
                    if vt != GGUFValueType.UINT32 or align <= 0 or align & (align - 1):
                        raise InvalidGGUF(f"{path.name}: general.alignment must be a power of two (uint32), "
                                          f"not {align!r}")
            infos: list[TensorInfo] = []
            if tensors:
                names: set[bytes] = set()
                infos = [_tensor_info(c, i, names) for i in range(n_tensors)]
                data_offset = (c.pos + align - 1) // align * align
                _check_data(path, infos, data_offset, align, size)
            else:
                data_offset = 0
    return GGUFInfo(path, version, kv, infos, data_offset)


# Header values that llama.cpp asserts on (GGML_ASSERT/GGML_ABORT: the process aborts) where it should refuse
# the file; found by tests/store/test_gguf_fuzz.py. The numbers are upstream's, at the pin.
MAX_LAYERS = 512                 # LLAMA_MAX_LAYERS (src/llama-hparams.h)
MAX_EXPERTS = 1024               # LLAMA_MAX_EXPERTS
TENSOR_ALIGNMENT = 32            # ggml's CPU buffer from a mapped file needs tensors at multiples of this
ROPE_SCALING_TYPES = ("none", "linear", "yarn", "longrope")
_BYTE_TOKEN = 6                  # llama_token_type LLAMA_TOKEN_TYPE_BYTE
# Mixture-of-experts architectures whose tensor loaders assert experts (src/models/<arch>.cpp)
_EXPERTS_REQUIRED = ("bailingmoe2", "glm4moe", "grovemoe", "llada-moe", "smallthinker")


def check_loadable(path: str | Path, *, vocab_only: bool = False) -> None:
    """Refuse (InvalidGGUF) a file that :func:`read` refuses, or whose header would make llama.cpp abort the
    process instead of failing the load. Call it before every ``_native`` load of a file (model, no-alloc
    measurement, quantization): the server measures and quantizes in its own process, so an abort there takes
    the server down. Reads the token list and types in full (0.05 s for SmolLM2, 0.16 s for Gemma 3's 262k
    tokens); a file that passed is remembered until its size or mtime changes."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise InvalidGGUF(f"{path}: {e.strerror or e}") from None
    _check_loadable(str(path), st.st_size, st.st_mtime_ns, vocab_only)


@functools.lru_cache(maxsize=64)
def _check_loadable(path: str, size: int, mtime_ns: int, vocab_only: bool) -> None:
    info = read(path, max_array=MAX_LAYERS, full=("tokenizer.ggml.token_type",),
                raw_strings=("tokenizer.ggml.tokens",))
    why = _abort_reason(info, vocab_only)
    if why:
        raise InvalidGGUF(f"{info.path.name}: {why}; llama.cpp cannot load this file")


def _abort_reason(info: GGUFInfo, vocab_only: bool) -> str | None:
    for t in info.tensors:
        # a power-of-two general.alignment below 32 (ggml-backend.cpp: "buffer pointer must be aligned")
        if (info.data_offset + t.offset) % TENSOR_ALIGNMENT:
            return f"tensor {t.name} is not {TENSOR_ALIGNMENT}-byte aligned in the file"
    tokens = info.kv.get("tokenizer.ggml.tokens")
    if isinstance(tokens, list):
        # llama-vocab.cpp asserts that no two tokens are the same string (an empty one is named [EMPTY_<id>])
        seen: set[bytes] = set()
        for i, t in enumerate(tokens):
            t = t or f"[EMPTY_{i}]".encode()
            if t in seen:
                return f"token {i} ({t.decode('utf-8', 'replace')!r}) is in the vocabulary twice"
            seen.add(t)
    types = info.kv.get("tokenizer.ggml.token_type")
    if info.kv.get("tokenizer.ggml.model") == "bert" and isinstance(types, list) and _BYTE_TOKEN in types:
        return "a WordPiece (bert) vocabulary with byte tokens"          # llama-vocab.cpp token_to_byte
    if vocab_only or info.architecture == "clip":                        # neither reads the hyperparameters
        return None
    arch = info.architecture

    def u(key: str) -> int | None:
        v = info.arch_key(key)
        return v if isinstance(v, int) and not isinstance(v, bool) else None

    # llama_model_base::load_hparams (src/llama-model.cpp)
    n_layer = u("block_count")
    if n_layer is not None and not 0 < n_layer <= MAX_LAYERS:
        return f"{arch}.block_count is {n_layer}, not 1..{MAX_LAYERS}"
    nextn = u("nextn_predict_layers")
    if nextn is not None and n_layer is not None and nextn > n_layer:
        return f"{arch}.nextn_predict_layers {nextn} is more than the {n_layer} blocks"
    n_expert = u("expert_count") or 0
    used = info.arch_key("expert_used_count")
    if isinstance(used, list) and n_layer is not None:
        used = max((v for v in used[:n_layer] if isinstance(v, int)), default=0)
    used = used if isinstance(used, int) and not isinstance(used, bool) else 0
    groups, group_used = u("expert_group_count") or 0, u("expert_group_used_count") or 0
    if n_expert > MAX_EXPERTS or used > n_expert:
        return f"{arch}.expert_count {n_expert} with {used} used is out of range (at most {MAX_EXPERTS})"
    bad_groups = groups > 1 and (n_expert % groups or not 0 < group_used < groups)
    if n_expert and (not used or groups >= n_expert or bad_groups):
        return (f"{arch} expert counts are inconsistent (experts {n_expert}, used {used}, groups {groups}, "
                f"groups used {group_used})")
    if not n_expert and groups:
        return f"{arch}.expert_group_count {groups} without experts"
    if not n_expert and arch in _EXPERTS_REQUIRED:
        return f"{arch} is a mixture of experts, but {arch}.expert_count is missing or 0"
    rope = info.arch_key("rope.scaling.type")
    if isinstance(rope, str) and rope not in ROPE_SCALING_TYPES:
        return f"{arch}.rope.scaling.type {rope!r} is not one of {', '.join(ROPE_SCALING_TYPES)}"
    return None


def is_gguf(path: str | Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == GGUF_MAGIC
    except OSError:
        return False


def json_value(v: Any) -> Any:
    """A header value as JSON for ``model_info``: skipped arrays become ``[]`` (Ollama's elision)."""
    if isinstance(v, SkippedArray):
        return []
    return v
