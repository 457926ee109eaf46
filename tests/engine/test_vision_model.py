"""The generated vision test model (``tiny_gguf.write_tiny_mmproj`` beside the tiny llama) is one that
upstream's libmtmd loads and runs: ``llama-server --mmproj`` from the pin embeds an image as the expected
number of tokens, and the image changes the computation. No vision model exists on PyPI; this is what
pyollama's own image path will be compared with, token for token."""
from __future__ import annotations

import base64
import math

import pytest

from tests.llama_server import llama_server
from tests.tiny_gguf import ppm_image, write_tiny_mmproj

pytestmark = [pytest.mark.tools]

PATCHES = (32 // 8) ** 2           # write_tiny_mmproj's image_size / patch, squared


def _images() -> dict[str, bytes]:
    return {
        "gradient": ppm_image(40, 24, lambda x, y: (x * 6 % 256, y * 10 % 256, 128)),
        "checker": ppm_image(32, 32, lambda x, y: (255,) * 3 if (x // 4 + y // 4) % 2 else (0,) * 3),
    }


def _ask(client, image: bytes | None) -> dict:
    content: list[dict] = [{"type": "text", "text": "describe"}]
    if image is not None:
        url = "data:image/x-portable-pixmap;base64," + base64.b64encode(image).decode()
        content.append({"type": "image_url", "image_url": {"url": url}})
    r = client.post("/v1/chat/completions", json={
        "messages": [{"role": "user", "content": content}], "max_tokens": 4, "temperature": 0,
        "logprobs": True, "top_logprobs": 1})
    assert r.status_code == 200, r.text
    return r.json()


def test_upstream_runs_the_tiny_vision_model(tmp_path, tiny_model_path):
    mmproj = write_tiny_mmproj(tmp_path / "mmproj.gguf")
    with llama_server(tiny_model_path, ["--mmproj", str(mmproj), "-c", "512", "-np", "1"], tmp_path) as c:
        text = _ask(c, None)
        answers = {name: _ask(c, img) for name, img in _images().items()}
        again = _ask(c, _images()["gradient"])
    n_text = text["usage"]["prompt_tokens"]
    for name, a in answers.items():
        # the image's patches as embeddings, plus the markers upstream puts around them
        assert n_text + PATCHES <= a["usage"]["prompt_tokens"] <= n_text + PATCHES + 4, (name, a["usage"])
        assert a["usage"]["completion_tokens"] == 4

    def first(a: dict) -> float:
        return a["choices"][0]["logprobs"]["content"][0]["logprob"]

    assert first(again) == first(answers["gradient"])        # deterministic
    assert not math.isclose(first(answers["gradient"]), first(answers["checker"]), rel_tol=0, abs_tol=1e-6)
    assert not math.isclose(first(answers["gradient"]), first(text), rel_tol=0, abs_tol=1e-6)
