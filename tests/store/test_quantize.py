"""create --quantize: through ``pyollama._native.quantize`` (skipped only when the extension is missing)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import gguf
import numpy as np
import pytest
from store_helpers import run

from pyollama.store import CreateRequest, Store, create, gguf_meta, model_path, show
from pyollama.store.model import load as load_record
from pyollama.store.quantize import UnsupportedQuantization, normalize
from tests.tiny_gguf import save, write_tiny_gguf


def _native_available() -> bool:
    try:
        from pyollama import _native  # noqa: F401
    except ImportError:
        return False
    return True


needs_native = pytest.mark.skipif(not _native_available(),
                                  reason="pyollama._native (the engine extension) cannot be imported yet")


def f16_copy(src: Path, dst: Path) -> Path:
    """Dequantize a GGUF to F16 with the gguf package (1-D tensors and norms stay F32)."""
    r = gguf.GGUFReader(src)
    arch = r.fields["general.architecture"].contents()
    w = gguf.GGUFWriter(dst, arch)
    for k, f in r.fields.items():
        if k.startswith("GGUF.") or k in ("general.architecture", "general.file_type", "general.alignment"):
            continue
        vtype = f.types[0]
        sub = f.types[1] if vtype == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(k, f.contents(), vtype, sub)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    for t in r.tensors:
        data = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type)
        shape = tuple(reversed([int(x) for x in t.shape]))
        data = data.reshape(shape)
        w.add_tensor(t.name, data.astype(np.float16 if data.ndim >= 2 else np.float32))
    save(w)
    return dst


@pytest.fixture(scope="module")
def smollm2_f16(smollm2_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return f16_copy(smollm2_path, tmp_path_factory.mktemp("f16") / "smollm2-f16.gguf")


@pytest.mark.parametrize(("given", "want"), [("q4_K_M", "Q4_K_M"), ("q4_k_s", "Q4_K_S"), ("Q8_0", "Q8_0"),
                                             (" q6_K ", "Q6_K")])
def test_normalize(given: str, want: str) -> None:
    assert normalize(given) == want


def test_unknown_type_and_quantized_source_are_refused_before_writing(store: Store, smollm2_path: Path) -> None:
    with pytest.raises(UnsupportedQuantization, match="unsupported quantization type iq2_xxs"):
        CreateRequest.from_api({"model": "x", "from": "y", "quantize": "iq2_xxs"})
    with pytest.raises(UnsupportedQuantization,
                       match=r"only supported for F16, BF16 and F32 models \(this one is Q4_1\)"):
        run(create(store, CreateRequest(model="x", from_path=smollm2_path, quantize="q8_0")))
    assert not store.root.exists()


@needs_native
@pytest.mark.model
@pytest.mark.slow
@pytest.mark.parametrize("qtype", ["q8_0", "q4_K_M"])
def test_quantize_smollm2_f16(store: Store, smollm2_f16: Path, qtype: str) -> None:
    ev = run(create(store, CreateRequest(model=f"smol:{qtype}", from_path=smollm2_f16, quantize=qtype)))
    want = qtype.upper()
    assert {"status": f"quantizing F16 model to {want}"}.items() <= ev[1].items()
    out = model_path(store, f"smol:{qtype}")
    info = gguf_meta.read(out)
    assert info.file_type_name == want
    assert show(store, f"smol:{qtype}")["details"]["quantization_level"] == want
    f16_size = smollm2_f16.stat().st_size
    assert out.stat().st_size < f16_size * (0.6 if want == "Q8_0" else 0.4)
    types = {t.type.name for t in info.tensors if len(t.shape) == 2}
    assert types & ({"Q8_0"} if want == "Q8_0" else {"Q4_K", "Q6_K"})
    # The F16 input was imported only for this create and is not kept.
    assert store.blobs.digests() == sorted(store.manifest(f"smol:{qtype}").blob_digests())
    # The quantized model loads and generates (greedy, a few tokens).
    from pyollama.engine.llm import LLM
    with LLM(str(out), num_ctx=256) as llm:
        g = llm.complete("<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
                         num_predict=8, temperature=0)
        assert g.eval_count > 0 and g.text.strip()


@needs_native
@pytest.mark.model
def test_quantize_converted_minilm(store: Store, minilm_dir: Path) -> None:
    run(create(store, CreateRequest(model="minilm:q8", from_path=minilm_dir, quantize="q8_0")))
    assert gguf_meta.read(model_path(store, "minilm:q8")).file_type_name == "Q8_0"
    assert importlib.util.find_spec("pyollama._native") is not None


@needs_native
@pytest.mark.model
def test_draft_quantize_quantizes_the_draft_model_only(store: Store, smollm2_path: Path, tiny_model_path: Path) -> None:
    with pytest.raises(Exception, match="draft_quantize needs a draft model"):
        run(create(store, CreateRequest(model="x", from_path=smollm2_path, draft_quantize="q8_0")))
    with pytest.raises(UnsupportedQuantization, match=r"\(this one is Q4_1\)"):
        run(create(store, CreateRequest(model="x", from_path=tiny_model_path, draft_path=smollm2_path,
                                        draft_quantize="q8_0")))
    assert not store.root.exists()                       # refused before anything was written
    have = gguf_meta.read(tiny_model_path, max_array=0).file_type_name
    ev = run(create(store, CreateRequest(model="smol-drafted", from_path=smollm2_path, draft_path=tiny_model_path,
                                         draft_quantize="q8_0")))
    assert any(e.get("status") == f"quantizing {have} draft model to Q8_0" for e in ev)
    rec = load_record(store, "smol-drafted")
    assert gguf_meta.read(rec.draft_path, max_array=0).file_type_name == "Q8_0"
    assert rec.model_path.read_bytes()[:1 << 16] == smollm2_path.read_bytes()[:1 << 16]   # untouched
    assert "\nDRAFT " in show(store, "smol-drafted")["modelfile"]
