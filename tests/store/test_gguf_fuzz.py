"""GGUF header fuzzing (issue 11): mutated headers through the store's reader, the native loader and create.

A seeded, deterministic mutator (gguf_mutate.py) rewrites the header of small real GGUF files — tiny
random-weight models from tests/tiny_gguf.py and the pinned tree's vocab-only GGUFs, their arrays trimmed —
and every mutated file goes

1. through ``gguf_meta.read`` in this process, in its three modes: it returns or raises InvalidGGUF, nothing
   else, within READ_TIMEOUT;
2. through ``_native.Model`` (vocab-only, then a full load) in a child worker, after
   ``gguf_meta.check_loadable`` as every load in pyollama does (a file that is no valid GGUF is loaded anyway:
   upstream's parser must refuse it cleanly too): a result or a pyollama error. A worker killed by a signal or
   stuck past LOAD_TIMEOUT fails the test; its file is kept for reproduction (``PYOLLAMA_FUZZ_KEEP``, default
   the test's tmp dir) and the worker restarted. A file that upstream refuses *as GGUF* (its parser, or tensor
   data outside the file) must have been refused by the store's reader too, or create would store a model
   that nothing can load;
3. one in CREATE_EVERY through ``create`` (``FROM <file>``) on one temp store: success, or a pyollama error
   with nothing stored (no new manifest, no blob that no manifest references); and another one in CREATE_EVERY
   through ``create --quantize q8_0`` in the worker (quantizing is native, in the creating process).

``PYOLLAMA_FUZZ_GGUF=N`` sets the number of mutated files (default 10,000), ``PYOLLAMA_FUZZ_NATIVE=N`` how
many of them also go to the native loader (default: all), ``PYOLLAMA_FUZZ_SEED`` the seed. Run with ``-s``
for the report (outcomes per family, top error messages, timings). The fixed cases below the fuzz test are
the bugs it found, kept whatever the seed.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import struct
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from gguf_mutate import (ARRAY, STRING, Layout, Seed, Worker, gstr, kv_bytes, make_seeds, mutated, new_kv,
                         parse, put, rebuild, ti_bytes, whole_files)

from pyollama.errors import InvalidGGUF, PyollamaError
from pyollama.store import Store, create_from_modelfile, gguf_meta

N_FILES = int(os.environ.get("PYOLLAMA_FUZZ_GGUF", "10000"))
N_NATIVE = int(os.environ.get("PYOLLAMA_FUZZ_NATIVE", str(N_FILES)))
SEED = int(os.environ.get("PYOLLAMA_FUZZ_SEED", "0"))
CREATE_EVERY = 50            # ~200 creates in the default run
READ_TIMEOUT = 5.0           # seconds for one file through the reader's 3 modes (a hang, not a speed test)
LOAD_TIMEOUT = 30.0          # seconds for one file's two native loads
READ_MODES: tuple[dict, ...] = ({}, {"max_array": None}, {"max_array": 0, "tensors": False})
Build = Callable[[bytes, Layout], bytes]      # a fixed case: a seed's bytes and layout → the file


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory, vocab_dir: Path) -> list[Seed]:
    return make_seeds(tmp_path_factory.mktemp("seeds"), vocab_dir)


class _Hang(BaseException):
    """Raised by the alarm; a BaseException so that no `except Exception` on the way can swallow it."""


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    def fire(signum: int, frame: object) -> None:
        raise _Hang

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _read(path: Path) -> str | None:
    """The reader's error message for ``path`` (None: read fine), after all three modes; raises on anything
    but InvalidGGUF."""
    verdicts = []
    with _time_limit(READ_TIMEOUT):
        for mode in READ_MODES:
            try:
                gguf_meta.read(path, **mode)
                verdicts.append(None)
            except InvalidGGUF as e:
                verdicts.append(str(e))
    # reading every array changes nothing about validity; skipping the tensors may only accept more
    assert (verdicts[0] is None) == (verdicts[1] is None), verdicts
    assert verdicts[0] is None or verdicts[2] is None or verdicts[2] == verdicts[0], verdicts
    return verdicts[0]


def _store_state(store: Store) -> tuple[set[str], set[str]]:
    """(manifest files, blob files no manifest references: partial downloads and temp files included)."""
    manifests = {str(p.relative_to(store.root)) for p in (store.root / "manifests").rglob("*") if p.is_file()}
    referenced = set()
    for m in manifests:
        doc = json.loads((store.root / m).read_text())
        referenced |= {x["digest"].replace(":", "-") for x in [doc["config"], *doc["layers"]]}
    blobs = {p.name for p in (store.root / "blobs").glob("*")} if (store.root / "blobs").exists() else set()
    return manifests, blobs - referenced


def _create(store: Store, path: Path, name: str) -> str | None:
    """Create ``name`` from ``path``: None on success, else the error; asserts nothing half-stored stays."""
    before, _ = _store_state(store)
    error = None
    with _time_limit(LOAD_TIMEOUT):
        try:
            for _ in create_from_modelfile(store, name, f"FROM {path}\n"):
                pass
        except PyollamaError as e:
            error = f"{type(e).__name__}: {e}"
    after, orphans = _store_state(store)
    assert not orphans, f"create of {name} left blobs without a manifest: {orphans}"
    assert before <= after and len(after - before) == (0 if error else 1), (error, after - before)
    return error


def _shape(message: str) -> str:
    """An error message with file names and numbers taken out, for the histogram."""
    return re.sub(r"\d+", "N", re.sub(r"^[\w.-]+\.gguf: ", "", message.replace("<file>", "F")))[:110]


def _cases(seeds: list[Seed]) -> Iterator[tuple[str, str, bytes]]:
    for name, data in whole_files(seeds):
        yield "whole_file", name, data
    yield from mutated(seeds, N_FILES, SEED)


class _Run:
    """One fuzz run's checks, counts and failures."""

    def __init__(self, tmp_path: Path):
        self.keep = Path(os.environ.get("PYOLLAMA_FUZZ_KEEP", tmp_path / "crashes"))
        self.keep.mkdir(parents=True, exist_ok=True)
        self.worker = Worker(tmp_path / "worker.log")
        self.store = Store(tmp_path / "models")
        self.failures: list[str] = []
        self.outcomes: Counter[tuple[str, str]] = Counter()     # (family, read/refused/crashed)
        self.messages: Counter[str] = Counter()
        self.native: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()
        self.creates = self.quantizes = 0

    def fail(self, case: str, path: Path, what: str) -> None:
        self.failures.append(f"{case}: {what}")
        shutil.copy(path, self.keep / (case.replace("/", "-") + ".gguf"))

    def read(self, case: str, family: str, path: Path) -> tuple[bool, str | None]:
        """(checked, the reader's refusal)."""
        t = time.perf_counter()
        try:
            refused = _read(path)
        except (Exception, _Hang) as e:
            self.fail(case, path, f"reader raised {type(e).__name__}: {e}")
            return False, None
        self.seconds["reader"] += time.perf_counter() - t
        self.outcomes[(family, "refused" if refused else "read")] += 1
        self.messages[_shape(refused or "read fine")] += 1
        return True, refused

    def load(self, case: str, family: str, path: Path, refused: str | None) -> None:
        t = time.perf_counter()
        status, out = self.worker.load(path, LOAD_TIMEOUT)
        self.seconds["native"] += time.perf_counter() - t
        if status != "ok":
            self.outcomes[(family, "crashed")] += 1
            self.fail(case, path, f"the worker ended with {status}: {out}")
            return
        for (cls, why, as_gguf), mode in zip(out, ("vocab-only", "full")):
            self.native[f"{mode} {cls}"] += 1
            if cls.startswith("!"):
                self.fail(case, path, f"{mode} load raised {cls[1:]}: {why}")
            if as_gguf and refused is None:
                self.fail(case, path, f"the reader accepted a file that upstream refuses as GGUF: {why}")

    def create(self, case: str, path: Path, refused: str | None) -> None:
        t = time.perf_counter()
        self.creates += 1
        try:
            error = _create(self.store, path, f"fuzz:{self.creates}")
        except (Exception, _Hang) as e:
            self.fail(case, path, f"create: {type(e).__name__}: {e}")
            return
        finally:
            self.seconds["create"] += time.perf_counter() - t
        if error is None and refused is not None:
            self.fail(case, path, f"create stored a file the reader refuses ({refused})")

    def quantize(self, case: str, path: Path, refused: str | None) -> None:
        t = time.perf_counter()
        status, out = self.worker.quantize(path, LOAD_TIMEOUT)
        self.seconds["quantize"] += time.perf_counter() - t
        self.quantizes += 1
        if status != "ok":
            self.fail(case, path, f"create --quantize: the worker ended with {status}: {out}")
            return
        cls, why, _ = out[0]
        self.native[f"quantize {cls}"] += 1
        if cls.startswith("!") or (cls == "ok" and refused is not None):
            self.fail(case, path, f"create --quantize: {cls} {why}")

    def report(self, n: int, seconds: float) -> None:
        s = self.seconds
        print(f"\n{n} GGUF files ({N_FILES} mutated, seed {SEED}) in {seconds:.1f} s: "
              f"reader {s['reader']:.1f} s, native {s['native']:.1f} s ({self.worker.starts} worker starts), "
              f"create {s['create']:.1f} s ({self.creates}), create --quantize in the worker "
              f"{s['quantize']:.1f} s ({self.quantizes})")
        for f in sorted({f for f, _ in self.outcomes}):
            print(f"  {f:16} read {self.outcomes[(f, 'read')]:5}  refused {self.outcomes[(f, 'refused')]:5}  "
                  f"crashed {self.outcomes[(f, 'crashed')]}")
        print("  native loads:", ", ".join(f"{k} {v}" for k, v in sorted(self.native.items())))
        for msg, count in self.messages.most_common(12):
            print(f"  {count:6}  {msg}")


