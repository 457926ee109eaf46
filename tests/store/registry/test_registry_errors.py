"""Failures, each with its clear error: unknown tag, http without insecure, registry down, tampered blob,
a manifest whose blob the registry lacks."""
from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
from registry_helpers import fast_options, leftovers, make_model

from pyollama.errors import (
    DigestMismatch,
    InsecureProtocol,
    RegistryError,
    RegistryUnreachable,
    RemoteModelNotFound,
)
from pyollama.store import Store
from pyollama.store.registry import pull, push
from pyollama.store.registry.push import _put_manifest
from pyollama.store.registry.session import Session


def _events_until_error(it) -> tuple[list[dict], BaseException]:
    events = []
    with pytest.raises(Exception) as ei:
        for e in it:
            events.append(e)
    return events, ei.value


def test_unknown_tag(tmp_path: Path, registry) -> None:
    src = Store(tmp_path / "src")
    make_model(src, f"{registry.host}/team/m:v1", model_size=1000)
    list(push(src, f"{registry.host}/team/m:v1", options=fast_options()))
    for missing in (f"{registry.host}/team/m:nope", f"{registry.host}/team/none:v1"):
        dst = Store(tmp_path / "dst")
        events, err = _events_until_error(pull(dst, missing, options=fast_options()))
        assert events == [{"status": "pulling manifest"}]
        assert isinstance(err, RemoteModelNotFound) and err.status == 404
        assert str(err) == "pull model manifest: file does not exist"
        assert dst.names() == []


class _Listener:
    """A socket that only counts the connections made to it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._run = True
        self.t = threading.Thread(target=self._loop, daemon=True)
        self.t.start()

    def _loop(self) -> None:
        while self._run:
            try:
                c, _ = self.sock.accept()
                self.accepted += 1
                c.close()
            except OSError:
                pass

    def close(self) -> None:
        self._run = False
        self.t.join()
        self.sock.close()


def test_http_without_insecure_is_refused_before_any_socket(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    make_model(store, "m:v1", model_size=100)
    lst = _Listener()
    try:
        name = f"http://127.0.0.1:{lst.port}/team/m:v1"
        with pytest.raises(InsecureProtocol, match="^insecure protocol http$") as ei:
            next(pull(store, name, options=fast_options(insecure=False)))
        assert ei.value.status == 400
        store.copy("m:v1", f"127.0.0.1:{lst.port}/team/m:v1")
        it = push(store, name, options=fast_options(insecure=False))
        assert next(it) == {"status": "retrieving manifest"}
        with pytest.raises(InsecureProtocol, match="^insecure protocol http$"):
            next(it)
        time.sleep(0.3)
        assert lst.accepted == 0
    finally:
        lst.close()


def test_plain_http_registry_spoken_to_with_https_says_so(tmp_path: Path, registry) -> None:
    store = Store(tmp_path / "s")
    _, err = _events_until_error(pull(store, f"{registry.host}/team/m:v1",
                                      options=fast_options(insecure=False)))
    assert isinstance(err, RegistryUnreachable)
    assert "insecure" in str(err) and f"https://{registry.host}/v2/team/m/manifests/v1" in str(err)


def test_registry_down_fails_fast(tmp_path: Path, registry) -> None:
    src = Store(tmp_path / "src")
    name = f"{registry.host}/team/m:v1"
    make_model(src, name, model_size=1000)
    list(push(src, name, options=fast_options()))
    registry.stop()
    t0 = time.monotonic()
    events, err = _events_until_error(pull(Store(tmp_path / "dst"), name, options=fast_options()))
    assert time.monotonic() - t0 < 3
    assert events == [{"status": "pulling manifest"}]
    assert isinstance(err, RegistryUnreachable) and err.status == 502
    assert str(err) == (f'pull model manifest: Get "http://{registry.host}/v2/team/m/manifests/v1": '
                        "connection refused")
    _, err = _events_until_error(push(src, name, options=fast_options()))
    assert isinstance(err, RegistryUnreachable) and "connection refused" in str(err)
    # and back up on the same storage: the pull works
    registry.start()
    assert list(pull(Store(tmp_path / "dst"), name, options=fast_options()))[-1] == {"status": "success"}


def test_tampered_blob_fails_the_digest_check_and_keeps_the_old_tag(tmp_path: Path, registry) -> None:
    src = Store(tmp_path / "src")
    name = f"{registry.host}/team/m:latest"
    make_model(src, name, model_size=2 << 20, seed=1)
    list(push(src, name, options=fast_options()))
    dst = Store(tmp_path / "dst")
    list(pull(dst, name, options=fast_options()))
    old_manifest = dst.manifests.path(dst.resolve(name)).read_bytes()
    # a new version of the tag, whose weights the registry then serves corrupted
    m2 = make_model(src, name, model_size=2 << 20, seed=2)
    list(push(src, name, options=fast_options()))
    blob = registry.blob_path(m2.layers[0].digest)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))                      # same length, different bytes
    events, err = _events_until_error(pull(dst, name, options=fast_options()))
    assert isinstance(err, DigestMismatch)
    assert str(err) == (f"digest mismatch, file must be downloaded again: want {m2.layers[0].digest}, "
                        f"got {err.got}")
    assert "verifying sha256 digest" in [e["status"] for e in events]
    assert not dst.blobs.has(m2.layers[0].digest)
    assert dst.manifests.path(dst.resolve(name)).read_bytes() == old_manifest     # untouched
    assert leftovers(dst) == []                        # no partial, no part state, no temp


def test_manifest_referencing_a_blob_the_registry_lacks(tmp_path: Path, registry) -> None:
    store = Store(tmp_path / "s")
    name = f"{registry.host}/team/m:v1"
    m = make_model(store, name, model_size=1000)
    n = store.parse_name(name)
    with Session(n, fast_options()) as s, pytest.raises(RegistryError) as ei:
        _put_manifest(s, n, m.bytes(), m.media_type)
    assert ei.value.code == "MANIFEST_BLOB_UNKNOWN" and ei.value.http_status == 400
    assert str(ei.value).startswith("pushing manifest: 400: MANIFEST_BLOB_UNKNOWN: blob unknown")


def test_push_of_a_missing_model(tmp_path: Path, registry) -> None:
    from pyollama.errors import ModelNotFound

    it = push(Store(tmp_path / "s"), f"{registry.host}/team/none:v1", options=fast_options())
    assert next(it) == {"status": "retrieving manifest"}
    with pytest.raises(ModelNotFound):
        next(it)
