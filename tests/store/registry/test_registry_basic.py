"""Push and pull of small synthetic models against a real registry: wire behaviour and events."""
from __future__ import annotations

import hashlib
from pathlib import Path

from registry_helpers import fast_options, leftovers, make_model, statuses, tree

from pyollama.store import Store
from pyollama.store.registry import pull, push


def test_push_then_pull_is_byte_identical(tmp_path: Path, registry) -> None:
    src = Store(tmp_path / "a")
    name = f"{registry.host}/team/tiny:v1"
    m = make_model(src, name, model_size=3 << 20, system="be brief")
    events = list(push(src, name, options=fast_options()))
    assert statuses(events)[0] == "retrieving manifest" and statuses(events)[-2:] == ["pushing manifest",
                                                                                      "success"]
    dst = Store(tmp_path / "b")
    events = list(pull(dst, name, options=fast_options()))
    assert events[-1] == {"status": "success"}
    assert tree(dst.root) == tree(src.root)
    assert dst.manifest(name).bytes() == m.bytes()
    assert leftovers(dst) == []
    # the registry stored the manifest under the sha256 of the local file
    log = registry.access_log()
    assert any(a.method == "PUT" and "/manifests/v1" in a.path and a.status == 201 for a in log)
    revisions = registry.storage / "docker/registry/v2/repositories/team/tiny/_manifests/revisions/sha256"
    assert [p.name for p in revisions.iterdir()] == [hashlib.sha256(m.bytes()).hexdigest()]


def _pull_statuses(m) -> list[str]:
    return (["pulling manifest"] + [f"pulling {x.digest[7:19]}" for x in [*m.layers, m.config]]
            + ["verifying sha256 digest", "writing manifest", "success"])


def test_event_stream_is_ollamas(tmp_path: Path, registry) -> None:
    src = Store(tmp_path / "a")
    name = f"{registry.host}/team/tiny:v1"
    m = make_model(src, name, model_size=8 << 20)
    pushed = list(push(src, name, options=fast_options()))
    assert statuses(pushed) == (["retrieving manifest"]
                                + [f"pushing {x.digest[7:19]}" for x in [*m.layers, m.config]]
                                + ["pushing manifest", "success"])
    # progress every 2 ms: a loopback pull of a few MiB can finish inside one 20 ms tick
    pulled = list(pull(Store(tmp_path / "b"), name, options=fast_options(progress_interval=0.002)))
    assert statuses(pulled) == _pull_statuses(m)
    for x in [*m.layers, m.config]:
        lines = [e for e in pulled if e.get("digest") == x.digest]
        assert all(set(e) <= {"status", "digest", "total", "completed"} and e["total"] == x.size
                   for e in lines)
        done = [e.get("completed", 0) for e in lines]
        assert done == sorted(done) and done[-1] == x.size      # monotonic, ends complete
    big = [e for e in pulled if e.get("digest") == m.layers[0].digest]
    assert len(big) > 2                                         # real progress, not just start/end


def test_second_push_only_heads_and_repull_only_reads_the_manifest(tmp_path: Path, registry) -> None:
    src = Store(tmp_path / "a")
    name = f"{registry.host}/team/tiny:v1"
    m = make_model(src, name, model_size=1 << 20)
    list(push(src, name, options=fast_options()))
    mark = registry.log_mark()
    assert list(push(src, name, options=fast_options()))[-1] == {"status": "success"}
    blob_calls = [a for a in registry.access_log(mark) if "/blobs/" in a.path]
    assert blob_calls and all(a.method == "HEAD" and a.status == 200 for a in blob_calls)
    mark = registry.log_mark()
    events = list(pull(src, name, options=fast_options()))
    assert [a.method for a in registry.access_log(mark)] == ["GET"]         # the manifest only
    for x in [*m.layers, m.config]:                                        # one line each, complete
        assert [e for e in events if e.get("digest") == x.digest] == [
            {"status": f"pulling {x.digest[7:19]}", "digest": x.digest, "total": x.size,
             "completed": x.size}]


def test_big_blob_goes_up_in_ordered_patch_chunks(tmp_path: Path, registry) -> None:
    src = Store(tmp_path / "a")
    name = f"{registry.host}/team/chunks:v1"
    m = make_model(src, name, model_size=(3 << 20) + 12345)
    mark = registry.log_mark()
    list(push(src, name, options=fast_options(upload_chunk=1 << 20)))
    log = registry.access_log(mark)
    patches = [a for a in log if a.method == "PATCH"]
    assert len(patches) == 4 and all(a.status == 202 for a in patches)
    puts = [a for a in log if a.method == "PUT" and "digest=" in a.path]
    assert len(puts) == 3 and all(a.status == 201 for a in puts)     # model (empty commit) + 2 small ones
    assert registry.blob_path(m.layers[0].digest).read_bytes() == src.blobs.read_bytes(m.layers[0].digest)