def test_fuzz_gguf_headers(seeds: list[Seed], tmp_path: Path) -> None:
    run = _Run(tmp_path)
    n_whole = len(list(whole_files(seeds)))
    path = tmp_path / "case.gguf"
    n = 0
    t0 = time.perf_counter()
    try:
        for n, (family, seed, data) in enumerate(_cases(seeds), 1):
            case = f"{family}/{seed}/{n - 1}"
            path.write_bytes(data)
            checked, refused = run.read(case, family, path)
            if checked and n <= n_whole + N_NATIVE:
                run.load(case, family, path, refused)
            if checked and n % CREATE_EVERY == 0:
                run.create(case, path, refused)
            if checked and n % CREATE_EVERY == CREATE_EVERY // 2:
                run.quantize(case, path, refused)
    finally:
        run.worker.close()
    run.report(n, time.perf_counter() - t0)
    assert n == n_whole + N_FILES
    assert not run.failures, (f"{len(run.failures)} failures (files kept in {run.keep}):\n"
                              + "\n".join(run.failures[:30]))


# --------------------------------------------------------------------------------------------------
# The bugs the fuzzer found, as fixed cases. Each builds one file from a seed and names the error it must get.
def _set_kv(data: bytes, lay: Layout, key: str, vtype: int, payload: bytes) -> bytes:
    """``key`` set to (vtype, payload): replaced where the file has it, else added at the end."""
    kvs = kv_bytes(data, lay)
    new = new_kv(key, vtype, payload)
    i = next((i for i, kv in enumerate(lay.kvs) if kv.key == key), None)
    kvs[i if i is not None else len(kvs):] = [new] + (kvs[i + 1:] if i is not None else [])
    return rebuild(data, lay, kvs, ti_bytes(data, lay))


