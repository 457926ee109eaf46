from __future__ import annotations

import pytest

from pyollama.errors import InvalidModelName
from pyollama.store.names import ModelName, is_valid_name

H = "a" * 64


@pytest.mark.parametrize(("s", "full", "display"), [
    ("smollm2", "registry.ollama.ai/library/smollm2:latest", "smollm2:latest"),
    ("llama3.2:3b", "registry.ollama.ai/library/llama3.2:3b", "llama3.2:3b"),
    ("user/m", "registry.ollama.ai/user/m:latest", "user/m:latest"),
    ("user/m:tag", "registry.ollama.ai/user/m:tag", "user/m:tag"),
    ("example.com:5000/ns/m:tag", "example.com:5000/ns/m:tag", "example.com:5000/ns/m:tag"),
    ("127.0.0.1:5000/team/smollm2:135m", "127.0.0.1:5000/team/smollm2:135m", "127.0.0.1:5000/team/smollm2:135m"),
    ("hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M", "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M",
     "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M"),
    ("registry.ollama.ai/library/x:latest", "registry.ollama.ai/library/x:latest", "x:latest"),
    ("REGISTRY.OLLAMA.AI/Library/X:Latest", "REGISTRY.OLLAMA.AI/Library/X:Latest", "X:Latest"),
    ("_under/_m:_t", "registry.ollama.ai/_under/_m:_t", "_under/_m:_t"),
    ("m" * 80 + ":" + "t" * 80, f"registry.ollama.ai/library/{'m' * 80}:{'t' * 80}", f"{'m' * 80}:{'t' * 80}"),
])
def test_valid_names(s: str, full: str, display: str) -> None:
    n = ModelName.parse(s)
    assert n.full() == full
    assert n.display() == display
    assert str(n) == display
    assert ModelName.parse(n.full()) == n        # a full name parses back to itself


def test_host_with_port_and_scheme() -> None:
    n = ModelName.parse("127.0.0.1:5000/team/smollm2:135m")
    assert n.parts == ("127.0.0.1:5000", "team", "smollm2", "135m")
    assert n.repository == "team/smollm2"
    assert n.scheme == "https"
    assert ModelName.parse("http://127.0.0.1:5000/team/smollm2:135m").scheme == "http"


def test_digest_suffix_is_normalized() -> None:
    n = ModelName.parse(f"m:t@sha256-{H.upper()}")
    assert n.digest == f"sha256:{H}"
    assert n.parts == ("registry.ollama.ai", "library", "m", "t")


def test_case_insensitive_key() -> None:
    a, b = ModelName.parse("Llama3:Latest"), ModelName.parse("llama3")
    assert a != b and a.equal_fold(b) and a.key == b.key


BAD = [
    "", " ", "m ", " m", "..", ".", "./m", "../m", "a/../b", "a/./b", "/abs", "/etc/passwd", "a//b", "/a/b/c",
    "x/y/z/w", "a/b/c/d:e", "m:", ":t", "m:.x", "m:-x", "m:t:u", "m\x00", "m\x00/../x", "ns.x/m", "-a", ".hidden",
    "a\\b", "..\\..\\x", "C:\\x", "café", "m/", "m:t/", "http://a/b", "ftp://h/n/m", "a" * 81, "m:" + "t" * 81,
    "n" * 81 + "/m", "h" * 351 + "/n/m", "m@sha256:zz", "m@sha256:" + "a" * 63, "@sha256:" + H, "m@", "m@md5:x",
    "m\n", "m\t", "m*", "m?", "m%2e%2e", "~/x",
]


@pytest.mark.parametrize("s", BAD)
def test_invalid_names(s: str) -> None:
    with pytest.raises(InvalidModelName, match="^invalid model name$"):
        ModelName.parse(s)
    assert not is_valid_name(s)


def test_from_parts_validates() -> None:
    assert ModelName.from_parts(("h", "n", "m", "t")).display() == "h/n/m:t"
    for parts in [("h", "n", "..", "t"), ("h", "n", "m", ".tmp-1-ab"), ("h", "n.x", "m", "t"), ("h", "n", "m")]:
        with pytest.raises(InvalidModelName):
            ModelName.from_parts(parts)
