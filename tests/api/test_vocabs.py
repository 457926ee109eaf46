"""The server's own tokenizer (api/vocabs.py): the same tokens as the runner's model, loaded once per file
for concurrent callers, short texts inline and long ones in a thread, a bounded number kept."""
from __future__ import annotations

import asyncio

from pyollama import _native
from pyollama.api import vocabs as V
from pyollama.errors import ModelLoadError
from tests.api.helpers import error_of

TEXTS = ["hello world", "<|im_start|>user\nWhy is the sky blue?<|im_end|>", "naïve café ☕ 日本語",
         "x " * (V.INLINE_CHARS + 10)]         # the last one goes through a worker thread


def test_tokens_equal_the_full_models(tiny_model_path):
    full = _native.Model(str(tiny_model_path), n_gpu_layers=0)
    vocabs = V.Vocabs()

    async def main():
        out = []
        for text in TEXTS:
            for add, parse in ((True, True), (False, False)):
                toks = await vocabs.tokenize(str(tiny_model_path), text, add, parse)
                out.append((toks, await vocabs.detokenize(str(tiny_model_path), toks)))
        return out

    got = asyncio.run(main())
    want = []
    for text in TEXTS:
        for add, parse in ((True, True), (False, False)):
            toks = full.vocab.tokenize(text, add_special=add, parse_special=parse)
            want.append((toks, full.vocab.detokenize(toks)))
    assert got == want and got[0][0]


def test_one_load_for_concurrent_callers_and_lru(tiny_model_path, vocab_dir, monkeypatch):
    loads: list[str] = []
    real = _native.Model

    def counting(path, **kw):
        loads.append(path)
        assert kw == {"vocab_only": True}
        return real(path, **kw)
    monkeypatch.setattr(V._native, "Model", counting)
    others = sorted(str(p) for p in vocab_dir.glob("ggml-vocab-*.gguf"))[:2]
    assert len(others) == 2
    vocabs = V.Vocabs(keep=2)

    async def main():
        vocabs.prefetch(tiny_model_path)              # started without waiting; a Path and its str are one key
        a = await asyncio.gather(*(vocabs.tokenize(str(tiny_model_path), "hi") for _ in range(5)))
        assert len(set(map(tuple, a))) == 1
        vocabs.prefetch(str(tiny_model_path))         # already there: nothing to do
        assert loads == [str(tiny_model_path)]
        for p in others:                              # two more files: the first one falls out
            await vocabs.tokenize(p, "hi")
        await vocabs.tokenize(others[0], "again")     # still kept
        assert len(loads) == 3
        await vocabs.tokenize(str(tiny_model_path), "hi")
        assert len(loads) == 4

    asyncio.run(main())


def test_a_bad_file_fails_each_caller_and_is_retried(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 60)
    vocabs = V.Vocabs()

    async def main():
        for _ in range(2):
            results = await asyncio.gather(vocabs.tokenize(str(bad), "a"), vocabs.tokenize(str(bad), "b"),
                                           return_exceptions=True)
            assert all(isinstance(r, (ModelLoadError, ValueError)) for r in results), results
        assert not vocabs._models and not vocabs._loading

    asyncio.run(main())


def test_tokenize_routes_use_the_vocabulary_only(serve, tiny_model_path):
    """/api/tokenize and /api/detokenize answer from the server's vocabulary: a loaded runner (here with a
    non-default context) is neither evicted nor reloaded, and a model not loaded stays unloaded."""
    s = serve()
    r = s.post("/api/generate", json={"model": "tiny", "prompt": "hi", "stream": False,
                                      "options": {"num_ctx": 256, "num_predict": 1}})
    assert r.status_code == 200, r.text
    pids = s.runner_pids()
    with _native.Model(str(tiny_model_path), vocab_only=True) as full:
        want = full.vocab.tokenize("Hello <s> world", add_special=True, parse_special=True)
        r = s.post("/api/tokenize", json={"model": "tiny", "content": "Hello <s> world", "keep_alive": "1m"})
        assert r.status_code == 200 and r.json() == {"model": "tiny", "tokens": want}
        raw = s.post("/api/tokenize", json={"model": "tiny", "content": "Hello <s> world", "add_special": False,
                                            "parse_special": False}).json()["tokens"]
        assert raw == full.vocab.tokenize("Hello <s> world", add_special=False, parse_special=False)
        r = s.post("/api/detokenize", json={"model": "tiny", "tokens": want})
        assert r.status_code == 200 and r.json()["content"] == full.vocab.detokenize(want)
    assert s.post("/api/tokenize", json={"model": "gemma3", "content": "hi"}).status_code == 200
    assert s.runner_pids() == pids
    assert [(m["name"], m["context_length"]) for m in s.ps()] == [("tiny:latest", 256)]
    r = s.post("/api/detokenize", json={"model": "tiny", "tokens": [10 ** 7]})
    assert r.status_code == 400 and "out of range" in error_of(r)
    r = s.post("/api/tokenize", json={"model": "tiny", "content": "x", "options": {"num_ctx": "big"}})
    assert r.status_code == 400
    assert s.post("/api/tokenize", json={"model": "nope", "content": "x"}).status_code == 404
