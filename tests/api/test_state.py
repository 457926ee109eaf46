"""ServerState: a model's record is reused between requests only while its manifest is unchanged: a model
re-created, copied over or deleted under the same name is seen by the very next request."""
from __future__ import annotations


def _rendered(server, model: str) -> str:
    r = server.post("/api/chat", json={"model": model, "messages": [{"role": "user", "content": "hi"}],
                                       "stream": False, "_debug_render_only": True})
    assert r.status_code == 200, r.text
    return r.json()["_debug_info"]["rendered_template"]


def _create(server, name: str, system: str) -> None:
    r = server.post("/api/create", json={"model": name, "from": "smollm2:135m", "system": system, "stream": False})
    assert r.status_code == 200, r.text


def test_a_rewritten_manifest_is_read_again(server):
    _create(server, "recache", "alpha system")
    assert "alpha system" in _rendered(server, "recache")
    _create(server, "recache", "beta system")                  # same name, new manifest
    text = _rendered(server, "recache")
    assert "beta system" in text and "alpha system" not in text
    _create(server, "recache-src", "gamma system")
    assert server.post("/api/copy", json={"source": "recache-src", "destination": "recache"}).status_code == 200
    assert "gamma system" in _rendered(server, "recache")
    assert server.request("DELETE", "/api/delete", json={"model": "recache"}).status_code == 200
    r = server.post("/api/chat", json={"model": "recache", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 404
