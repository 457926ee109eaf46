"""A registry that redirects blob downloads to another host (distribution's ``redirect`` storage
middleware, pointing at a static server of its own storage — the CDN case of registry.ollama.ai and
hf.co). Ranged parts go to the redirect target without the registry's credentials; a target that
ignores ``Range`` makes the download fall back to one stream."""
from __future__ import annotations

from pathlib import Path

import pytest
from registry_helpers import fast_options, leftovers, make_model
from registry_servers import BlobServer, htpasswd_auth

from pyollama.store import Store
from pyollama.store.registry import Credentials, pull, push


@pytest.mark.parametrize("ranges", [True, False])
def test_pull_through_a_redirect(ranges: bool, make_registry, tmp_path: Path) -> None:
    root = tmp_path / "redir"
    (root / "storage").mkdir(parents=True)
    cdn = BlobServer(root / "storage", ranges=ranges)
    creds = Credentials("tester", "pw-redirect")
    try:
        reg = make_registry("redir", auth=htpasswd_auth(root, creds.username, creds.password),
                            redirect_to=cdn.url + "/")
        src = Store(tmp_path / "src")
        name = f"{reg.host}/team/cdn:v1"
        m = make_model(src, name, model_size=2 << 20)
        list(push(src, name, options=fast_options(), credentials=creds))
        dst = Store(tmp_path / "dst")
        events = list(pull(dst, name, options=fast_options(), credentials=creds))
        assert events[-1] == {"status": "success"}
        assert dst.manifest(name).bytes() == m.bytes() and leftovers(dst) == []
        assert dst.blobs.read_bytes(m.layers[0].digest) == src.blobs.read_bytes(m.layers[0].digest)
        gets = [r for r in cdn.requests if r[0] == "GET"]
        assert gets, "the blob bytes came from the redirect target"
        assert not any(r[2] for r in cdn.requests), "no Authorization may go to another host"
        reg_gets = [a for a in reg.access_log() if a.method == "GET" and "/blobs/" in a.path]
        assert all(a.status in (307, 401) for a in reg_gets)   # the registry itself served no blob bytes
        big = [r for r in gets if m.layers[0].digest[7:] in r[1]]
        if ranges:
            assert len(big) == 8 and all(r[3].startswith("bytes=") for r in big)   # 2 MiB / 256 KiB parts
        else:
            assert big[-1][3] == ""          # the fallback: one unranged stream
    finally:
        cdn.close()
