"""The fast GGUF header reader agrees with the gguf package's GGUFReader."""
from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest

from pyollama.store import gguf_meta
from pyollama.store.gguf_meta import InvalidGGUF, SkippedArray, file_type_name, human_number
from tests.tiny_gguf import write_tiny_gguf


def _reference(path: Path) -> tuple[dict, list]:
    r = gguf.GGUFReader(path)
    kv = {}
    for k, f in r.fields.items():
        if k.startswith("GGUF."):
            continue
        v = f.contents()
        kv[k] = v
    tensors = [(t.name, tuple(int(x) for x in t.shape), gguf.GGMLQuantizationType(t.tensor_type)) for t in r.tensors]
    return kv, tensors


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return bool(np.float32(a) == np.float32(b))
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _compare(path: Path) -> None:
    ref_kv, ref_tensors = _reference(path)
    info = gguf_meta.read(path, max_array=None)
    assert list(info.kv) == list(ref_kv)
    for k, v in ref_kv.items():
        assert _same(info.kv[k], v), k
    assert [(t.name, t.shape, t.type) for t in info.tensors] == ref_tensors
    r = gguf.GGUFReader(path)
    assert info.data_offset == r.data_offset
    assert [info.data_offset + t.offset for t in info.tensors] == [int(t.data_offset) for t in r.tensors]


def test_matches_gguf_reader_on_generated_file(tmp_path: Path) -> None:
    _compare(write_tiny_gguf(tmp_path / "t.gguf", chat_template="{{ x }}", pooling=True, n_vocab=300))


@pytest.mark.model
@pytest.mark.slow
def test_matches_gguf_reader_on_smollm2(smollm2_path: Path) -> None:
    _compare(smollm2_path)


def test_long_arrays_are_skipped(tmp_path: Path) -> None:
    p = write_tiny_gguf(tmp_path / "t.gguf", n_vocab=40)
    info = gguf_meta.read(p)
    assert info.kv["tokenizer.ggml.tokens"] == SkippedArray(gguf.GGUFValueType.STRING, 40)
    assert gguf_meta.read(p, max_array=100).kv["tokenizer.ggml.tokens"][39] == "t39"
    assert info.parameter_count == 40 * 16 + 16 and info.file_type_name == "F32"
    assert info.tensors[0].n_bytes == 40 * 16 * 4


@pytest.mark.parametrize(("n", "s"), [(134515008, "134.52M"), (268098176, "268.10M"), (22565376, "22.57M"),
                                      (8_030_261_248, "8.0B"), (7_000_000_000, "7B"), (1_000_000, "1M"),
                                      (22_000, "22K"), (999, "999")])
def test_human_number(n: int, s: str) -> None:
    assert human_number(n) == s


@pytest.mark.parametrize(("ft", "s"), [(0, "F32"), (1, "F16"), (2, "Q4_0"), (3, "Q4_1"), (7, "Q8_0"),
                                       (15, "Q4_K_M"), (14, "Q4_K_S"), (18, "Q6_K"), (32, "BF16"), (38, "MXFP4"),
                                       (None, "unknown"), (999, "unknown")])
def test_file_type_names(ft: int | None, s: str) -> None:
    assert file_type_name(ft) == s


def test_truncated_and_foreign_files(tmp_path: Path) -> None:
    good = write_tiny_gguf(tmp_path / "t.gguf").read_bytes()
    for i, data in enumerate([b"", b"GGUF", b"NOPE" + good[4:], good[:40], good[:200]]):
        p = tmp_path / f"bad{i}.gguf"
        p.write_bytes(data)
        with pytest.raises(InvalidGGUF):
            gguf_meta.read(p)
    with pytest.raises(InvalidGGUF, match="no such file"):
        gguf_meta.read(tmp_path / "missing.gguf")
