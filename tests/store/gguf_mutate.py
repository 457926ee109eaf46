"""The GGUF mutator and native-load worker behind test_gguf_fuzz.py.

``parse`` finds where every field of a well-formed GGUF is; each of the ``MUTATIONS`` rewrites one kind of
field (or truncates, flips bytes, shuffles entries) from a ``random.Random``, so a case is replayed from its
seed and index alone; ``Worker`` loads files in a child process that may die, and says how it died.
"""
from __future__ import annotations

import contextlib
import json
import os
import random
import select
import signal
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import gguf

from pyollama.store import gguf_meta
from tests.tiny_gguf import write_tiny_gguf, write_tiny_lora

VOCAB_TRIM = 64              # array elements kept in the trimmed vendor vocab seeds

# --------------------------------------------------------------------------------------------------
# The layout of a well-formed GGUF: where every field is, so a mutation can aim at it.
STRING, ARRAY = 8, 9
_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


@dataclass
class KV:
    start: int                 # offset of the key's length
    key: str
    type_at: int               # offset of the u32 value type
    vtype: int
    end: int
    etype: int = -1            # arrays: element type, its count and where the count is
    count_at: int = -1
    count: int = 0
    elems: list[int] = field(default_factory=list)   # offsets of the first elements (strings: their lengths)


@dataclass
class TI:
    start: int                 # offset of the name's length
    name: str
    ndims_at: int
    n_dims: int
    type_at: int
    ttype: int
    offset_at: int
    offset: int
    end: int


@dataclass
class Layout:
    kvs: list[KV]
    tensors: list[TI]
    info_end: int              # end of the tensor infos
    align: int
    data_at: int               # start of the data section
    size: int


