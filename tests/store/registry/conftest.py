"""Fixtures for the registry tests: a real docker-registry per test, on loopback, and isolation from
the developer's proxy and credential settings."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from registry_servers import Registry, registry_binary


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for k in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy",
              "all_proxy", "no_proxy", "PYOLLAMA_REGISTRY_AUTH", "OLLAMA_REGISTRY_AUTH", "SSL_CERT_FILE",
              "SSL_CERT_DIR"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("PYOLLAMA_REGISTRY_AUTH_FILE", str(tmp_path / "no-registry-auth.json"))


@pytest.fixture(scope="session")
def _registry_exe() -> str:
    # Project policy: a real registry, never a mock; a missing binary fails with the install hint.
    return registry_binary()


@pytest.fixture
def make_registry(tmp_path: Path, _registry_exe: str) -> Iterator[Callable[..., Registry]]:
    started: list[Registry] = []

    def make(name: str = "reg", **kw) -> Registry:
        r = Registry(tmp_path / name, **kw).start()
        started.append(r)
        return r

    yield make
    for r in started:
        r.stop()


@pytest.fixture
def registry(make_registry) -> Registry:
    return make_registry()
