"""The issue's round trip with a real model: SmolLM2 plus a SYSTEM overlay derived from it, pushed to a
real registry, deleted, pulled back byte for byte, and run."""
from __future__ import annotations

from pathlib import Path

import pytest
from registry_helpers import leftovers, statuses, tree

from pyollama.store import CreateRequest, Store, create, load_model
from pyollama.store.registry import RegistryOptions, pull, push


def _opts(**kw) -> RegistryOptions:
    return RegistryOptions(insecure=True, backoff=0.05, progress_interval=0.05, **kw)


@pytest.mark.model
@pytest.mark.slow
def test_smollm2_push_delete_pull_generate(tmp_path: Path, registry, smollm2_path: Path) -> None:
    store = Store(tmp_path / "a")
    base = f"{registry.host}/team/smollm2:135m"
    derived = f"{registry.host}/team/smollm2-terse:latest"
    list(create(store, CreateRequest(model=base, from_path=smollm2_path)))
    list(create(store, CreateRequest(model=derived, from_=base, system="You are terse.")))
    mb, md = store.manifest(base), store.manifest(derived)
    weights = mb.layers[0]
    assert [x.digest for x in md.layers if x.from_] == [weights.digest]
    new_layers = [x for x in [*md.layers, md.config] if x.digest not in mb.blob_digests()]
    before = tree(store.root)

    # push both: the second mounts the weights and uploads only its new small layers
    ev = list(push(store, base, options=_opts()))
    pushing = [f"pushing {x.digest[7:19]}" for x in [*mb.layers, mb.config]]
    assert statuses(ev) == ["retrieving manifest", *pushing, "pushing manifest", "success"]
    mark = registry.log_mark()
    ev = list(push(store, derived, options=_opts()))
    assert ev[-1] == {"status": "success"}
    log = registry.access_log(mark)
    mounts = [a for a in log if a.method == "POST" and "mount=" in a.path]
    assert [(a.status, weights.digest in a.path, "from=team/smollm2" in a.path) for a in mounts] == \
        [(201, True, True)]
    assert not [a for a in log if a.method == "PATCH"]
    uploads = [a for a in log if a.method == "PUT" and "digest=" in a.path]
    assert sorted(a.path.rsplit("digest=", 1)[1].replace("%3A", ":") for a in uploads) == \
        sorted(x.digest for x in new_layers)
    assert all(x.size < 4096 for x in new_layers)
    stored = {"sha256:" + p.parent.name
              for p in (registry.storage / "docker/registry/v2/blobs/sha256").glob("*/*/data")}
    # every blob once (the weights too), plus the two manifests, which the registry keeps as blobs
    assert stored == mb.blob_digests() | md.blob_digests() | {f"sha256:{mb.digest}", f"sha256:{md.digest}"}

    # delete locally, pull both back: byte-identical, with Ollama's status sequence
    store.delete(derived)
    store.delete(base)
    assert store.blobs.digests() == []
    for name, m in ((base, mb), (derived, md)):
        ev = list(pull(store, name, options=_opts()))
        expect = ["pulling manifest"] + [f"pulling {x.digest[7:19]}" for x in [*m.layers, m.config]]
        assert statuses(ev) == expect + ["verifying sha256 digest", "writing manifest", "success"]
    assert tree(store.root) == before and leftovers(store) == []

    # the derived model into a store that has the parent: only the new layers travel
    other = Store(tmp_path / "b")
    list(pull(other, base, options=_opts()))
    mark = registry.log_mark()
    ev = list(pull(other, derived, options=_opts()))
    gets = [a for a in registry.access_log(mark) if a.method == "GET" and "/blobs/" in a.path]
    assert sum(a.bytes for a in gets) == sum(x.size for x in new_layers)
    assert {a.path.rsplit("/", 1)[1] for a in gets} == {x.digest for x in new_layers}
    assert [e for e in ev if e.get("digest") == weights.digest] == [
        {"status": f"pulling {weights.digest[7:19]}", "digest": weights.digest, "total": weights.size,
         "completed": weights.size}]

    # and the pulled model runs
    from pyollama.engine import LLM

    rec = load_model(store, derived)
    assert rec.system == "You are terse." and rec.model_path is not None
    with LLM(rec.model_path, num_ctx=256) as llm:
        out = llm.complete("The capital of France is", num_predict=8, temperature=0)
    assert out.eval_count > 0 and out.text.strip()
