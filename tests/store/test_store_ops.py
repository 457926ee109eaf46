"""Manifests, copy, delete, prune, case-insensitive names, concurrency — on tiny generated GGUFs."""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import threading
import time
from pathlib import Path

import pytest
from store_helpers import run, sha256_file

from pyollama.errors import InvalidModelName, ModelNotFound
from pyollama.store import CreateRequest, Store, create, create_from_modelfile, list_models
from pyollama.store import store as store_mod
from pyollama.store.blobs import BlobNotFound
from pyollama.store.manifest import MANIFEST_MEDIA_TYPE, Manifest
from tests.tiny_gguf import write_tiny_gguf

MEDIA = "application/vnd.ollama.image."


def make(store: Store, name: str, gguf: Path, extra: str = "") -> None:
    run(create_from_modelfile(store, name, f"FROM {gguf}\n{extra}"))


def test_manifest_is_ollama_compatible(store: Store, tiny_gguf: Path) -> None:
    make(store, "tiny", tiny_gguf, 'SYSTEM "be brief"\nPARAMETER stop "<end>"\nPARAMETER temperature 0\n'
                                   "TEMPLATE {{ .Prompt }}\nMESSAGE user hi\nLICENSE MIT\n")
    path = store.root / "manifests" / "registry.ollama.ai" / "library" / "tiny" / "latest"
    raw = path.read_bytes()
    assert raw.endswith(b"}\n") and b" " not in raw.replace(b"\n", b"")      # Go's json.Encoder form
    m = json.loads(raw)
    assert list(m) == ["schemaVersion", "mediaType", "config", "layers"]
    assert m["schemaVersion"] == 2 and m["mediaType"] == MANIFEST_MEDIA_TYPE
    assert list(m["config"]) == ["mediaType", "digest", "size"]
    assert m["config"]["mediaType"] == "application/vnd.docker.container.image.v1+json"
    types = [layer["mediaType"] for layer in m["layers"]]
    assert types == [MEDIA + t for t in ("model", "template", "system", "license", "params", "messages")]
    for layer in [m["config"], *m["layers"]]:
        blob = store.root / "blobs" / layer["digest"].replace(":", "-")
        assert layer["digest"] == "sha256:" + sha256_file(blob)       # digest = sha256 of the blob bytes
        assert layer["size"] == blob.stat().st_size
    blobs = {layer["mediaType"]: store.root / "blobs" / layer["digest"].replace(":", "-") for layer in m["layers"]}
    assert blobs[MEDIA + "params"].read_bytes() == b'{"stop":["\\u003cend\\u003e"],"temperature":0}\n'
    assert blobs[MEDIA + "messages"].read_bytes() == b'[{"role":"user","content":"hi"}]\n'
    assert blobs[MEDIA + "system"].read_bytes() == b"be brief"
    cfg = json.loads((store.root / "blobs" / m["config"]["digest"].replace(":", "-")).read_bytes())
    assert list(cfg)[:5] == ["model_format", "model_family", "model_families", "model_type", "file_type"]
    assert cfg["model_format"] == "gguf" and cfg["model_family"] == "llama" and cfg["model_families"] == ["llama"]
    assert cfg["file_type"] == "F32" and cfg["model_type"] == "528"        # 32*16 + 16 parameters
    assert cfg["os"] == "linux" and cfg["rootfs"] == {"type": "layers", "diff_ids": [x["digest"] for x in m["layers"]]}
    assert cfg["context_length"] == 128 and cfg["embedding_length"] == 16
    # The manifest digest reported by list is the sha256 of the file.
    (entry,) = list_models(store)["models"]
    assert entry["digest"] == hashlib.sha256(raw).hexdigest()
    assert entry["size"] == sum(x["size"] for x in [m["config"], *m["layers"]])


def write_ollama_store(root: Path, gguf: Path) -> str:
    """A model directory as Ollama writes it (legacy `.prompt` layer, Ollama's params/config JSON)."""
    blobs = root / "blobs"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> dict:
        dg = hashlib.sha256(data).hexdigest()
        (blobs / f"sha256-{dg}").write_bytes(data)
        return {"digest": f"sha256:{dg}", "size": len(data)}

    model = put(gguf.read_bytes())
    prompt = put(b"[INST] {{ .Prompt }} [/INST]")
    params = put(b'{"num_ctx":4096,"stop":["[INST]","[/INST]"],"temperature":0.5}\n')
    cfg = put(json.dumps({"model_format": "gguf", "model_family": "llama", "model_families": None,
                          "model_type": "7B", "file_type": "Q4_0", "architecture": "amd64", "os": "linux",
                          "rootfs": {"type": "layers", "diff_ids": []}}).encode())
    manifest = {"schemaVersion": 2, "mediaType": MANIFEST_MEDIA_TYPE,
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json", **cfg},
                "layers": [{"mediaType": MEDIA + "model", **model}, {"mediaType": MEDIA + "prompt", **prompt},
                           {"mediaType": MEDIA + "params", **params}]}
    d = root / "manifests" / "registry.ollama.ai" / "library" / "OldModel"
    d.mkdir(parents=True)
    (d / "7b").write_text(json.dumps(manifest))
    return model["digest"]


