"""Tokenizer: upstream's own test vectors for every vocab-only GGUF in the pinned tree."""
from __future__ import annotations

import pytest

from pyollama import _native
from pyollama.errors import TokenizeError

SEP = "\n__ggml_vocab_test__\n"


def _cases(vocab_dir):
    for inp in sorted(vocab_dir.glob("ggml-vocab-*.gguf.inp")):
        yield inp.name[: -len(".inp")]


def pytest_generate_tests(metafunc):
    if "vocab_case" in metafunc.fixturenames:
        from tests.conftest import VOCAB_DIR
        names = list(_cases(VOCAB_DIR)) if VOCAB_DIR.is_dir() else []
        metafunc.parametrize("vocab_case", names)


def test_upstream_tokenizer_vectors(vocab_dir, vocab_case):
    """Same inputs, flags and expected ids as upstream's tests/test-tokenizer-0.cpp."""
    raw = (vocab_dir / f"{vocab_case}.inp").read_text(encoding="utf-8")
    inputs = raw.split(SEP)
    if raw.endswith(SEP):
        inputs.pop()                    # upstream's reader stops at the last separator
    outputs = (vocab_dir / f"{vocab_case}.out").read_text(encoding="utf-8").splitlines()
    assert len(inputs) == len(outputs)
    vocab = _native.Model(vocab_dir / vocab_case, vocab_only=True).vocab
    failures = []
    for text, expected in zip(inputs, outputs):
        want = [int(t) for t in expected.split()]
        got = vocab.tokenize(text, add_special=False, parse_special=False)
        if got != want:
            failures.append((text, want, got))
    assert not failures, f"{len(failures)} of {len(inputs)} differ, first: {failures[0]}"


@pytest.fixture(scope="module")
def vocab(tiny_model_path):
    return _native.Model(tiny_model_path, vocab_only=True).vocab


def test_special_tokens(vocab):
    assert vocab.bos == 1 and vocab.eos == 2 and vocab.add_bos and not vocab.add_eos
    assert vocab.is_eog(2) and not vocab.is_eog(1) and not vocab.is_eog(-5)
    assert vocab.type == "spm" and len(vocab) == 32000
    assert vocab.text(1) == "<s>" and vocab.is_control(1)


def test_parse_special(vocab):
    assert vocab.tokenize("<s>x", add_special=False, parse_special=True)[0] == 1
    assert 1 not in vocab.tokenize("<s>x", add_special=False, parse_special=False)


def test_detokenize_roundtrip(vocab):
    text = "Hello wörld, 🦙 — ünïcödé\ttabs\nnewline"
    toks = vocab.tokenize(text, add_special=False)
    assert vocab.detokenize(toks) == text
    # SentencePiece pieces carry the leading-space marker of the first word
    assert b"".join(vocab.token_to_piece(t) for t in toks).decode() == " " + text


def test_long_text_grows_buffer(vocab):
    text = "word " * 5000
    toks = vocab.tokenize(text)
    assert len(toks) > 5000 and vocab.detokenize(toks[1:]).strip() == text.strip()


def test_bad_token_ids_raise(vocab):
    for bad in (-1, 32000, 10**6):
        with pytest.raises(TokenizeError, match="out of range"):
            vocab.token_to_piece(bad)
        with pytest.raises(TokenizeError):
            vocab.detokenize([5, bad])


def test_tokenize_from_threads(vocab):
    """Tokenization is documented thread-safe upstream; it releases the GIL."""
    from concurrent.futures import ThreadPoolExecutor
    texts = [f"sample {i} " * 50 for i in range(32)]
    expected = [vocab.tokenize(t) for t in texts]
    with ThreadPoolExecutor(4) as ex:
        assert list(ex.map(vocab.tokenize, texts)) == expected
