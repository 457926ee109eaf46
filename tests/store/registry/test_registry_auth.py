"""Private registries: HTTP basic (htpasswd) and the bearer token flow, against the real registry.
No or wrong credentials give a clear 401 error; right ones work; no secret ever reaches a log line,
an event or an error message."""
from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import pytest
from registry_helpers import fast_options, make_model
from registry_servers import TokenServer, htpasswd_auth

from pyollama.errors import AuthError
from pyollama.store import Store
from pyollama.store.registry import Credentials, pull, push

USER, PASSWORD = "tester", "s3cret-Pa55word"


@pytest.fixture
def basic_registry(make_registry, tmp_path: Path):
    root = tmp_path / "basic"
    root.mkdir()
    return make_registry("basic", auth=htpasswd_auth(root, USER, PASSWORD))


@pytest.fixture
def token_registry(make_registry, tmp_path: Path):
    root = tmp_path / "tok"
    root.mkdir()
    tokens = TokenServer(root, {USER: PASSWORD})
    reg = make_registry("tok", auth=tokens.registry_auth())
    reg.tokens = tokens
    yield reg
    tokens.close()


def _run(it) -> tuple[list[dict], BaseException | None]:
    events: list[dict] = []
    try:
        for e in it:
            events.append(e)
    except Exception as e:   # noqa: BLE001 - the test inspects it
        return events, e
    return events, None


def _secrets_absent(texts: list[str], secrets: list[str]) -> None:
    for t in texts:
        for s in secrets:
            assert s not in t


@pytest.mark.parametrize("kind", ["basic", "bearer"])
def test_credentials(kind: str, request, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    reg = request.getfixturevalue("basic_registry" if kind == "basic" else "token_registry")
    caplog.set_level(logging.DEBUG)
    src = Store(tmp_path / "src")
    name = f"{reg.host}/team/private:v1"
    make_model(src, name, model_size=300_000)
    messages: list[str] = []

    # no credentials
    _, err = _run(push(src, name, options=fast_options()))
    assert isinstance(err, AuthError) and err.status == 401
    assert str(err).startswith(f"unauthorized: authentication required by {reg.host}; no credentials")
    messages.append(str(err))
    # wrong password
    _, err = _run(push(src, name, options=fast_options(), credentials=Credentials(USER, "wrong-pw")))
    assert isinstance(err, AuthError)
    assert str(err) == f"unauthorized: {reg.host} rejected the credentials for '{USER}'"
    messages.append(str(err))
    # right ones: push, then pull into a fresh store
    right = Credentials(USER, PASSWORD)
    events, err = _run(push(src, name, options=fast_options(), credentials=right))
    assert err is None and events[-1] == {"status": "success"}
    dst = Store(tmp_path / "dst")
    _, err = _run(pull(dst, name, options=fast_options()))
    assert isinstance(err, AuthError)
    events2, err = _run(pull(dst, name, options=fast_options(), credentials=right))
    assert err is None and events2[-1] == {"status": "success"}
    assert dst.manifest(name).bytes() == src.manifest(name).bytes()

    secrets = [PASSWORD, base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()]
    if kind == "bearer":
        issued = reg.tokens.tokens_issued
        assert issued
        secrets += issued
        assert all(r["had_auth"] for r in reg.tokens.requests[-3:])
    _secrets_absent([caplog.text, reg.log_text(), json.dumps(events + events2), *messages,
                     repr(right), str(right)], secrets)


def test_credentials_from_env_and_file(basic_registry, tmp_path: Path, monkeypatch) -> None:
    src = Store(tmp_path / "src")
    name = f"{basic_registry.host}/team/private:v1"
    make_model(src, name, model_size=1000)
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    # a Docker-style config file
    cfg = tmp_path / "auth.json"
    cfg.write_text(json.dumps({"auths": {f"http://{basic_registry.host}": {"auth": auth}}}))
    monkeypatch.setenv("PYOLLAMA_REGISTRY_AUTH_FILE", str(cfg))
    assert list(push(src, name, options=fast_options()))[-1] == {"status": "success"}
    # the environment variable wins over the file
    cfg.write_text(json.dumps({"auths": {basic_registry.host: {"username": USER, "password": "bad"}}}))
    _, err = _run(pull(Store(tmp_path / "d1"), name, options=fast_options()))
    assert isinstance(err, AuthError)
    monkeypatch.setenv("PYOLLAMA_REGISTRY_AUTH", json.dumps({basic_registry.host: {"username": USER,
                                                                                    "password": PASSWORD}}))
    assert list(pull(Store(tmp_path / "d2"), name, options=fast_options()))[-1] == {"status": "success"}
    # credentials are per host: another registry's entry does not apply
    monkeypatch.setenv("PYOLLAMA_REGISTRY_AUTH", json.dumps({"example.com:5000": {"auth": auth}}))
    _, err = _run(pull(Store(tmp_path / "d3"), name, options=fast_options()))
    assert isinstance(err, AuthError)


def test_bearer_mount_asks_for_both_scopes(token_registry, tmp_path: Path) -> None:
    right = Credentials(USER, PASSWORD)
    src = Store(tmp_path / "src")
    base = f"{token_registry.host}/team/base:v1"
    m = make_model(src, base, model_size=2 << 20)
    list(push(src, base, options=fast_options(), credentials=right))
    derived = f"{token_registry.host}/other/derived:v1"
    make_model(src, derived, model=src.blobs.read_bytes(m.layers[0].digest), system="be terse", from_=base)
    mark = token_registry.log_mark()
    events = list(push(src, derived, options=fast_options(), credentials=right))
    assert events[-1] == {"status": "success"}
    log = token_registry.access_log(mark)
    mounts = [a for a in log if a.method == "POST" and "mount=" in a.path]
    assert mounts and all(a.status == 201 for a in mounts)
    assert not any(a.method == "PATCH" for a in log if m.layers[0].digest in a.path)
    scopes = [set(r["scopes"]) for r in token_registry.tokens.requests if r["authorized"]]
    assert any({"repository:other/derived:pull,push", "repository:team/base:pull"} <= s for s in scopes)