def _u32(key: str, v: int) -> Build:
    return lambda d, lay: _set_kv(d, lay, key, 4, struct.pack("<I", v))


def _string(key: str, v: str) -> Build:
    return lambda d, lay: _set_kv(d, lay, key, STRING, gstr(v))


def _at(field: str, fmt: str, v: int, tensor: int = 0, plus: int = 0) -> Build:
    """Tensor ``tensor``'s ``field`` (a Layout offset name; ``plus`` bytes further on) set to ``v``."""
    return lambda d, lay: put(d, getattr(lay.tensors[tensor], field) + plus, fmt, v)


def _then(*builds: Build) -> Build:
    """Several changes at fixed offsets (none may move the fields the next one aims at)."""
    def build(d: bytes, lay: Layout) -> bytes:
        for b in builds:
            d = b(d, lay)
        return d
    return build


def _misaligned(data: bytes, lay: Layout) -> bytes:
    """general.alignment 16 with the data section at 16 mod 32 (a filler string moves it there)."""
    for pad in range(32):
        kvs = [k for k, kv in zip(kv_bytes(data, lay), lay.kvs) if kv.key != "general.alignment"]
        kvs += [new_kv("general.alignment", 4, struct.pack("<I", 16)),
                new_kv("fuzz.pad", STRING, gstr("x" * pad))]
        out = rebuild(data, lay, kvs, ti_bytes(data, lay), align=16)
        if parse(out).data_at % 32 == 16:
            return out
    raise AssertionError("no filler length puts the data at 16 mod 32")


