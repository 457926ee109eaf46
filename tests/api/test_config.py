"""pyollama.config: every variable typed, PYOLLAMA_* before OLLAMA_*, quotes stripped, bad values ignored."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from pyollama.config import VARS, Config, is_loopback, parse_host
from pyollama.golang.time import parse_duration


def test_defaults_match_ollama():
    c = Config.from_env({})
    assert (c.host.host, c.host.port) == ("127.0.0.1", 11434)
    assert c.keep_alive == 300 and c.num_parallel == 1 and c.max_queue == 512 and c.max_loaded_models == 0
    assert c.flash_attention == "auto" and c.kv_cache_type == "" and c.api_key == "" and c.warnings == ()
    assert c.max_runners(0) == 3 and c.max_runners(2) == 6
    assert (c.default_num_ctx(0), c.default_num_ctx(24 << 30), c.default_num_ctx(80 << 30)) == (4096, 32768, 262144)


def test_pyollama_prefix_wins_and_quotes_are_stripped():
    c = Config.from_env({"OLLAMA_NUM_PARALLEL": "2", "PYOLLAMA_NUM_PARALLEL": "'4'",
                         "OLLAMA_MODELS": '"/tmp/m"', "OLLAMA_KEEP_ALIVE": " 10m "})
    assert c.num_parallel == 4 and c.models == Path("/tmp/m") and c.keep_alive == 600


@pytest.mark.parametrize("text, seconds", [("5m", 300), ("30", 30), ("-1", math.inf), ("-5m", math.inf), ("0", 0)])
def test_keep_alive_env_takes_seconds_or_durations(text, seconds):
    assert Config.from_env({"OLLAMA_KEEP_ALIVE": text}).keep_alive == seconds


def test_bad_values_are_reported_and_ignored():
    c = Config.from_env({"OLLAMA_NUM_PARALLEL": "lots", "OLLAMA_MAX_QUEUE": "0", "OLLAMA_KV_CACHE_TYPE": "q3"})
    assert c.num_parallel == 1 and c.max_queue == 512 and c.kv_cache_type == ""
    assert len(c.warnings) == 3 and all("invalid setting" in w for w in c.warnings)


def test_flags_and_levels():
    c = Config.from_env({"OLLAMA_FLASH_ATTENTION": "1", "OLLAMA_KV_CACHE_TYPE": "Q8_0", "OLLAMA_NOPRUNE": "yes",
                         "OLLAMA_DEBUG": "2", "OLLAMA_ORIGINS": "http://a.example, app://x ,",
                         "OLLAMA_LOAD_TIMEOUT": "0", "PYOLLAMA_API_KEY": "k"})
    assert c.flash_attention == "on" and c.kv_cache_type == "q8_0" and c.noprune and c.debug == 2
    assert c.origins == ("http://a.example", "app://x") and c.allowed_origins[:2] == c.origins
    assert "app://*" in c.allowed_origins and "http://localhost:*" in c.allowed_origins
    assert math.isinf(c.load_timeout) and c.api_key == "k"
    # a quantized KV cache needs flash attention
    off = Config.from_env({"OLLAMA_FLASH_ATTENTION": "0", "OLLAMA_KV_CACHE_TYPE": "q4_0"})
    assert off.kv_cache_type == "f16" and off.warnings
    # the API key is pyollama's own: OLLAMA_API_KEY is a client-side cloud key in Ollama
    assert Config.from_env({"OLLAMA_API_KEY": "x"}).api_key == ""


@pytest.mark.parametrize("text, expect", [
    ("", ("http", "127.0.0.1", 11434)), ("0.0.0.0", ("http", "0.0.0.0", 11434)),
    ("0.0.0.0:8080", ("http", "0.0.0.0", 8080)), ("http://example.com", ("http", "example.com", 80)),
    ("https://example.com/ollama/", ("https", "example.com", 443)), ("[::1]:9000", ("http", "::1", 9000)),
    ("::1", ("http", "::1", 11434)), (":7000", ("http", "127.0.0.1", 7000)),
])
def test_host_forms(text, expect):
    h = parse_host(text)
    assert (h.scheme, h.host, h.port) == expect


def test_bad_host_port_is_an_error():
    with pytest.raises(ValueError):
        parse_host("localhost:99999")
    assert Config.from_env({"OLLAMA_HOST": "localhost:nope"}).host.port == 11434


def test_go_durations():
    assert parse_duration("1h2m3.5s") == 3723.5 and parse_duration("-2m") == -120
    assert parse_duration("1.5h") == 5400 and parse_duration("750us") == pytest.approx(0.00075)
    for bad in ("", "m", "1", "1x", "1m1", "--1m"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_every_variable_is_described_for_serve_help():
    rows = Config.from_env({"PYOLLAMA_API_KEY": "secret"}).describe()
    assert len(rows) == len(VARS) and all(desc for _, desc, _ in rows)
    names = " ".join(n for n, _, _ in rows)
    for var in ("OLLAMA_HOST", "OLLAMA_MODELS", "OLLAMA_KEEP_ALIVE", "OLLAMA_CONTEXT_LENGTH", "OLLAMA_NUM_PARALLEL",
                "OLLAMA_MAX_LOADED_MODELS", "OLLAMA_MAX_QUEUE", "OLLAMA_ORIGINS", "OLLAMA_FLASH_ATTENTION",
                "OLLAMA_KV_CACHE_TYPE", "OLLAMA_NOPRUNE", "OLLAMA_DEBUG", "OLLAMA_LOAD_TIMEOUT", "OLLAMA_NOHISTORY",
                "PYOLLAMA_API_KEY"):
        assert var in names
    assert "secret" not in str(rows)


def test_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("127.3.0.1")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3") and not is_loopback("host")
