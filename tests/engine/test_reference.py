"""Token identity with llama.cpp itself.

Upstream's `llama-server`, built from the same pinned tree (PYOLLAMA_BUILD_TOOLS=ON), is started
on a loopback port in the test run and asked, at temperature 0, for 32 tokens after each prompt;
pyollama's engine must produce the same token ids, and tokenize every prompt to the same ids as
the server's /tokenize. Both sides use the same context size, batch sizes and thread count, and
evaluate each prompt as one batch (llama.cpp's results depend on how a prompt is split).
"""
from __future__ import annotations

import socket
import subprocess
import time

import httpx
import pytest

from pyollama.engine import LLM
from pyollama.upstream import find_tool

N_PREDICT = 32
N_CTX = 4096
THREADS = 2

PROMPTS = [
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    "The quick brown fox jumps over the lazy dog. Then the dog",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "Les élèves de l'école ont visité le musée, où ils ont vu",
    "Q: What is 17 * 23?\nA:",
    "Once upon a time, in a kingdom by the sea, " * 12 + "the princess",
    "1, 1, 2, 3, 5, 8, 13,",
    "<start_of_turn>user\nWrite a haiku about rain.<end_of_turn>\n<start_of_turn>model\n",
]

pytestmark = [pytest.mark.model, pytest.mark.tools, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module", params=["smollm2", "gemma3"])
def reference(request, tmp_path_factory):
    """(model path, httpx client of a running llama-server for that model)."""
    server = find_tool("llama-server")
    if server is None:
        pytest.skip("llama-server not built (PYOLLAMA_BUILD_TOOLS=ON)")
    path = request.getfixturevalue(f"{request.param}_path")
    port = _free_port()
    log = open(tmp_path_factory.mktemp("llama-server") / "stderr.log", "w+b")
    proc = subprocess.Popen(
        [str(server), "-m", str(path), "--host", "127.0.0.1", "--port", str(port), "-c", str(N_CTX),
         "-np", "1", "-t", str(THREADS), "-tb", str(THREADS), "-b", "512", "-ub", "512",
         "--no-warmup", "--log-disable",
         # no context checkpoints / prompt cache: otherwise the server splits a sliding-window
         # model's prompt (e.g. 12 + 4 tokens) to snapshot it, and batch shape changes numerics
         "--ctx-checkpoints", "0", "--cache-ram", "0"],
        stdout=subprocess.DEVNULL, stderr=log)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                log.seek(0)
                pytest.fail(f"llama-server exited: {log.read().decode(errors='replace')[-2000:]}")
            try:
                if client.get("/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("llama-server did not become healthy in 120 s")
            time.sleep(0.2)
        yield path, client
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def engine(reference):
    path, _ = reference
    with LLM(path, num_ctx=N_CTX, num_batch=512, num_thread=THREADS) as llm:
        yield llm


@pytest.mark.parametrize("prompt", PROMPTS, ids=range(len(PROMPTS)))
def test_tokenization_identical(reference, engine, prompt):
    _, client = reference
    r = client.post("/tokenize", json={"content": prompt, "add_special": True, "parse_special": True})
    assert engine.tokenize(prompt) == r.json()["tokens"]


@pytest.mark.parametrize("prompt", PROMPTS, ids=range(len(PROMPTS)))
def test_greedy_generation_identical(reference, engine, prompt):
    _, client = reference
    tokens = engine.tokenize(prompt)
    r = client.post("/completion", json={
        "prompt": tokens, "n_predict": N_PREDICT, "temperature": 0, "cache_prompt": False,
        "return_tokens": True, "stream": False})
    r.raise_for_status()
    upstream = r.json()["tokens"]
    ours = engine.complete(tokens, num_predict=N_PREDICT, temperature=0, cache=False)
    # upstream lists the end-of-generation token it stopped on; pyollama reports it as done_reason
    if upstream and engine.vocab.is_eog(upstream[-1]):
        upstream = upstream[:-1]
        assert ours.done_reason == "stop"
    assert ours.tokens == upstream
    assert len(ours.tokens) == N_PREDICT or ours.done_reason == "stop"