def _rename_arch(arch: str) -> Build:
    def build(data: bytes, lay: Layout) -> bytes:
        kvs = kv_bytes(data, lay)
        for i, kv in enumerate(lay.kvs):
            if kv.key.startswith("llama."):
                kvs[i] = gstr(arch + kv.key[len("llama"):]) + data[kv.type_at:kv.end]
            elif kv.key == "general.architecture":
                kvs[i] = new_kv(kv.key, STRING, gstr(arch))
        return rebuild(data, lay, kvs, ti_bytes(data, lay))
    return build


def _duplicate_token(data: bytes, lay: Layout) -> bytes:
    """Token 4 spelled as token 3 (both "<0x0N>": same length, so nothing moves)."""
    at = next(kv for kv in lay.kvs if kv.key == "tokenizer.ggml.tokens").elems
    n = struct.unpack_from("<Q", data, at[3])[0]
    return data[:at[4] + 8] + data[at[3] + 8:at[3] + 8 + n] + data[at[4] + 8 + n:]


def _kvs(f: Callable[[list[bytes]], list[bytes]]) -> Build:
    return lambda d, lay: rebuild(d, lay, f(kv_bytes(d, lay)), ti_bytes(d, lay))


def _tis(f: Callable[[bytes, Layout, list[bytes]], list[bytes]]) -> Build:
    return lambda d, lay: rebuild(d, lay, kv_bytes(d, lay), f(d, lay, ti_bytes(d, lay)))


_NESTED_5000 = struct.pack("<IQ", ARRAY, 1) * 4999 + struct.pack("<IQ", 0, 0)


def _same(data: bytes, lay: Layout) -> bytes:
    return data