def parse(data: bytes) -> Layout:
    """Where every field of ``data`` (a well-formed GGUF: the seeds) is."""
    pos = 24

    def u(fmt: str) -> int:
        nonlocal pos
        v = struct.unpack_from(fmt, data, pos)[0]
        pos += struct.calcsize(fmt)
        return v

    def s() -> str:
        nonlocal pos
        n = u("<Q")
        pos += n
        return data[pos - n:pos].decode("utf-8", "replace")

    n_t, n_kv = struct.unpack_from("<QQ", data, 8)
    kvs = []
    for _ in range(n_kv):
        start = pos
        key = s()
        kv = KV(start, key, pos, u("<I"), 0)
        if kv.vtype == ARRAY:
            kv.etype = u("<I")
            kv.count_at = pos
            kv.count = u("<Q")
            if kv.etype == STRING:
                for i in range(kv.count):
                    if i < 8:
                        kv.elems.append(pos)
                    n = u("<Q")     # read first: `pos += u(...)` would add to the stale pos
                    pos += n
            else:
                kv.elems = [pos + i * _SIZES[kv.etype] for i in range(min(kv.count, 8))]
                pos += _SIZES[kv.etype] * kv.count
        else:
            kv.elems = [pos]
            n = u("<Q") if kv.vtype == STRING else _SIZES[kv.vtype]
            pos += n
        kv.end = pos
        kvs.append(kv)
    tensors = []
    for _ in range(n_t):
        start = pos
        name = s()
        ndims_at = pos
        n_dims = u("<I")
        pos += 8 * n_dims
        type_at = pos
        ttype = u("<I")
        tensors.append(TI(start, name, ndims_at, n_dims, type_at, ttype, pos, u("<Q"), pos))
    align = next((struct.unpack_from("<I", data, kv.elems[0])[0] for kv in kvs
                  if kv.key == "general.alignment"), 32)
    return Layout(kvs, tensors, pos, align, (pos + align - 1) // align * align if n_t else pos, len(data))


def rebuild(data: bytes, lay: Layout, kvs: list[bytes], tis: list[bytes], *, align: int | None = None,
            counts: tuple[int, int] | None = None) -> bytes:
    """The file again from (changed) KV and tensor-info byte strings; the data section is kept."""
    n_t, n_kv = counts if counts is not None else (len(tis), len(kvs))
    head = data[:8] + struct.pack("<QQ", n_t, n_kv) + b"".join(kvs) + b"".join(tis)
    a = align or lay.align
    if lay.tensors:
        head += b"\0" * (-len(head) % a)
    return head + data[lay.data_at:]


def kv_bytes(data: bytes, lay: Layout) -> list[bytes]:
    return [data[kv.start:kv.end] for kv in lay.kvs]


def ti_bytes(data: bytes, lay: Layout) -> list[bytes]:
    return [data[t.start:t.end] for t in lay.tensors]


def gstr(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def new_kv(key: str, vtype: int, payload: bytes) -> bytes:
    return gstr(key) + struct.pack("<I", vtype) + payload


def put(data: bytes, at: int, fmt: str, value: int | float) -> bytes:
    b = bytearray(data)
    struct.pack_into(fmt, b, at, value)
    return bytes(b)


def trim_arrays(data: bytes, lay: Layout, n: int) -> bytes:
    """The same KVs with every array cut to its first ``n`` elements (vocab seeds stay small and fast)."""
    out = []
    for kv in lay.kvs:
        if kv.vtype != ARRAY or kv.count <= n:
            out.append(data[kv.start:kv.end])
            continue
        pos = kv.count_at + 8
        if kv.etype == STRING:
            for _ in range(n):
                pos += 8 + struct.unpack_from("<Q", data, pos)[0]
        else:
            pos += _SIZES[kv.etype] * n
        out.append(data[kv.start:kv.count_at] + struct.pack("<Q", n) + data[kv.count_at + 8:pos])
    return rebuild(data, lay, out, ti_bytes(data, lay))


# --------------------------------------------------------------------------------------------------
# Seeds
@dataclass
class Seed:
    name: str
    data: bytes
    lay: Layout


def _with_alignment(data: bytes, align: int) -> bytes:
    lay = parse(data)
    kvs = kv_bytes(data, lay) + [new_kv("general.alignment", 4, struct.pack("<I", align))]
    return rebuild(data, lay, kvs, ti_bytes(data, lay), align=align)


def _small_spm_vocab(path: Path, vocab_dir: Path) -> Path:
    """The llama-spm vocabulary cut to 300 tokens (<unk>, <s>, </s>, the 256 byte tokens, 41 pieces)."""
    kv = gguf_meta.read(vocab_dir / "ggml-vocab-llama-spm.gguf", max_array=None, tensors=False).kv
    w = gguf.GGUFWriter(path, "llama")
    w.add_tokenizer_model("llama")
    w.add_token_list(kv["tokenizer.ggml.tokens"][:300])
    w.add_token_scores(kv["tokenizer.ggml.scores"][:300])
    w.add_token_types(kv["tokenizer.ggml.token_type"][:300])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def make_seeds(work: Path, vocab_dir: Path) -> list[Seed]:
    spm = _small_spm_vocab(work / "spm300.gguf", vocab_dir)
    files = {
        # a llama that loads and decodes (1 block, F16), with an explicit general.alignment
        "llama": _with_alignment(write_tiny_gguf(
            work / "llama.gguf", vocab=spm, n_layer=1, n_embd=16, n_head=2,
            file_type=gguf.LlamaFileType.MOSTLY_F16).read_bytes(), 32),
        "store": write_tiny_gguf(work / "store.gguf").read_bytes(),      # what the store tests create from
        "lora": write_tiny_lora(work / "lora.gguf", n_embd=16).read_bytes(),
    }
    for v in sorted(vocab_dir.glob("ggml-vocab-*.gguf")):
        data = v.read_bytes()
        files[v.stem.removeprefix("ggml-vocab-")] = trim_arrays(data, parse(data), VOCAB_TRIM)
    return [Seed(name, data, parse(data)) for name, data in files.items()]


# --------------------------------------------------------------------------------------------------
# Mutations: each takes (rng, seed) and returns the mutated bytes, or None where it does not apply.
U64 = [0, 1, 2, 7, 255, 4096, 2**16, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**32 + 1, 2**40, 2**62, 2**63 - 1,
       2**63, 2**64 - 2, 2**64 - 1]


def _u64(rng: random.Random, orig: int, size: int = 0) -> int:
    return rng.choice(U64 + [(orig + 1) % 2**64, (orig - 1) % 2**64, orig * 2 % 2**64, size, size + 1,
                             rng.getrandbits(64)])


Mutation = Callable[[random.Random, Seed], bytes | None]
MUTATIONS: dict[str, Mutation] = {}


def mutation(fn: Mutation) -> Mutation:
    MUTATIONS[fn.__name__] = fn
    return fn


@mutation
def magic(rng: random.Random, s: Seed) -> bytes:
    new = rng.choice([b"GGUf", b"FUGG", b"GGML", b"GGJT", b"\0\0\0\0", b"GGU\0", rng.randbytes(4)])
    return new + s.data[4:]


@mutation
def version(rng: random.Random, s: Seed) -> bytes:
    return put(s.data, 4, "<I", rng.choice([0, 1, 2, 3, 4, 5, 0x03000000, 0x00030000, 2**31, 2**32 - 1,
                                             rng.getrandbits(32)]))


@mutation
def n_tensors(rng: random.Random, s: Seed) -> bytes:
    return put(s.data, 8, "<Q", _u64(rng, len(s.lay.tensors), s.lay.size))


@mutation
def n_kv(rng: random.Random, s: Seed) -> bytes:
    return put(s.data, 16, "<Q", _u64(rng, len(s.lay.kvs), s.lay.size))


@mutation
def key_length(rng: random.Random, s: Seed) -> bytes:
    kv = rng.choice(s.lay.kvs)
    return put(s.data, kv.start, "<Q", _u64(rng, len(kv.key.encode()), s.lay.size - kv.start))


@mutation
def string_length(rng: random.Random, s: Seed) -> bytes | None:
    where = [at for kv in s.lay.kvs if STRING in (kv.vtype, kv.etype) for at in kv.elems]
    where += [t.start for t in s.lay.tensors]
    if not where:
        return None
    at = rng.choice(where)
    orig = struct.unpack_from("<Q", s.data, at)[0]
    return put(s.data, at, "<Q", _u64(rng, orig, s.lay.size - at))


@mutation
def value_type(rng: random.Random, s: Seed) -> bytes:
    kv = rng.choice(s.lay.kvs)
    return put(s.data, kv.type_at, "<I", rng.choice([*range(13), 13, 14, 255, 2**31, 2**32 - 1]))


def _some_array(rng: random.Random, s: Seed):
    """A random array-valued KV of the seed, or None when it has none."""
    arrays = [kv for kv in s.lay.kvs if kv.vtype == ARRAY]
    return rng.choice(arrays) if arrays else None


@mutation
def array_type(rng: random.Random, s: Seed) -> bytes | None:
    kv = _some_array(rng, s)
    return None if kv is None else put(s.data, kv.type_at + 4, "<I", rng.choice([*range(13), 9, 9, 13, 255, 2**32 - 1]))


@mutation
def array_length(rng: random.Random, s: Seed) -> bytes | None:
    kv = _some_array(rng, s)
    return None if kv is None else put(s.data, kv.count_at, "<Q", _u64(rng, kv.count, s.lay.size))


@mutation
def nested_array(rng: random.Random, s: Seed) -> bytes:
    """A new KV holding arrays of arrays, up to thousands deep (upstream refuses any nesting)."""
    depth = rng.choice([1, 2, 3, 10, 100, 1000, 5000])
    inner = rng.choice([struct.pack("<IQ", 0, 0), struct.pack("<IQ", 4, 2) + b"\1\0\0\0\2\0\0\0",
                        struct.pack("<IQ", STRING, 1) + gstr("x"), struct.pack("<IQ", 0, 2**63)])
    payload = struct.pack("<IQ", ARRAY, 1) * (depth - 1) + inner
    kvs = kv_bytes(s.data, s.lay)
    kvs.insert(rng.randrange(len(kvs) + 1), new_kv(f"fuzz.nested{depth}", ARRAY, payload))
    return rebuild(s.data, s.lay, kvs, ti_bytes(s.data, s.lay))


def _tensor(rng: random.Random, s: Seed) -> TI | None:
    return rng.choice(s.lay.tensors) if s.lay.tensors else None


@mutation
def n_dims(rng: random.Random, s: Seed) -> bytes | None:
    t = _tensor(rng, s)
    return None if t is None else put(s.data, t.ndims_at, "<I", rng.choice([0, 1, 3, 4, 5, 8, 9, 2**31,
                                                                            2**32 - 1]))


@mutation
def dims(rng: random.Random, s: Seed) -> bytes | None:
    t = _tensor(rng, s)
    if t is None:
        return None
    data = s.data
    for _ in range(rng.choice([1, 1, 2])):
        at = t.ndims_at + 4 + 8 * rng.randrange(t.n_dims)
        v = rng.choice([0, 1, 2**32, 2**32 + 1, 2**31, 2**62, 2**63 - 1, 2**63, 2**64 - 1, 2**64 - 32,
                        3, 31, 33, 255, struct.unpack_from("<Q", data, at)[0] * 2])
        data = put(data, at, "<Q", v % 2**64)
    return data


@mutation
def tensor_type(rng: random.Random, s: Seed) -> bytes | None:
    t = _tensor(rng, s)
    return None if t is None else put(s.data, t.type_at, "<I", rng.choice(
        [*range(44), 4, 5, 31, 36, 42, 43, 44, 100, 2**31, 2**32 - 1]))


@mutation
def tensor_offset(rng: random.Random, s: Seed) -> bytes | None:
    t = _tensor(rng, s)
    if t is None:
        return None
    other = rng.choice(s.lay.tensors).offset
    v = rng.choice([t.offset + 1, t.offset + s.lay.align, t.offset - s.lay.align, other, 0, s.lay.size,
                    s.lay.size - s.lay.data_at, s.lay.size - s.lay.data_at - 32, 2**63, 2**64 - 1, 2**64 - 32,
                    rng.getrandbits(64)])
    return put(s.data, t.offset_at, "<Q", v % 2**64)


@mutation
def alignment(rng: random.Random, s: Seed) -> bytes:
    """general.alignment: 0, not a power of two, huge, or another type (added where the seed has none)."""
    kvs = kv_bytes(s.data, s.lay)
    value = rng.choice([0, 1, 2, 3, 7, 16, 24, 31, 33, 64, 4096, 2**20, 2**31, 2**32 - 1])
    vt, payload = rng.choice([(4, struct.pack("<I", value)), (4, struct.pack("<I", value)), (0, b"\x20"),
                              (10, struct.pack("<Q", 32)), (5, struct.pack("<i", -32)), (8, gstr("32")),
                              (6, struct.pack("<f", 32.0))])
    kv = new_kv("general.alignment", vt, payload)
    i = next((i for i, k in enumerate(s.lay.kvs) if k.key == "general.alignment"), None)
    if i is None:
        kvs.insert(rng.randrange(len(kvs) + 1), kv)
    else:
        kvs[i] = kv
    return rebuild(s.data, s.lay, kvs, ti_bytes(s.data, s.lay))


def _cuts(s: Seed) -> list[int]:
    cuts = [0, 1, 3, 4, 5, 8, 12, 16, 20, 23, 24, s.lay.info_end, s.lay.data_at, s.lay.size - 1]
    for kv in s.lay.kvs:
        cuts += [kv.start, kv.start + 4, kv.start + 8, kv.type_at, kv.type_at + 2, kv.end - 1, *kv.elems]
        if kv.count_at >= 0:
            cuts += [kv.count_at, kv.count_at + 4]
    for t in s.lay.tensors:
        cuts += [t.start, t.ndims_at, t.ndims_at + 4, t.type_at, t.offset_at, t.offset_at + 4, t.end - 1,
                 s.lay.data_at + t.offset, s.lay.data_at + t.offset + 1]
    return [c for c in cuts if 0 <= c < s.lay.size]


@mutation
def truncate(rng: random.Random, s: Seed) -> bytes:
    cut = rng.choice(_cuts(s)) if rng.random() < 0.8 else rng.randrange(s.lay.size)
    return s.data[:cut]


@mutation
def byte_flips(rng: random.Random, s: Seed) -> bytes:
    b = bytearray(s.data)
    end = max(s.lay.info_end, 25)
    for _ in range(rng.choice([1, 1, 2, 4, 8, 16])):
        at = rng.randrange(24 if rng.random() < 0.9 else 0, end)
        b[at] = rng.choice([b[at] ^ (1 << rng.randrange(8)), rng.getrandbits(8), 0, 0xFF])
    return bytes(b)


@mutation
def kv_shuffle(rng: random.Random, s: Seed) -> bytes:
    """A KV duplicated, dropped or moved; the count fixed up or left stale."""
    kvs = kv_bytes(s.data, s.lay)
    i = rng.randrange(len(kvs))
    op = rng.choice(["dup", "drop", "swap"])
    if op == "dup":
        kvs.insert(rng.randrange(len(kvs) + 1), kvs[i])
    elif op == "drop":
        del kvs[i]
    else:
        j = rng.randrange(len(kvs))
        kvs[i], kvs[j] = kvs[j], kvs[i]
    counts = None if rng.random() < 0.7 else (len(s.lay.tensors), len(s.lay.kvs))
    return rebuild(s.data, s.lay, kvs, ti_bytes(s.data, s.lay), counts=counts)


@mutation
def tensor_shuffle(rng: random.Random, s: Seed) -> bytes | None:
    """A tensor info duplicated (same name, same offset), dropped or moved; the count fixed or stale."""
    if not s.lay.tensors:
        return None
    tis = ti_bytes(s.data, s.lay)
    i = rng.randrange(len(tis))
    op = rng.choice(["dup", "drop", "swap", "rename"])
    if op == "dup":
        tis.insert(rng.randrange(len(tis) + 1), tis[i])
    elif op == "drop":
        del tis[i]
    elif op == "swap":
        j = rng.randrange(len(tis))
        tis[i], tis[j] = tis[j], tis[i]
    else:   # a name too long, empty, or another tensor's
        t = s.lay.tensors[i]
        name = rng.choice(["", "x" * 63, "x" * 64, "x" * 200, rng.choice(s.lay.tensors).name,
                           "blk.99.attn_q.weight", "blk.-1.attn_q.weight", "blk.4294967296.attn_q.weight"])
        tis[i] = gstr(name) + s.data[t.ndims_at:t.end]
    counts = None if rng.random() < 0.7 else (len(s.lay.tensors), len(s.lay.kvs))
    return rebuild(s.data, s.lay, kv_bytes(s.data, s.lay), tis, counts=counts)


@mutation
def kv_value(rng: random.Random, s: Seed) -> bytes | None:
    """A numeric value (token ids, counts, sizes, eps) set to an edge value of its type."""
    nums = [kv for kv in s.lay.kvs if (kv.vtype in _SIZES or kv.etype in _SIZES) and kv.elems]
    if not nums:
        return None
    kv = rng.choice(nums)
    t = kv.vtype if kv.vtype != ARRAY else kv.etype
    fmt = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<B", 10: "<Q", 11: "<q",
           12: "<d"}[t]
    if t in (6, 12):
        v: int | float = rng.choice([0.0, -1.0, 1e38, -1e38, float("inf"), float("-inf"), float("nan"),
                                     1e-45])
    else:
        bits = _SIZES[t] * 8
        lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if fmt[1].islower() else (0, 2**bits - 1)
        v = min(hi, rng.choice([lo, hi, 0, 1, 2, lo + 1, hi - 1, max(lo, -1), 300, 301, 65536]))
    return put(s.data, rng.choice(kv.elems), fmt, v)


_ARCHS = sorted(gguf.MODEL_ARCH_NAMES.values())
_TOKENIZERS = ["llama", "gpt2", "bert", "t5", "rwkv", "ugm", "plamo2", "none", "no_vocab", "", "\xff"]


@mutation
def kv_string(rng: random.Random, s: Seed) -> bytes | None:
    """A string that the loader dispatches on (architecture, tokenizer model/pre) set to another known value;
    a new architecture renames the ``<arch>.*`` keys with it, so its own hyperparameter code runs."""
    kvs = kv_bytes(s.data, s.lay)
    keys = ("general.architecture", "tokenizer.ggml.model", "tokenizer.ggml.pre", "general.type")
    targets = [i for i, kv in enumerate(s.lay.kvs) if kv.key in keys]
    if not targets:
        return None
    i = rng.choice(targets)
    kv = s.lay.kvs[i]
    if kv.key == "general.architecture":
        old = s.data[kv.elems[0] + 8:kv.end].decode()
        new = rng.choice(_ARCHS)
        for j, k in enumerate(s.lay.kvs):
            if k.key.startswith(old + "."):
                kvs[j] = gstr(new + k.key[len(old):]) + s.data[k.type_at:k.end]
    elif kv.key == "tokenizer.ggml.model":
        new = rng.choice(_TOKENIZERS)
    elif kv.key == "general.type":
        new = rng.choice(["model", "adapter", "mmproj", "projector", ""])
    else:
        new = rng.choice(["default", "llama3", "deepseek-llm", "qwen2", "gpt-4o", "tekken", "nope", ""])
    kvs[i] = gstr(kv.key) + struct.pack("<I", STRING) + gstr(new)
    return rebuild(s.data, s.lay, kvs, ti_bytes(s.data, s.lay))


# Whole-file cases: the same for every seed value, each run once.
def whole_files(seeds: list[Seed]) -> Iterator[tuple[str, bytes]]:
    s = seeds[0]
    yield "empty", b""
    yield "one_byte", b"G"
    yield "magic_only", b"GGUF"
    yield "magic_version", s.data[:8]
    for n_t, n_k in [(0, 0), (1, 0), (0, 1), (2**63, 2**63), (2**64 - 1, 0)]:
        yield f"header_only_{n_t}_{n_k}", s.data[:8] + struct.pack("<QQ", n_t, n_k)
    yield "header_and_kvs", s.data[:s.lay.tensors[0].start]
    yield "header_and_infos", s.data[:s.lay.info_end]
    yield "header_padded_no_data", s.data[:s.lay.data_at]
    yield "data_only", s.data[s.lay.data_at:]
    yield "zeros", b"\0" * 4096
    yield "ggml_legacy", b"lmgg" + s.data[4:]


def mutated(seeds: list[Seed], n: int, base: int) -> Iterator[tuple[str, str, bytes]]:
    """(family, seed name, bytes) for n mutated files: families round-robin so every one is exercised, the
    rest drawn from a random.Random per file (``base``, index), so any single case can be replayed."""
    names = list(MUTATIONS)
    for i in range(n):
        rng = random.Random(f"{base}:{i}")
        family = names[i % len(names)]
        while True:
            seed = rng.choice(seeds)
            data = MUTATIONS[family](rng, seed)
            if data is not None:
                break
        yield family, seed.name, data


# --------------------------------------------------------------------------------------------------
# The native loader, in a child process that may die.
_WORKER = r"""
import json, logging, os, sys
# the protocol gets its own copy of stdout; whatever native code prints goes to stderr (the log)
reply = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
class Errors(logging.Handler):     # the native error lines of one load (the exception quotes only the last)
    lines = []
    def emit(self, record):
        self.lines.append(record.getMessage())
log = logging.getLogger("pyollama.native")
log.addHandler(Errors(logging.ERROR))
log.propagate = False
from pyollama import _native
from pyollama.errors import InvalidGGUF, PyollamaError
from pyollama.store import gguf_meta
raw = os.environ.get("PYOLLAMA_FUZZ_RAW") == "1"
_native.set_log_level(logging.CRITICAL)
print("ready", file=reply, flush=True)
def quantize(path):      # create --quantize q8_0 on a temp store: the creating process quantizes
    import tempfile
    from pyollama.store import Store, create_from_modelfile
    with tempfile.TemporaryDirectory() as root:
        try:
            for _ in create_from_modelfile(Store(root), "q", f"FROM {path}\n", quantize="q8_0"):
                pass
            return [["ok", "", False]]
        except PyollamaError as e:
            left = [str(p) for p in Path(root).glob("[bm]*/**/*") if p.is_file()]
            return [["!Leftover" if left else type(e).__name__, f"{e} {left}", False]]
        except BaseException as e:
            return [["!" + type(e).__name__, str(e), False]]
from pathlib import Path
for line in sys.stdin:
    op, _, path = line.rstrip("\n").partition("\t")
    if op == "quantize":
        print(json.dumps(quantize(path)), file=reply, flush=True)
        continue
    out = []
    for vocab_only in (True, False):
        Errors.lines.clear()
        try:
            try:
                gguf_meta.read(path, max_array=0)
            except InvalidGGUF:
                pass    # not a valid GGUF: upstream's parser must refuse it cleanly too, so load it anyway
            else:
                # a valid GGUF goes through what every load in pyollama does first: the check for the headers
                # upstream aborts on (raw: loaded anyway, to see what upstream does)
                try:
                    gguf_meta.check_loadable(path, vocab_only=vocab_only)
                except InvalidGGUF as e:
                    if not raw:
                        out.append(["InvalidGGUF", str(e), False])
                        continue
        except BaseException as e:
            out.append(["!" + type(e).__name__, str(e), False])
            continue
        try:
            _native.Model(path, vocab_only=vocab_only).close()
            out.append(["ok", "", False])
        except PyollamaError as e:
            why = next((x for x in Errors.lines if "error loading model:" in x or "gguf_init" in x), str(e))
            # refused as a GGUF file (upstream's parser, or tensor data outside the file), not as a model
            as_gguf = any(x.startswith("gguf_init") or "not within the file bounds" in x
                          for x in Errors.lines)
            out.append([type(e).__name__, why.replace(path, "<file>"), as_gguf])
        except BaseException as e:
            out.append(["!" + type(e).__name__, str(e).replace(path, "<file>"), False])
    print(json.dumps(out), file=reply, flush=True)
"""


class Worker:
    """One child that loads files one at a time; restarted after it dies or hangs."""

    def __init__(self, log: Path):
        self.log = log
        self.proc: subprocess.Popen[str] | None = None
        self.starts = 0

    def _start(self) -> subprocess.Popen[str]:
        self.starts += 1
        err = open(self.log, "w")    # noqa: SIM115 - the child owns it; read back after a death
        proc = subprocess.Popen([sys.executable, "-c", _WORKER], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=err, text=True,
                                cwd=Path(__file__).resolve().parents[2],
                                env={**os.environ, "GGML_NO_BACKTRACE": "1"})   # no gdb run per abort
        err.close()
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n", self.log.read_text()[-2000:]
        return proc

    def load(self, path: Path, timeout: float) -> tuple[str, list]:
        """("ok", [[class, message, refused as GGUF] for the vocab-only load and the full one]), or how the
        child ended ("signal SIGABRT", "hang", "exit N") and the abort lines of its stderr."""
        return self._ask(f"load\t{path}", timeout)

    def quantize(self, path: Path, timeout: float) -> tuple[str, list]:
        """``create --quantize q8_0`` from ``path`` on a temp store: ("ok", [[class, message, False]]), where
        class "!Leftover" means the failed create left files in the store; or how the child ended."""
        return self._ask(f"quantize\t{path}", timeout)

    def _ask(self, request: str, timeout: float) -> tuple[str, list]:
        if self.proc is None:
            self.proc = self._start()
        p = self.proc
        assert p.stdin is not None and p.stdout is not None
        try:
            p.stdin.write(f"{request}\n")
            p.stdin.flush()
        except BrokenPipeError:
            pass
        ready, _, _ = select.select([p.stdout], [], [], timeout)
        line = p.stdout.readline() if ready else None
        if line:
            return "ok", json.loads(line)
        if line is None:
            p.kill()
        rc = self._end(p)
        tail = [x for x in self.log.read_text(errors="replace").splitlines()
                if "GGML_ASSERT" in x or "fatal error" in x or "terminate" in x or "what()" in x][-2:]
        what = "hang" if line is None else (f"signal {signal.Signals(-rc).name}" if rc < 0 else f"exit {rc}")
        return what, tail

    def _end(self, p: subprocess.Popen[str]) -> int:
        for pipe in (p.stdin, p.stdout):
            with contextlib.suppress(OSError):    # a dead child's stdin may still hold the unsent path
                pipe.close()  # type: ignore[union-attr]
        self.proc = None
        return p.wait(30)

    def close(self) -> None:
        if self.proc is not None:
            self._end(self.proc)
