"""GGUF header reading for show/list/create: key/values and tensor infos, never the weights.

Why not ``gguf.GGUFReader``: it builds a numpy view per element of every array, which took 4.8 s for
SmolLM2's header and 24 s for Gemma 3's (262k-token vocabulary) on the project machine — far too slow for
``/api/show``. This reader walks the same format with ``struct`` over an ``mmap`` and *skips* arrays longer
than a limit unless asked for them (``/api/show`` elides arrays of more than 5 elements unless verbose).
The type enums and block sizes come from the ``gguf`` package, and a test checks this reader against
``GGUFReader`` on the real models (tests/store/test_gguf_meta.py).

Thread-safety: pure functions; each call opens its own mapping.
"""
from __future__ import annotations

import mmap
import os
import struct
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
    def has_vision(self) -> bool:
        return self.arch_key("vision.block_count") is not None


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

    def string(self) -> str:
        n = self.unpack("<Q")
        self.need(n)
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return bytes(b).decode("utf-8", errors="replace")

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


def _value(c: _Cursor, vt: GGUFValueType, max_array: int | None) -> Any:
    if vt == GGUFValueType.STRING:
        return c.string()
    if vt == GGUFValueType.ARRAY:
        et = _vtype(c)
        count = c.unpack("<Q")
        if max_array is not None and count > max_array:
            if et == GGUFValueType.STRING:
                for _ in range(count):
                    c.skip_string()
            elif et == GGUFValueType.ARRAY:
                for _ in range(count):
                    _value(c, et, 0)
            else:
                size = struct.calcsize(_SCALAR[et]) * count
                c.need(size)
                c.pos += size
            return SkippedArray(et, count)
        if et in _SCALAR:
            fmt = _SCALAR[et]
            size = struct.calcsize(fmt)
            c.need(size * count)
            vals = list(struct.unpack_from(f"<{count}{fmt[1]}", c.buf, c.pos))
            c.pos += size * count
            return vals
        return [_value(c, et, max_array) for _ in range(count)]
    return c.unpack(_SCALAR[vt])


def read(path: str | Path, *, max_array: int | None = 5, tensors: bool = True) -> GGUFInfo:
    """Read a GGUF header. Arrays with more than ``max_array`` elements become :class:`SkippedArray`
    (``None`` reads everything)."""
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
            for _ in range(n_kv):
                key = c.string()
                kv[key] = _value(c, _vtype(c), max_array)
            infos: list[TensorInfo] = []
            if tensors:
                for _ in range(n_tensors):
                    name = c.string()
                    n_dims = c.unpack("<I")
                    if n_dims > 8:
                        raise InvalidGGUF(f"{path.name}: tensor {name} has {n_dims} dimensions")
                    shape = tuple(c.unpack("<Q") for _ in range(n_dims))
                    raw_type = c.unpack("<I")
                    try:
                        ttype = GGMLQuantizationType(raw_type)
                    except ValueError:
                        raise InvalidGGUF(f"{path.name}: tensor {name} has unknown type {raw_type}") from None
                    infos.append(TensorInfo(name, shape, ttype, c.unpack("<Q")))
                align = kv.get("general.alignment", 32)
                align = align if isinstance(align, int) and align > 0 else 32
                data_offset = (c.pos + align - 1) // align * align
            else:
                data_offset = 0
    return GGUFInfo(path, version, kv, infos, data_offset)


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