# (id, seed, build, message). The reader refuses these: before, the first raised RecursionError and the others
# were read, shown and stored by create, though llama.cpp's parser refuses them.
READER_CASES: list[tuple[str, str, Build, str]] = [
    ("nested-arrays-5000-deep", "store", lambda d, lay: _set_kv(d, lay, "fuzz.deep", ARRAY, _NESTED_5000),
     r"'fuzz.deep' is an array of arrays"),
    ("duplicate-key", "store", _kvs(lambda kvs: kvs + kvs[:1]), r"duplicate key 'general.architecture'"),
    ("empty-key", "store", _kvs(lambda kvs: [*kvs, new_kv("", 4, bytes(4))]), r"key \d+ is empty"),
    ("alignment-0", "llama", _u32("general.alignment", 0), r"general.alignment must be a power of two"),
    ("alignment-24", "llama", _u32("general.alignment", 24), r"power of two \(uint32\), not 24"),
    ("alignment-uint64", "llama", lambda d, lay: _set_kv(d, lay, "general.alignment", 10, b" " + bytes(7)),
     r"general.alignment must be a power of two \(uint32\)"),
    ("five-dims", "llama", _at("ndims_at", "<I", 5), r"5 dimensions \(at most 4\)"),
    ("negative-dim", "llama", _at("ndims_at", "<Q", 2**64 - 16, plus=4), r"negative dimension"),
    ("dims-overflow", "llama", _then(_at("ndims_at", "<Q", 2**32, plus=4),
                                   _at("ndims_at", "<Q", 2**32, plus=12)), r"too many elements"),
    ("removed-type-q4_2", "llama", _at("type_at", "<I", 4), r"unknown type 4"),
    ("row-not-whole-blocks", "llama", _at("type_at", "<I", 2), r"rows of 16 elements, not a multiple"),
    ("offset-unaligned", "llama", lambda d, lay: _at("offset_at", "<Q", lay.tensors[1].offset + 1, 1)(d, lay),
     r"is at data offset \d+, expected \d+"),
    ("offsets-overlap", "llama", _at("offset_at", "<Q", 0, 1), r"at data offset 0, expected"),
    ("data-past-eof", "llama", lambda d, lay: d[:lay.size - 64], r"ends past the end of the file"),
    ("duplicate-tensor", "store", _tis(lambda d, lay, tis: [tis[0], *tis]), r"duplicate tensor 'token_embd"),
    ("tensor-name-64-bytes", "store",
     _tis(lambda d, lay, tis: [gstr("x" * 64) + d[lay.tensors[0].ndims_at:lay.tensors[0].end], *tis[1:]]),
     r"name of 64 bytes \(at most 63\)"),
]

# Valid GGUF files that llama.cpp aborts on (GGML_ASSERT, seen as SIGABRT in the fuzz worker without the
# check): check_loadable refuses them before any native load.
ABORT_CASES: list[tuple[str, str, Build, str]] = [
    ("block-count-0", "store", _same, r"llama.block_count is 0, not 1..512"),    # what the store tests create
    ("block-count-513", "llama", _u32("llama.block_count", 513), r"block_count is 513"),
    ("nextn-past-blocks", "llama", _u32("llama.nextn_predict_layers", 2), r"nextn_predict_layers 2 is more"),
    ("used-experts-without-experts", "llama", _u32("llama.expert_used_count", 2), r"count 0 with 2 used"),
    ("too-many-experts", "llama", _u32("llama.expert_count", 1025), r"expert_count 1025 .*at most 1024"),
    ("expert-groups-without-experts", "llama", _u32("llama.expert_group_count", 2), r"2 without experts"),
    ("experts-none-used", "llama", _u32("llama.expert_count", 4), r"expert counts are inconsistent"),
    ("moe-arch-without-experts", "llama", _rename_arch("smallthinker"), r"smallthinker is a mixture of"),
    ("rope-scaling-type", "llama", _string("llama.rope.scaling.type", "linea"), r"'linea' is not one of"),
    ("bert-vocab-byte-tokens", "llama", _string("tokenizer.ggml.model", "bert"), r"\(bert\) .*byte tokens"),
    ("duplicate-token", "llama", _duplicate_token, r"token 4 \('<0x00>'\) is in the vocabulary twice"),
    ("alignment-16-misaligned", "llama", _misaligned, r"is not 32-byte aligned"),
]


def _build(seeds: list[Seed], seed: str, build: Build, path: Path) -> Path:
    s = next(x for x in seeds if x.name == seed)
    path.write_bytes(build(s.data, s.lay))
    return path


@pytest.mark.parametrize(("case", "seed", "build", "message"), READER_CASES, ids=[c[0] for c in READER_CASES])
def test_reader_refuses(seeds: list[Seed], tmp_path: Path, case: str, seed: str, build: Build,
                        message: str) -> None:
    path = _build(seeds, seed, build, tmp_path / f"{case}.gguf")
    for mode in READ_MODES[:2]:
        with pytest.raises(InvalidGGUF, match=message):
            gguf_meta.read(path, **mode)
    store = Store(tmp_path / "models")
    error = _create(store, path, "bad")
    assert error is not None and re.search(message, error), error
    assert _store_state(store) == (set(), set())


