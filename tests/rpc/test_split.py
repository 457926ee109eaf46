"""A model split across the local CPU and two RPC workers on loopback computes what it computes on the
local CPU alone: greedy tokens identical (SmolLM2, Gemma 3), embeddings equal (MiniLM)."""
from __future__ import annotations

import math

import pytest

from tests.rpc.conftest import PROMPT, cluster, generate, unload

pytestmark = [pytest.mark.model, pytest.mark.slow]

# (model, layers offloaded): part of the layers on the workers, the rest and the output on the CPU.
# The whole model on the workers moves the output matmul there too; for Gemma 3 (Q4_K/Q6_K) that picks
# other CPU kernels than the head's (its CPU backend repacks weights it holds, a worker's plain buffers
# are not repacked), so its greedy text may drift: checked for placement, not tokens.
CASES = [("smollm2:135m", 20, True), ("gemma3", 12, False)]


@pytest.fixture(scope="module")
def split_server(model_store, tmp_path_factory):
    s, ws = cluster(model_store, tmp_path_factory.mktemp("rpc-split"))
    yield s, ws
    s.stop()
    for w in ws:
        w.stop()


def _devices(server, model):
    (m,) = [m for m in server.ps() if m["name"] in (model, f"{model}:latest")]
    return m, {d["name"]: d["size"] for d in m["devices"]}


@pytest.mark.parametrize("model,layers,whole_identical", CASES)
def test_split_generates_the_local_tokens(split_server, model, layers, whole_identical):
    server, ws = split_server
    local = generate(server, model, PROMPT, num_gpu=0)
    m, devs = _devices(server, model)
    assert list(devs) == ["CPU"] and m["size_vram"] == 0
    unload(server, model)

    split = generate(server, model, PROMPT, num_gpu=layers, tensor_split="1,1")
    m, devs = _devices(server, model)
    labels = [f"RPC[{w.endpoint}]" for w in ws]
    assert sorted(devs) == sorted(["CPU", *labels]), devs
    assert all(devs[k] > 0 for k in labels) and 0 < m["size_vram"] < m["size"]
    assert split["context"] == local["context"], (local["response"], split["response"])
    assert split["eval_count"] == local["eval_count"] > 0

    # the whole model on the workers (num_gpu -1 with a split)
    unload(server, model)
    whole = generate(server, model, PROMPT, num_gpu=-1, tensor_split="1,1")
    m, devs = _devices(server, model)
    assert all(devs.get(k, 0) > 0 for k in labels), devs
    assert whole["eval_count"] == local["eval_count"]
    if whole_identical:
        assert whole["context"] == local["context"]
    unload(server, model)


def test_split_embeddings_match(split_server):
    server, ws = split_server
    texts = ["why is the sky blue?", "a cat sat on the mat"]

    def embed(**options):
        r = server.post("/api/embed", json={"model": "minilm", "input": texts, "options": options})
        assert r.status_code == 200, r.text
        return r.json()["embeddings"]

    local = embed(num_gpu=0)
    unload(server, "minilm")
    split = embed(num_gpu=4, tensor_split="1,1")
    _, devs = _devices(server, "minilm")
    assert all(devs.get(f"RPC[{w.endpoint}]", 0) > 0 for w in ws), devs
    unload(server, "minilm")
    for a, b in zip(local, split):
        cos = sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))
        assert cos >= 0.9999, cos


def test_backends_lists_workers(split_server, monkeypatch):
    import pyollama

    _, ws = split_server
    monkeypatch.setenv("PYOLLAMA_RPC_SERVERS", ",".join(w.endpoint for w in ws))
    rpc = [d for d in pyollama.backends() if d["backend"] == "RPC"]
    assert [d["name"] for d in rpc] == [f"RPC[{w.endpoint}]" for w in ws]
    assert all(d["memory_total"] >= d["memory_free"] > 0 for d in rpc)
