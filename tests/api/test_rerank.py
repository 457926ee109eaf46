"""Rerank (``/api/rerank``, ``/v1/rerank``) with a reranker GGUF: the scores equal llama-server
``--reranking``'s from the same pin for the same model, results come best first, and the errors are
clear. No reranker is packaged on PyPI, so the model is a random-weight BERT cross-encoder with the
vendored bert-bge WordPiece vocabulary (tests/tiny_gguf.write_tiny_bert), shaped as upstream's converter
writes real ones (``cls``/``cls.output`` head, rank pooling)."""
from __future__ import annotations

import hashlib

import pytest

from tests.llama_server import llama_server
from tests.tiny_gguf import write_tiny_bert

QUERIES = ["What is the capital of France?", "How do plants make food?", "Who wrote Hamlet?",
           "What is the boiling point of water?", "How fast is light?"]
DOCUMENTS = ["Paris is the capital and largest city of France.", "Photosynthesis turns light into sugar.",
             "William Shakespeare wrote Hamlet around 1600.", "Water boils at 100 degrees Celsius at sea level.",
             "Light travels at about 300,000 kilometres per second.", "Bananas are rich in potassium.",
             "The Eiffel Tower is in Paris.", "Chlorophyll makes leaves green.",
             "Romeo and Juliet is a tragedy.", "Ice melts at zero degrees."]


@pytest.fixture(scope="module")
def reranker(server, vocab_dir, tmp_path_factory):
    path = write_tiny_bert(tmp_path_factory.mktemp("rerank") / "tiny-reranker.gguf",
                           vocab_dir / "ggml-vocab-bert-bge.gguf", rerank=True)
    data = path.read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert server.post(f"/api/blobs/{digest}", content=data).status_code in (200, 201)
    r = server.post("/api/create", json={"model": "reranker", "files": {"r.gguf": digest}, "stream": False})
    assert r.status_code == 200, r.text
    return path


def test_scores_equal_llama_servers(server, reranker, tmp_path):
    ours = {}
    for q in QUERIES:
        r = server.post("/v1/rerank", json={"model": "reranker", "query": q, "documents": DOCUMENTS})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["object"] == "list" and body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0
        ours[q] = {x["index"]: x["relevance_score"] for x in body["results"]}
        scores = [x["relevance_score"] for x in body["results"]]
        assert scores == sorted(scores, reverse=True) and sorted(ours[q]) == list(range(len(DOCUMENTS)))
    with llama_server(reranker, ["--reranking", "-c", "512", "-np", "1", "-t", "2", "--no-warmup"], tmp_path) as c:
        for q in QUERIES:
            r = c.post("/v1/rerank", json={"query": q, "documents": DOCUMENTS})
            r.raise_for_status()
            theirs = {x["index"]: x["relevance_score"] for x in r.json()["results"]}
            assert theirs.keys() == ours[q].keys()
            assert max(abs(theirs[i] - ours[q][i]) for i in theirs) < 1e-3, (q, theirs, ours[q])
    spread = [s for q in QUERIES for s in ours[q].values()]
    assert max(spread) - min(spread) > 0.1          # the scores say something (not one constant)


def test_native_route_top_n_and_documents(server, reranker):
    r = server.post("/api/rerank", json={"model": "reranker", "query": QUERIES[0], "documents": DOCUMENTS,
                                         "top_n": 3, "return_documents": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "reranker" and body["prompt_eval_count"] > 0 and body["total_duration"] > 0
    assert len(body["results"]) == 3
    full = server.post("/api/rerank", json={"model": "reranker", "query": QUERIES[0], "documents": DOCUMENTS}).json()
    assert [x["index"] for x in body["results"]] == [x["index"] for x in full["results"][:3]]
    assert all(x["document"] == {"text": DOCUMENTS[x["index"]]} for x in body["results"])
    assert all("document" not in x for x in full["results"])
    show = server.post("/api/show", json={"model": "reranker"}).json()
    assert show["capabilities"] == ["rerank"]


@pytest.mark.parametrize(("body", "error"), [
    ({"model": "reranker", "documents": ["a"]}, '"query" must be provided'),
    ({"model": "reranker", "query": 1, "documents": ["a"]}, '"query" must be a string'),
    ({"model": "reranker", "query": "q", "documents": []}, '"documents" must be a non-empty string array'),
    ({"model": "reranker", "query": "q", "documents": ["a", 2]}, '"documents" must be a non-empty string array'),
    ({"model": "reranker", "query": "q", "documents": ["a"], "top_n": 0}, '"top_n" must be a positive integer'),
    ({"model": "smollm2:135m", "query": "q", "documents": ["a"]}, '"smollm2:135m" does not support reranking'),
])
def test_bad_requests(server, reranker, body, error):
    r = server.post("/api/rerank", json=body)
    assert r.status_code == 400 and error in r.json()["error"]


def test_a_pair_longer_than_the_context_is_refused_not_cut(server, reranker):
    r = server.post("/api/rerank", json={"model": "reranker", "query": "q", "documents": ["word " * 2000]})
    assert r.status_code == 400 and "exceeds the context length" in r.json()["error"]


def test_a_reranker_does_not_embed_or_chat(server, reranker):
    r = server.post("/api/embed", json={"model": "reranker", "input": "hello"})
    assert r.status_code == 400 and "is a reranker" in r.json()["error"]
    r = server.post("/api/chat", json={"model": "reranker", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 400
