"""Model loading: metadata, vocab-only, progress/abort, and clear errors for bad files."""
from __future__ import annotations

import os

import pytest

from pyollama import _native
from pyollama.errors import ContextError, ModelLoadError


def test_load_metadata(tiny_model_path):
    m = _native.Model(tiny_model_path)
    assert m.arch == "llama"
    assert m.n_embd == 64 and m.n_layer == 2 and m.n_head == 4 and m.n_head_kv == 2
    assert m.n_vocab == 32000 and m.n_ctx_train == 512
    assert m.n_params > 4_000_000 and m.size > 0
    meta = m.metadata
    assert meta["general.architecture"] == "llama"
    assert meta["general.name"] == "tiny-random-llama"
    assert "llama.embedding_length" in meta
    assert m.chat_template() is None
    assert m.has_decoder and not m.has_encoder and not m.is_recurrent


@pytest.mark.model
def test_real_model_metadata(smollm2_path):
    with _native.Model(smollm2_path) as m:
        assert m.arch == "llama"
        assert m.ftype == "Q4_1"
        assert "<|im_start|>" in m.chat_template()
        assert m.n_ctx_train == 8192 and m.n_embd == 576
    assert m.closed


def test_vocab_only(tiny_model_path):
    m = _native.Model(tiny_model_path, vocab_only=True)
    assert m.vocab.tokenize("Hello world") == [1, 15043, 3186]
    with pytest.raises(ContextError, match="vocab_only"):
        _native.Context(m)


def test_progress_callback_and_abort(tiny_model_path):
    seen = []
    _native.Model(tiny_model_path, progress=lambda f: seen.append(f))
    assert seen and seen[-1] == pytest.approx(1.0)
    with pytest.raises(ModelLoadError, match="cancelled"):
        _native.Model(tiny_model_path, progress=lambda f: False)


def test_progress_callback_exception_propagates(tiny_model_path):
    def boom(f):
        raise RuntimeError("stop here")
    with pytest.raises(RuntimeError, match="stop here"):
        _native.Model(tiny_model_path, progress=boom)


def test_missing_file(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        _native.Model(tmp_path / "nope.gguf")


def test_directory(tmp_path):
    with pytest.raises(ModelLoadError, match="directory"):
        _native.Model(tmp_path)


def test_empty_file(tmp_path):
    p = tmp_path / "empty.gguf"
    p.write_bytes(b"")
    with pytest.raises(ModelLoadError, match="not a GGUF file"):
        _native.Model(p)


def test_text_file_renamed(tmp_path):
    p = tmp_path / "readme.gguf"
    p.write_text("# not a model\nhello\n")
    with pytest.raises(ModelLoadError, match="not a GGUF file"):
        _native.Model(p)


def test_random_bytes_with_magic(tmp_path):
    p = tmp_path / "random.gguf"
    p.write_bytes(b"GGUF" + os.urandom(4096))
    with pytest.raises(ModelLoadError, match="failed to load"):
        _native.Model(p)


@pytest.mark.parametrize("fraction", [0.01, 0.3, 0.9, 0.999])
def test_truncated_gguf(tmp_path, tiny_model_path, fraction):
    data = tiny_model_path.read_bytes()
    p = tmp_path / "truncated.gguf"
    p.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ModelLoadError, match="failed to load"):
        _native.Model(p)


def test_close_refused_while_context_open(tiny_model_path):
    m = _native.Model(tiny_model_path)
    ctx = _native.Context(m, n_ctx=64)
    with pytest.raises(ValueError, match="open context"):
        m.close()
    ctx.close()
    m.close()
    assert m.closed
    with pytest.raises(ValueError, match="closed"):
        m.n_embd


def test_context_keeps_model_alive(tiny_model_path):
    ctx = _native.Context(_native.Model(tiny_model_path), n_ctx=64)
    assert ctx.model.n_embd == 64          # the Model object lives as long as its context


def test_kv_overrides(tiny_model_path):
    m = _native.Model(tiny_model_path, kv_overrides={"llama.context_length": 256})
    assert m.n_ctx_train == 256
    with pytest.raises(TypeError):
        _native.Model(tiny_model_path, kv_overrides={"llama.context_length": [1]})


def test_save_roundtrip(tmp_path, tiny_model_path):
    m = _native.Model(tiny_model_path)
    out = tmp_path / "saved.gguf"
    m.save(out)
    m2 = _native.Model(out)
    assert m2.n_params == m.n_params and m2.n_vocab == m.n_vocab


def test_devices_listed():
    import pyollama
    devs = pyollama.backends()
    assert any(d["type"] == "cpu" for d in devs)
    for d in devs:
        assert d["memory_total"] >= d["memory_free"] >= 0 and d["name"]
