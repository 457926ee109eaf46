from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from pyollama.errors import StoreError
from pyollama.store import Store
from pyollama.store.blobs import BlobBusy, BlobNotFound, DigestMismatch, InvalidDigest, normalize_digest


def d(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_put_is_content_addressed_and_deduplicated(store: Store) -> None:
    b1 = store.blobs.put_bytes(b"hello")
    b2 = store.blobs.put_bytes(b"hello")
    assert b1.digest == d(b"hello") and b1.size == 5 and b1.created and not b2.created
    p = store.blobs.path(b1.digest)
    assert p.name == "sha256-" + b1.digest[7:] and p.read_bytes() == b"hello"
    assert oct(p.stat().st_mode & 0o777) == "0o644"
    assert store.blobs.digests() == [b1.digest]
    assert [x.name for x in store.blobs.dir.iterdir()] == [p.name]          # no temp file left


def test_expected_digest_mismatch_stores_nothing(store: Store) -> None:
    with pytest.raises(DigestMismatch, match=r'^digest mismatch, expected "sha256:0{64}", got "sha256:'):
        store.blobs.put_bytes(b"x", expected="sha256:" + "0" * 64)
    assert list(store.blobs.dir.iterdir()) == []


def test_put_file_copies(store: Store, tmp_path: Path) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(3 << 20) + b"tail")
    blob = store.blobs.put_file(src, expected=d(src.read_bytes()))
    src.write_bytes(b"changed later")       # the stored blob is a copy, not a link
    assert store.blobs.verify(blob.digest)


@pytest.mark.parametrize("bad", ["", "sha256:", "sha256:" + "g" * 64, "sha256:" + "a" * 63, "md5:" + "a" * 32,
                                 "sha256:../../../etc/passwd", "sha256:" + "a" * 64 + "/x", "../sha256-" + "a" * 64,
                                 "sha256-" + "a" * 64 + "\x00", "sha512:" + "a" * 64])
def test_digests_are_validated_before_any_path(store: Store, bad: str) -> None:
    with pytest.raises(InvalidDigest, match="^invalid digest format$"):
        store.blobs.path(bad)
    with pytest.raises(InvalidDigest):
        store.blobs.has(bad)


def test_normalize_digest_accepts_both_separators() -> None:
    assert normalize_digest("sha256-" + "A" * 64) == "sha256:" + "a" * 64


def test_missing_blob(store: Store) -> None:
    with pytest.raises(BlobNotFound, match="not found"):
        store.blobs.open("sha256:" + "1" * 64)


def test_partial_download_in_parts_from_threads_then_commit(store: Store) -> None:
    data = os.urandom(1 << 20)
    digest = d(data)
    parts = [(i * 131072, 131072) for i in range(8)]
    with store.blobs.partial(digest, len(data)) as p:
        assert p.path.name.endswith("-partial") and p.path.stat().st_size == len(data)   # pre-sized

        def work(n: int) -> None:
            off, size = parts[n]
            p.write_at(off, data[off:off + size])
            p.sync()
            p.save_part(n, {"N": n, "Offset": off, "Size": size, "Completed": size})

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(p.load_parts()) == list(range(8))
        blob = p.commit()
    assert blob.created and store.blobs.verify(digest)
    assert sorted(x.name for x in store.blobs.dir.iterdir()) == ["sha256-" + digest[7:]]  # parts removed


def test_partial_resume_after_reopen(store: Store) -> None:
    data = os.urandom(200_000)
    digest = d(data)
    p = store.blobs.partial(digest, len(data))
    p.write_at(0, data[:50_000])
    p.save_part(0, {"N": 0, "Offset": 0, "Size": len(data), "Completed": 50_000})
    p.close()                                            # e.g. the process died here
    with store.blobs.partial(digest, len(data)) as p2:
        done = p2.load_parts()[0]["Completed"]
        assert done == 50_000
        p2.write_at(done, data[done:])
        p2.commit()
    assert store.blobs.read_bytes(digest) == data


def test_partial_mismatch_deletes_everything(store: Store) -> None:
    data = b"x" * 1000
    with store.blobs.partial(d(data), 1000) as p:
        p.write_at(0, b"y" * 1000)
        p.save_part(0, {"Completed": 1000})
        with pytest.raises(DigestMismatch, match="^digest mismatch, file must be downloaded again: want sha256:"):
            p.commit()
    assert list(store.blobs.dir.iterdir()) == []


def test_partial_is_locked_across_holders(store: Store) -> None:
    digest = d(b"abc")
    with store.blobs.partial(digest, 3), pytest.raises(BlobBusy):
        store.blobs.partial(digest, 3, wait=False)


def test_partial_write_outside_range(store: Store) -> None:
    with store.blobs.partial(d(b"abc"), 3) as p, pytest.raises(StoreError, match="outside"):
        p.write_at(2, b"xy")


def test_adopt_moves_without_copy(store: Store) -> None:
    tmp = store.blobs.temp_path(".gguf")
    tmp.write_bytes(b"quantized bytes")
    ino = tmp.stat().st_ino
    blob = store.blobs.adopt(tmp)
    assert store.blobs.path(blob.digest).stat().st_ino == ino and not tmp.exists()