def test_existing_ollama_directory_works_as_is(tmp_path: Path, tiny_gguf: Path) -> None:
    root = tmp_path / "ollama"
    model_digest = write_ollama_store(root, tiny_gguf)
    store = Store(root)
    (entry,) = list_models(store)["models"]
    assert entry["name"] == "OldModel:7b"
    assert entry["details"] == {"parent_model": "", "format": "gguf", "family": "llama", "families": None,
                                "parameter_size": "7B", "quantization_level": "Q4_0"}
    from pyollama.store import show
    shown = show(store, "oldmodel:7B")                  # case-insensitive lookup
    assert shown["template"] == "[INST] {{ .Prompt }} [/INST]"
    assert shown["parameters"] == ('num_ctx                        4096\nstop                           "[INST]"\n'
                                   'stop                           "[/INST]"\ntemperature                    0.5')
    # Writing into it: derive, copy, delete; Ollama's files stay valid and shared.
    run(create_from_modelfile(store, "derived", "FROM oldmodel:7b\nSYSTEM hi\n"))
    store.copy("OLDMODEL:7b", "copy")
    store.delete("derived")
    assert store.blobs.has(model_digest) and store.exists("OldModel:7b") and store.exists("copy")
    assert Manifest.parse(store.manifests.path(store.resolve("copy")).read_bytes()).layers[0].digest == model_digest


def test_case_insensitive_lookup_existing_casing_wins(store: Store, tiny_gguf: Path) -> None:
    make(store, "MyModel:Tag", tiny_gguf)
    assert store.resolve("mymodel:tag").parts[2:] == ("MyModel", "Tag")
    make(store, "MYMODEL:TAG", tiny_gguf, "SYSTEM v2\n")
    assert [n.display() for n in store.names()] == ["MyModel:Tag"]
    from pyollama.store import show
    assert show(store, "mymodel:tag")["system"] == "v2"


def test_copy_shares_blobs_and_delete_keeps_shared(store: Store, tiny_gguf: Path) -> None:
    make(store, "a", tiny_gguf, "SYSTEM only-a\n")
    before = sorted(os.listdir(store.blobs.dir))
    store.copy("a", "team/b:v1")
    assert sorted(os.listdir(store.blobs.dir)) == before                     # nothing duplicated
    assert store.manifest("a").digest == store.manifest("team/b:v1").digest
    store.delete("a")
    assert sorted(os.listdir(store.blobs.dir)) == before                     # b still uses them all
    assert not store.exists("a") and not (store.root / "manifests/registry.ollama.ai/library").exists()
    store.delete("team/b:v1")
    assert os.listdir(store.blobs.dir) == []                                 # last reference gone
    with pytest.raises(ModelNotFound, match="^model 'a:latest' not found$"):
        store.delete("a")


def test_copy_errors(store: Store, tiny_gguf: Path) -> None:
    with pytest.raises(ModelNotFound):
        store.copy("nope", "x")
    make(store, "a", tiny_gguf)
    with pytest.raises(InvalidModelName, match="^destination ../x is invalid$"):
        store.copy("a", "../x")
    with pytest.raises(InvalidModelName, match="^source a/../b is invalid$"):
        store.copy("a/../b", "x")


def test_delete_removes_only_unshared_blobs(store: Store, tiny_gguf: Path) -> None:
    make(store, "base", tiny_gguf)
    run(create_from_modelfile(store, "child", "FROM base\nSYSTEM child only\n"))
    child_only = store.manifest("child").blob_digests() - store.manifest("base").blob_digests()
    store.delete("child")
    assert all(not store.blobs.has(x) for x in child_only)
    assert all(store.blobs.has(x) for x in store.manifest("base").blob_digests())


def test_replacing_a_model_collects_its_old_layers(store: Store, tiny_gguf: Path) -> None:
    make(store, "m", tiny_gguf, "SYSTEM first\n")
    old = store.manifest("m").blob_digests()
    make(store, "m", tiny_gguf, "SYSTEM second\n")
    new = store.manifest("m").blob_digests()
    assert {x for x in old - new if store.blobs.has(x)} == set()
    assert set(store.blobs.digests()) == new


