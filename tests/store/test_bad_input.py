"""Malformed Modelfiles, names and requests: a clear error, and the store tree byte-for-byte unchanged."""
from __future__ import annotations

from pathlib import Path

import pytest
from store_helpers import run, snapshot

from pyollama.errors import InvalidModelName, ModelfileError, ModelNotFound, StoreError
from pyollama.store import CreateRequest, Store, create, create_from_modelfile
from tests.tiny_gguf import write_tiny_gguf, write_tiny_lora

# (modelfile text, error class, message regex). "{gguf}"/"{lora}"/"{dir}" are filled in per test.
MODELFILES = [
    ("", ModelfileError, r"^no FROM line$"),
    ("# only a comment\n", ModelfileError, r"^no FROM line$"),
    ("SYSTEM hello\n", ModelfileError, r"^no FROM line$"),
    ("FROM base\nFOO bar\n", ModelfileError, r'^\(line 2\): command must be one of "from"'),
    ("FROM base\nSYSTEMS x\n", ModelfileError, r"^\(line 2\): command must be one of"),
    ("FROM base\n  QUANTIZE q4_K_M\n", ModelfileError, r"^\(line 2\): command must be one of"),
    ("FROM base\n1SYSTEM x\n", ModelfileError, r"^\(line 2\): command must be one of"),
    ("FROM base\nFROM\n", ModelfileError, r"^\(line 2\): FROM needs a value$"),
    ("FROM\n", ModelfileError, r"^\(line 1\): FROM needs a value$"),
    ('FROM base\nSYSTEM "unterminated\n', ModelfileError, r'^\(line 2\): unterminated " value'),
    ('FROM base\nTEMPLATE """{{ .Prompt }}\n', ModelfileError, r'^\(line 2\): unterminated """ value'),
    ('FROM base\nSYSTEM """a""\n', ModelfileError, r'^\(line 2\): unterminated """ value'),
    ('FROM base\nSYSTEM "a" trailing\n', ModelfileError, r'^\(line 2\): unterminated " value'),
    ("FROM base\nPARAMETER\n", ModelfileError, r"^\(line 2\): PARAMETER needs a value$"),
    ("FROM base\nPARAMETER temperature\n", ModelfileError, r"^\(line 2\): PARAMETER needs a name and a value$"),
    ("FROM base\nPARAMETER temp-erature 1\n", ModelfileError, r"^\(line 2\): PARAMETER needs a name and a value$"),
    ("FROM base\nPARAMETER bogus 1\n", ModelfileError, r"^\(line 2\): unknown parameter 'bogus'$"),
    ("FROM base\nPARAMETER Temperature 1\n", ModelfileError, r"^\(line 2\): unknown parameter 'Temperature'$"),
    ("FROM base\nPARAMETER num_ctx 4k\n", ModelfileError, r"^\(line 2\): invalid int value for num_ctx: '4k'$"),
    ("FROM base\nPARAMETER num_ctx 2048.5\n", ModelfileError, r"invalid int value for num_ctx"),
    ("FROM base\nPARAMETER seed 0x10\n", ModelfileError, r"invalid int value for seed"),
    ("FROM base\nPARAMETER temperature hot\n", ModelfileError, r"^\(line 2\): invalid float value for temperature"),
    ("FROM base\nPARAMETER top_p nan\n", ModelfileError, r"invalid float value for top_p"),
    ("FROM base\nPARAMETER use_mmap yes\n", ModelfileError, r"^\(line 2\): invalid bool value for use_mmap: 'yes'$"),
    ("FROM base\n\n\nPARAMETER num_gpu -\n", ModelfileError, r"^\(line 4\): invalid int value for num_gpu"),
    ("FROM base\nMESSAGE robot hi\n", ModelfileError, r'^\(line 2\): message role must be one of "system"'),
    ("FROM base\nMESSAGE user\n", ModelfileError, r"^\(line 2\): MESSAGE needs a role and a message$"),
    ("FROM base\nREQUIRES banana\n", ModelfileError, r"^\(line 2\): requires must be a valid semver"),
    ("FROM ./missing.gguf\n", ModelfileError, r"^\(line 1\): FROM ./missing.gguf: no such file or directory, and"),
    ("FROM /nope/model.gguf\n", ModelfileError, r"no such file or directory, and not a valid model name$"),
    ("FROM ../../etc/passwd\n", ModelfileError, r"not a valid model name$"),
    ("FROM nothere\n", ModelNotFound, r"^model 'nothere:latest' not found$"),
    ("FROM someone/nothere:v2\n", ModelNotFound, r"^model 'someone/nothere:v2' not found$"),
    ("FROM base\nADAPTER ./missing-lora.gguf\n", ModelfileError, r"^\(line 2\): ADAPTER ./missing-lora.gguf: no such"),
    ("FROM base\nADAPTER {gguf}\n", StoreError, r"ADAPTER file is a model, not an adapter"),
    ("FROM {notgguf}\n", StoreError, r"supplied file was not in GGUF format"),
    ("FROM base\nADAPTER {lora_gemma}\n", StoreError, r"adapter architecture gemma3 does not match"),
    ("FROM {dir}\n", StoreError, r"no safetensors or GGUF files found"),
    ("FROM {gguf}\nFROM ./no-projector.gguf\n", ModelfileError, r"^\(line 2\): FROM ./no-projector.gguf: no such"),
]

BAD_NAMES = ["../escape", "a/../../b", "/abs/path", "..", "x:..", "n.s/m", "m\x00", "m:" + "t" * 81, "a/b/c/d",
             "C:\\evil", "m:tag:extra", ""]


@pytest.fixture
def populated(store: Store, tmp_path: Path) -> Store:
    run(create_from_modelfile(store, "base", f"FROM {write_tiny_gguf(tmp_path / 'base.gguf')}\nSYSTEM base\n"))
    return store


def _fill(text: str, tmp_path: Path) -> str:
    notgguf = tmp_path / "not.gguf"
    notgguf.write_bytes(b"\x00" * 64)
    empty = tmp_path / "emptydir"
    empty.mkdir(exist_ok=True)
    return text.format(gguf=write_tiny_gguf(tmp_path / "other.gguf", seed=5), notgguf=notgguf, dir=empty,
                       lora_gemma=write_tiny_lora(tmp_path / "g.gguf", arch="gemma3", n_embd=16))


@pytest.mark.parametrize(("text", "exc", "msg"), MODELFILES, ids=[f"mf{i}" for i in range(len(MODELFILES))])
def test_bad_modelfile_leaves_store_unchanged(populated: Store, tmp_path: Path, text: str, exc: type,
                                              msg: str) -> None:
    text = _fill(text, tmp_path)
    before = snapshot(populated.root)
    with pytest.raises(exc, match=msg):
        run(create_from_modelfile(populated, "new-model", text, base_dir=tmp_path))
    assert snapshot(populated.root) == before


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_leave_store_unchanged(populated: Store, tmp_path: Path, name: str) -> None:
    before = snapshot(populated.root)
    with pytest.raises(InvalidModelName):
        run(create_from_modelfile(populated, name, "FROM base\nSYSTEM x\n"))
    with pytest.raises(InvalidModelName):
        run(create(populated, CreateRequest(model="ok", from_=name or "?")))
    with pytest.raises(InvalidModelName):
        populated.copy("base", name)
    with pytest.raises(InvalidModelName):
        populated.delete(name)
    assert snapshot(populated.root) == before


def test_case_count() -> None:
    assert len(MODELFILES) + len(BAD_NAMES) >= 30
