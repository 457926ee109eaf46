"""A TLS registry reached through ``HTTPS_PROXY`` (a CONNECT proxy on loopback that maps the registry's
host name to 127.0.0.1), ``NO_PROXY`` taking a host out of it, and loopback never proxied."""
from __future__ import annotations

from pathlib import Path

import pytest
from registry_helpers import fast_options, leftovers, make_model
from registry_servers import FaultProxy, make_tls

from pyollama.errors import RegistryUnreachable
from pyollama.store import Store
from pyollama.store.registry import pull, push


@pytest.fixture
def tls_registry(make_registry, tmp_path: Path, monkeypatch):
    root = tmp_path / "tls"
    root.mkdir()
    cert, key, ca = make_tls(root, ["registry.test", "127.0.0.1"])
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))      # trust the test CA (verification stays on)
    return make_registry("tls", tls=(cert, key))


def test_https_proxy_and_no_proxy(tls_registry, tmp_path: Path, monkeypatch) -> None:
    proxy = FaultProxy(0, connect_map=True)
    try:
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
        name = f"registry.test:{tls_registry.port}/team/m:v1"
        src = Store(tmp_path / "src")
        m = make_model(src, name, model_size=1 << 20)
        opts = fast_options(insecure=False)
        assert list(push(src, name, options=opts))[-1] == {"status": "success"}
        dst = Store(tmp_path / "dst")
        assert list(pull(dst, name, options=opts))[-1] == {"status": "success"}
        assert dst.manifest(name).bytes() == m.bytes() and leftovers(dst) == []
        assert proxy.connect_targets and set(proxy.connect_targets) == {f"registry.test:{tls_registry.port}"}
        # NO_PROXY: the client goes direct, and registry.test does not resolve here
        seen = proxy.connections
        monkeypatch.setenv("NO_PROXY", "localhost,.test")
        with pytest.raises(RegistryUnreachable, match="no such host"):
            list(pull(Store(tmp_path / "d2"), name, options=opts))
        assert proxy.connections == seen
        # loopback is never proxied (as in Go's httpproxy, which Ollama uses)
        monkeypatch.delenv("NO_PROXY")
        loop = f"127.0.0.1:{tls_registry.port}/team/m:v1"
        assert list(pull(Store(tmp_path / "d3"), loop, options=opts))[-1] == {"status": "success"}
        assert proxy.connections == seen
    finally:
        proxy.close()