def test_prune(store: Store, tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make(store, "m", tiny_gguf)
    used = set(store.blobs.digests())
    orphan = store.blobs.put_bytes(b"orphan").digest
    dead = store.blobs.dir / ".tmp-999999999-abcdef"          # a writer that no longer exists
    dead.write_bytes(b"half")
    live = store.blobs.dir / f".tmp-{os.getpid()}-abcdef"     # ours, still running
    live.write_bytes(b"half")
    fresh_partial = store.blobs.dir / ("sha256-" + "b" * 64 + "-partial")
    fresh_partial.write_bytes(b"p")
    old_partial = store.blobs.dir / ("sha256-" + "c" * 64 + "-partial")
    old_partial.write_bytes(b"p")
    os.utime(old_partial, (time.time() - 7200, time.time() - 7200))
    stale_manifest_tmp = store.manifests.path(store.resolve("m")).with_name(".tmp-999999999-x")
    stale_manifest_tmp.write_bytes(b"{")
    (store.root / "manifests" / "h" / "n" / "empty").mkdir(parents=True)

    monkeypatch.setenv("OLLAMA_NOPRUNE", "1")
    assert store.prune() == {"blobs": 0, "temp": 0} and store.blobs.has(orphan)
    monkeypatch.setenv("OLLAMA_NOPRUNE", "false")
    counts = store.prune()
    assert counts == {"blobs": 1, "temp": 3}
    assert set(store.blobs.digests()) == used
    assert live.exists() and fresh_partial.exists()
    assert not dead.exists() and not old_partial.exists() and not stale_manifest_tmp.exists()
    assert not (store.root / "manifests" / "h").exists()


def test_noprune_env_values(monkeypatch: pytest.MonkeyPatch) -> None:
    for v, want in [("", False), ("0", False), ("false", False), ("1", True), ("true", True), ("yes", True),
                    ('"1"', True)]:
        monkeypatch.setenv("PYOLLAMA_NOPRUNE", v)
        assert store_mod.noprune() is want, v


def test_default_root_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PYOLLAMA_MODELS", str(tmp_path / "p"))
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "o"))
    assert Store().root == tmp_path / "p"
    monkeypatch.delenv("PYOLLAMA_MODELS")
    assert Store().root == tmp_path / "o"
    monkeypatch.delenv("OLLAMA_MODELS")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert Store().root == tmp_path / "home" / ".pyollama" / "models"


def test_write_manifest_bytes_exactly_and_checks_blobs(store: Store) -> None:
    cfg = store.blobs.put_bytes(b"{}")
    layer = store.blobs.put_bytes(b"sys")
    raw = (b'{"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json", '
           b'"config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": "'
           + cfg.digest.encode() + b'", "size": 2}, "layers": [{"mediaType": "application/vnd.ollama.image.system", '
           b'"digest": "' + layer.digest.encode() + b'", "size": 3}]}')
    name = store.write_manifest("127.0.0.1:5000/team/x:1", raw)
    assert store.manifests.path(name).read_bytes() == raw              # as received, not re-encoded
    assert store.manifest("127.0.0.1:5000/team/x:1").digest == hashlib.sha256(raw).hexdigest()
    assert [x.digest for x in store.layers(name)] == [cfg.digest, layer.digest]
    missing = raw.replace(layer.digest.encode(), b"sha256:" + b"9" * 64)
    with pytest.raises(BlobNotFound, match="missing blobs"):
        store.write_manifest("y", missing)
    assert not store.exists("y")


def test_resolve_with_pinned_digest(store: Store, tiny_gguf: Path) -> None:
    make(store, "m", tiny_gguf)
    dg = store.manifest("m").digest
    assert store.resolve(f"m@sha256:{dg}").display() == "m:latest"
    with pytest.raises(ModelNotFound):
        store.resolve("m@sha256:" + "0" * 64)


def test_gc_waits_for_writers_then_gives_up(store: Store, tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make(store, "m", tiny_gguf)
    digests = store.manifest("m").blob_digests()
    monkeypatch.setattr(store_mod, "GC_WAIT", 0.2)
    with store.writing():                          # an in-flight create elsewhere
        store.delete("m")                          # manifest goes at once; blobs wait for the next GC
        assert not store.exists("m") and all(store.blobs.has(x) for x in digests)
    assert store.prune(min_age=0)["blobs"] == len(digests)


def _create_same(root: str, gguf: str, i: int) -> None:
    store = Store(root)
    run(create(store, CreateRequest(model=f"m{i % 2}", from_path=Path(gguf), system="same", parameters={"seed": 1})))


def test_concurrent_creates_of_the_same_content(tmp_path: Path) -> None:
    gguf = write_tiny_gguf(tmp_path / "t.gguf", size_kib=2048)       # ~8 MB, several write chunks
    root = tmp_path / "models"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_create_same, args=(str(root), str(gguf), i)) for i in range(4)]
    threads = [threading.Thread(target=_create_same, args=(str(root), str(gguf), i)) for i in range(4)]
    for p in procs:
        p.start()
    for t in threads:
        t.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    for t in threads:
        t.join(60)
    store = Store(root)
    assert sorted(n.display() for n in store.names()) == ["m0:latest", "m1:latest"]
    assert store.manifest("m0").digest == store.manifest("m1").digest
    assert set(store.blobs.digests()) == store.manifest("m0").blob_digests()      # each blob once
    assert all(store.blobs.verify(x) for x in store.blobs.digests())
    assert [p.name for p in store.blobs.dir.iterdir() if not p.name.startswith("sha256-")] == []
