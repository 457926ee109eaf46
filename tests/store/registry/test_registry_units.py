"""Pure pieces of the registry client: challenge parsing, scopes, proxies, credentials, part plans."""
from __future__ import annotations

import base64
import json

import pytest

from pyollama.errors import AuthError
from pyollama.store.manifest import Layer
from pyollama.store.names import ModelName
from pyollama.store.registry import Credentials, RegistryOptions
from pyollama.store.registry.auth import merge_scopes, parse_challenges
from pyollama.store.registry.download import Part, parts_from_state, plan_parts
from pyollama.store.registry.options import credentials_from_config
from pyollama.store.registry.session import proxy_for, safe_url
from pyollama.store.registry.upload import mount_source


def test_parse_challenges() -> None:
    [c] = parse_challenges([('Bearer realm="http://127.0.0.1:1/token",service="reg",'
                             'scope="repository:a/b:pull,push repository:c/d:pull"')])
    assert c.scheme == "bearer" and c.params["realm"] == "http://127.0.0.1:1/token"
    assert c.scopes == ["repository:a/b:pull,push", "repository:c/d:pull"]
    both = parse_challenges(['Basic realm="x, y", Bearer realm="https://a/t",error="insufficient_scope"'])
    assert [(c.scheme, c.params) for c in both] == [
        ("basic", {"realm": "x, y"}), ("bearer", {"realm": "https://a/t", "error": "insufficient_scope"})]
    assert parse_challenges(['Basic realm="a \\"q\\""'])[0].params["realm"] == 'a "q"'
    assert parse_challenges([""]) == []


def test_merge_scopes() -> None:
    assert merge_scopes(["repository:a/b:pull"], ["repository:a/b:push", "repository:c/d:pull"]) == (
        "repository:a/b:pull,push", "repository:c/d:pull")


def test_proxy_for(monkeypatch) -> None:
    for k in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(k, raising=False)
    assert proxy_for("https://registry.example.com/v2/") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    assert proxy_for("https://registry.example.com/v2/") == "http://proxy:3128"
    assert proxy_for("http://registry.example.com/v2/") is None             # HTTPS_PROXY is for https
    for loop in ("https://127.0.0.1:5000/v2/", "https://localhost/v2/", "https://[::1]:5000/v2/"):
        assert proxy_for(loop) is None
    monkeypatch.setenv("NO_PROXY", ".example.com,other")
    assert proxy_for("https://registry.example.com/v2/") is None
    assert proxy_for("https://other:5000/v2/") is None
    assert proxy_for("https://third.org/v2/") == "http://proxy:3128"


def test_safe_url_drops_query_and_userinfo() -> None:
    assert safe_url("https://u:p@cdn.example.com:8443/b/x?X-Amz-Signature=abc") == \
        "https://cdn.example.com:8443/b/x"


def test_credentials_from_config() -> None:
    auth = base64.b64encode(b"me:pw:with:colons").decode()
    cfg = {"auths": {"https://Reg.Example:5000/v1/": {"auth": auth}, "other": {"username": "u",
                                                                             "password": "p"}}}
    assert credentials_from_config(cfg, "reg.example:5000") == Credentials("me", "pw:with:colons")
    assert credentials_from_config({"other": {"username": "u", "password": "p"}}, "other") == \
        Credentials("u", "p")
    assert credentials_from_config(cfg, "nowhere") is None
    with pytest.raises(AuthError, match="not base64"):
        credentials_from_config({"h": {"auth": "!!"}}, "h")
    c = Credentials("me", "hunter2")
    assert "hunter2" not in repr(c) and "hunter2" not in str(c) and "hunter2" not in json.dumps(repr(c))
    assert c.basic() == "Basic " + base64.b64encode(b"me:hunter2").decode()


def test_part_plan_and_saved_state() -> None:
    o = RegistryOptions()
    assert plan_parts(0, o) == []
    assert [(p.offset, p.size) for p in plan_parts(10, o)] == [(0, 10)]
    big = plan_parts(1 << 30, o)                      # 1 GiB: size/16 = 64 MiB parts
    assert len(big) == 16 and all(p.size == 64 << 20 for p in big)
    odd = plan_parts((100 << 20) + 1, o)              # min part 16 MiB, last one short
    assert sum(p.size for p in odd) == (100 << 20) + 1 and odd[-1].size == (4 << 20) + 1
    states = {p.n: p.state() for p in odd}
    assert parts_from_state(states, (100 << 20) + 1) == odd
    states[1]["Completed"] = states[1]["Size"] + 1    # corrupt: more done than the part holds
    assert parts_from_state(states, (100 << 20) + 1) is None
    assert parts_from_state({0: {"N": 0, "Offset": 0, "Size": 5, "Completed": 2}}, 6) is None   # gap
    assert parts_from_state({0: {"N": 0}}, 6) is None
    assert Part(3, 10, 5, 2).state() == {"N": 3, "Offset": 10, "Size": 5, "Completed": 2}


def test_mount_source() -> None:
    target = ModelName.parse("127.0.0.1:5000/team/derived:v1")
    layer = Layer("application/vnd.ollama.image.model", "sha256:" + "a" * 64, 1)
    assert mount_source(layer, target) == ""
    layer.from_ = "127.0.0.1:5000/team/base:v1"
    assert mount_source(layer, target) == "team/base"
    layer.from_ = "smollm2:135m"                       # host ignored, as Ollama does
    assert mount_source(layer, target) == "library/smollm2"
    layer.from_ = "127.0.0.1:5000/team/derived:v0"     # same repository: nothing to mount
    assert mount_source(layer, target) == ""
    layer.from_ = "not a name!"
    assert mount_source(layer, target) == ""
