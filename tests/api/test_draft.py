"""A model with a draft model (Ollama's DRAFT / ``draft_files``) through the HTTP API: created from
uploaded blobs, shown, served with speculative decoding (same answer as without, the counts in the
final chunk and /metrics), and ``draft_num_predict`` as Ollama reads it."""
from __future__ import annotations

import hashlib

import pytest

from pyollama import _native

pytestmark = pytest.mark.model


def _upload(server, path) -> str:
    data = path.read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    r = server.post(f"/api/blobs/{digest}", content=data)
    assert r.status_code in (200, 201), r.text
    return digest


@pytest.fixture(scope="module")
def drafted(server, smollm2_path, tmp_path_factory) -> str:
    draft = tmp_path_factory.mktemp("draft") / "smollm2-q4_0.gguf"
    _native.quantize(str(smollm2_path), str(draft), "Q4_0", allow_requantize=True)
    r = server.post("/api/create", json={
        "model": "smol-drafted", "stream": False,
        "files": {"smollm2.gguf": _upload(server, smollm2_path)},
        "draft_files": {"draft.gguf": _upload(server, draft)}})
    assert r.status_code == 200, r.text
    return "smol-drafted"


def _chat(server, model: str, **opts):
    r = server.post("/api/chat", json={
        "model": model, "stream": False, "options": {"temperature": 0, "num_predict": 40, **opts},
        "messages": [{"role": "user", "content": "Count from 1 to 20, separated by commas."}]})
    assert r.status_code == 200, r.text
    return r.json()


def test_a_drafted_model_answers_as_without_its_draft(server, drafted):
    show = server.post("/api/show", json={"model": drafted}).json()
    assert "\nDRAFT " in show["modelfile"]
    plain = _chat(server, "smollm2:135m")
    fast = _chat(server, drafted)
    assert fast["message"]["content"] == plain["message"]["content"]
    assert "draft_count" not in plain                         # Ollama's fields only, without drafts
    assert 0 < fast["draft_accepted_count"] <= fast["draft_count"]
    metrics = server.get("/metrics").text
    accepted = [line for line in metrics.splitlines() if line.startswith("pyollama_draft_accepted_total")]
    assert accepted and sum(float(line.split()[-1]) for line in accepted) >= fast["draft_accepted_count"]


def _metric(server, family: str, model: str) -> float:
    lines = [line for line in server.get("/metrics").text.splitlines()
             if line.startswith(family + "{") and f'model="{model}' in line]
    assert lines, family
    return sum(float(line.split()[-1]) for line in lines)


def test_draft_num_predict(server, drafted):
    off = _chat(server, drafted, draft_num_predict=0)         # the draft model is not loaded
    assert "draft_count" not in off
    assert off["message"]["content"] == _chat(server, "smollm2:135m")["message"]["content"]
    two = _chat(server, drafted, draft_num_predict=2)         # a runner option: reloads with it
    assert two["message"]["content"] == off["message"]["content"]
    # The reloaded runner has served this request alone: its counters are this request's drafts.
    drafts, tokens = (_metric(server, f"pyollama_{name}_total", drafted) for name in ("drafts", "draft_tokens"))
    assert tokens == two["draft_count"] and 0 < drafts and tokens <= 2 * drafts     # none longer than 2
    r = server.post("/api/chat", json={"model": drafted, "messages": [{"role": "user", "content": "hi"}],
                                       "options": {"draft_num_predict": -1}})
    assert r.status_code == 400 and "draft_num_predict must be between 0 and 64" in r.json()["error"]
