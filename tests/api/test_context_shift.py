"""Ollama's ``shift`` through /api/generate and /api/chat: on by default, a generation goes past the
context (the runner shifts it); ``shift: false`` ends it at the context; a non-boolean is a 400."""
from __future__ import annotations

import pytest

from tests.api.helpers import T, error_of

pytestmark = [pytest.mark.model, pytest.mark.slow]

# num_ctx 256: llama.cpp's smallest slot
OPTS = {"temperature": 0, "num_predict": 320, "num_ctx": 256}


@pytest.mark.parametrize("path,body", [
    ("/api/generate", {"model": T, "prompt": "hi", "stream": False, "raw": True}),
    ("/api/chat", {"model": T, "messages": [{"role": "user", "content": "hi"}], "stream": False}),
])
def test_shift_default_on_and_off(server, path, body):
    on = server.post(path, json={**body, "options": OPTS})
    assert on.status_code == 200, on.text
    assert on.json()["eval_count"] == 320                       # past the 256-cell slot
    off = server.post(path, json={**body, "options": OPTS, "shift": False})
    assert off.status_code == 200, off.text
    d = off.json()
    assert d["done_reason"] == "length" and d["prompt_eval_count"] + d["eval_count"] <= 257


def test_shift_must_be_boolean(server):
    r = server.post("/api/generate", json={"model": T, "prompt": "hi", "shift": "no"})
    assert r.status_code == 400 and '"shift" must be true or false' in error_of(r)