@pytest.mark.parametrize(("case", "seed", "build", "message"), ABORT_CASES, ids=[c[0] for c in ABORT_CASES])
def test_check_loadable_refuses(seeds: list[Seed], tmp_path: Path, case: str, seed: str, build: Build,
                                message: str) -> None:
    path = _build(seeds, seed, build, tmp_path / f"{case}.gguf")
    gguf_meta.read(path)                        # a valid GGUF: show and create take it
    with pytest.raises(InvalidGGUF, match=message + r".*; llama.cpp cannot load this file"):
        gguf_meta.check_loadable(path)


def test_fixed_cases_never_crash_the_loader(seeds: list[Seed], tmp_path: Path) -> None:
    """The fixed cases through the worker's load path: what the reader refuses, upstream's parser refuses too
    (the reader is not stricter than llama.cpp); what check_loadable refuses never reaches libllama for a
    full load; nothing aborts. The unmutated llama seed loads, so the worker does reach libllama."""
    worker = Worker(tmp_path / "worker.log")
    try:
        for case, seed, build, _ in READER_CASES:
            status, out = worker.load(_build(seeds, seed, build, tmp_path / f"{case}.gguf"), LOAD_TIMEOUT)
            assert status == "ok", (case, status, out)
            assert all(cls == "ModelLoadError" and as_gguf for cls, _, as_gguf in out), (case, out)
        for case, seed, build, message in ABORT_CASES:
            status, out = worker.load(_build(seeds, seed, build, tmp_path / f"{case}.gguf"), LOAD_TIMEOUT)
            assert status == "ok", (case, status, out)
            assert out[1][0] == "InvalidGGUF" and re.search(message, out[1][1]), (case, out)
        status, out = worker.load(_build(seeds, "llama", _same, tmp_path / "llama.gguf"), LOAD_TIMEOUT)
        assert (status, [cls for cls, _, _ in out]) == ("ok", ["ok", "ok"]), out
        assert worker.starts == 1
    finally:
        worker.close()


def test_seeds_are_what_the_families_expect(seeds: list[Seed], tmp_path: Path) -> None:
    """The mutator aims at fields it found by parsing: every seed parses back to the bytes it came from, and
    the seeds cover tensors, an explicit alignment and the vocabulary kinds."""
    for s in seeds:
        assert rebuild(s.data, s.lay, kv_bytes(s.data, s.lay), ti_bytes(s.data, s.lay)) == s.data, s.name
        (tmp_path / "seed.gguf").write_bytes(s.data)
        gguf_meta.check_loadable(tmp_path / "seed.gguf", vocab_only=True)
    names = {s.name for s in seeds}
    assert {"llama", "store", "lora", "llama-spm", "gpt-2", "bert-bge"} <= names
    llama = next(s for s in seeds if s.name == "llama")
    assert llama.lay.tensors and llama.lay.align == 32
    assert any(kv.key == "general.alignment" for kv in llama.lay.kvs)


def test_scheduler_checks_before_its_native_measurement(seeds: list[Seed], tmp_path: Path) -> None:
    """The scheduler measures a model with a native no-alloc load in the server's own process: a stored
    header-only GGUF (block_count 0) took `pyollama serve` down with SIGABRT on the first request. Now the
    load request is refused first; a loadable model still gets one."""
    from pyollama.config import Config
    from pyollama.scheduler import plan

    bad = _build(seeds, "store", _same, tmp_path / "store.gguf")
    with pytest.raises(InvalidGGUF, match=r"block_count is 0.*llama.cpp cannot load this file"):
        plan.load_request("headeronly", bad, {}, Config())
    good = _build(seeds, "llama", _same, tmp_path / "llama.gguf")
    assert plan.load_request("tiny", good, {}, Config()).spec.model_path == str(good)