def test_replacing_a_tag_removes_unused_layers(tmp_path: Path, registry) -> None:
    src = Store(tmp_path / "a")
    name = f"{registry.host}/team/tiny:latest"
    dst = Store(tmp_path / "b")
    m1 = make_model(src, name, model_size=100_000, seed=1)
    list(push(src, name, options=fast_options()))
    list(pull(dst, name, options=fast_options()))
    m2 = make_model(src, name, model_size=100_000, seed=2)
    list(push(src, name, options=fast_options()))
    events = list(pull(dst, name, options=fast_options()))
    assert statuses(events)[-4:] == ["verifying sha256 digest", "writing manifest", "removing unused layers",
                                     "success"]
    assert set(dst.blobs.digests()) == m2.blob_digests()
    assert not (m1.blob_digests() - m2.blob_digests()) & set(dst.blobs.digests())


def test_oci_manifest_and_pull_by_digest(tmp_path: Path, registry) -> None:
    from pyollama.store import manifest as mf

    src = Store(tmp_path / "a")
    name = f"{registry.host}/team/oci:v1"
    m = make_model(src, name, model_size=50_000)
    oci = mf.Manifest(m.config, m.layers, media_type=mf.OCI_MANIFEST_MEDIA_TYPE)
    src.write_manifest(name, oci)
    raw = src.manifest(name).bytes()
    list(push(src, name, options=fast_options()))
    dst = Store(tmp_path / "b")
    assert list(pull(dst, name, options=fast_options()))[-1] == {"status": "success"}
    assert dst.manifest(name).bytes() == raw
    pinned = f"{registry.host}/team/oci:v1@sha256:{hashlib.sha256(raw).hexdigest()}"
    dst2 = Store(tmp_path / "c")
    assert list(pull(dst2, pinned, options=fast_options()))[-1] == {"status": "success"}
    assert dst2.manifest(name).bytes() == raw


def test_mount_from_an_unknown_repository_falls_back_to_an_upload(tmp_path: Path, registry) -> None:
    src = Store(tmp_path / "a")
    name = f"{registry.host}/team/orphan:v1"
    m = make_model(src, name, model_size=300_000, from_=f"{registry.host}/nobody/nothing:v1")
    mark = registry.log_mark()
    assert list(push(src, name, options=fast_options()))[-1] == {"status": "success"}
    log = registry.access_log(mark)
    mounts = [a for a in log if a.method == "POST" and "mount=" in a.path]
    assert mounts and all(a.status == 202 for a in mounts)                 # not mounted: go on
    assert registry.blob_path(m.layers[0].digest).read_bytes() == src.blobs.read_bytes(m.layers[0].digest)


def test_upload_cut_mid_chunk_recovers(tmp_path: Path, registry) -> None:
    from registry_servers import FaultProxy

    proxy = FaultProxy(registry.port)
    try:
        src = Store(tmp_path / "a")
        name = f"127.0.0.1:{proxy.port}/team/cutup:v1"
        m = make_model(src, name, model_size=3 << 20)
        proxy.cut_up_after = (3 << 20) // 2            # in the middle of the second PATCH
        events = list(push(src, name, options=fast_options(upload_chunk=1 << 20)))
        assert proxy.cuts == 1 and events[-1] == {"status": "success"}
        stored = registry.blob_path(m.layers[0].digest).read_bytes()
        assert stored == src.blobs.read_bytes(m.layers[0].digest)
        dst = Store(tmp_path / "b")
        assert list(pull(dst, name, options=fast_options()))[-1] == {"status": "success"}
    finally:
        proxy.close()


def test_create_pulls_a_missing_base(tmp_path: Path, registry) -> None:
    from pyollama.store import CreateRequest, create
    from pyollama.store.registry import puller
    from tests.tiny_gguf import write_tiny_gguf

    src = Store(tmp_path / "a")
    base = f"{registry.host}/team/base:v1"
    list(create(src, CreateRequest(model=base, from_path=write_tiny_gguf(tmp_path / "t.gguf"))))
    list(push(src, base, options=fast_options()))
    dst = Store(tmp_path / "b")
    events = list(create(dst, CreateRequest(model="mine", from_=base, system="hi"),
                         pull=puller(dst, options=fast_options())))
    st = statuses(events)
    assert st[0] == "pulling manifest" and "writing manifest" in st and st[-1] == "success"
    assert dst.manifest(base).bytes() == src.manifest(base).bytes()
    assert dst.exists("mine")
