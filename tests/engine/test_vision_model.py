"""Images through upstream's libmtmd (``_native.Projector``), held to ``llama-server --mmproj`` from the pin.

No vision model exists on PyPI: ``tiny_gguf.write_tiny_mmproj`` writes a random-weight LLaVA-style projector
for the tiny llama. Upstream runs the pair (an image adds its 16 patch embeddings to the prompt, and changes
what comes out), and pyollama's bindings generate the same greedy tokens as llama-server for each image and
prompt."""
from __future__ import annotations

import base64
import math

import pytest

from pyollama import _native
from pyollama.errors import MediaError, ModelLoadError
from tests.tiny_gguf import sample_images

PATCHES = (32 // 8) ** 2           # write_tiny_mmproj's image_size / patch, squared
N_PREDICT = 12
PROMPTS = ["Look: {m} What is it?", "{m}\nDescribe the picture in one word:"]


def _chat(client, image: bytes | None) -> dict:
    content: list[dict] = [{"type": "text", "text": "describe"}]
    if image is not None:
        url = "data:image/x-portable-pixmap;base64," + base64.b64encode(image).decode()
        content.append({"type": "image_url", "image_url": {"url": url}})
    r = client.post("/v1/chat/completions", json={
        "messages": [{"role": "user", "content": content}], "max_tokens": 4, "temperature": 0,
        "logprobs": True, "top_logprobs": 1})
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.tools
def test_upstream_runs_the_tiny_vision_model(vision_upstream):
    c, _ = vision_upstream
    images = sample_images()
    text = _chat(c, None)
    answers = {name: _chat(c, images[name]) for name in ("gradient", "checker")}
    again = _chat(c, images["gradient"])
    n_text = text["usage"]["prompt_tokens"]
    for name, a in answers.items():
        # the image's patches as embeddings, plus any markers upstream puts around them
        assert n_text + PATCHES <= a["usage"]["prompt_tokens"] <= n_text + PATCHES + 4, (name, a["usage"])

    def first(a: dict) -> float:
        return a["choices"][0]["logprobs"]["content"][0]["logprob"]

    assert first(again) == first(answers["gradient"])        # deterministic
    assert not math.isclose(first(answers["gradient"]), first(answers["checker"]), rel_tol=0, abs_tol=1e-6)
    assert not math.isclose(first(answers["gradient"]), first(text), rel_tol=0, abs_tol=1e-6)


def _generate(vision_files, image: bytes, prompt: str) -> tuple[list[int], int]:
    """Greedy tokens for (image, prompt) through the bindings, and the prompt's evaluated positions."""
    text, mmproj = vision_files
    model = _native.Model(text)
    ctx = _native.Context(model, n_ctx=512, n_batch=512)
    proj = _native.Projector(model, mmproj)
    chunks = proj.tokenize(prompt.format(m=_native.MEDIA_MARKER), [proj.image(image)])
    n_past = n_prompt = proj.eval(ctx, chunks)
    batch = _native.Batch(1)
    out = []
    for _ in range(N_PREDICT):
        t = _native.argmax(ctx, -1)
        out.append(t)
        batch.reset()
        batch.add(t, n_past, [0], True)
        ctx.decode(batch)
        n_past += 1
    return out, n_prompt


@pytest.mark.tools
@pytest.mark.parametrize("prompt", PROMPTS)
def test_bindings_generate_upstreams_tokens(vision_files, vision_upstream, prompt):
    c, marker = vision_upstream
    for name, image in sample_images().items():
        r = c.post("/completion", json={
            "prompt": {"prompt_string": prompt.format(m=marker), "multimodal_data": [base64.b64encode(image).decode()]},
            "n_predict": N_PREDICT, "temperature": 0, "return_tokens": True, "cache_prompt": False})
        assert r.status_code == 200, r.text
        ours, n_prompt = _generate(vision_files, image, prompt)
        assert ours == r.json()["tokens"], name
        assert n_prompt == r.json()["tokens_evaluated"], name


def test_chunks_and_errors(vision_files):
    text, mmproj = vision_files
    model = _native.Model(text)
    proj = _native.Projector(model, mmproj)
    assert proj.vision and not proj.audio
    img = proj.image(sample_images()["gradient"])
    assert (img.width, img.height) == (40, 24) and len(img.id) == 64          # sha256 of the pixels
    chunks = proj.tokenize(f"a {_native.MEDIA_MARKER} b", [img])
    assert chunks.kinds() == ["text", "image", "text"]
    assert chunks.n_tokens == len(chunks.text_tokens(0)) + PATCHES + len(chunks.text_tokens(2))
    with pytest.raises(MediaError, match="cannot be decoded"):
        proj.image(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(MediaError, match="empty"):
        proj.image(b"")
    with pytest.raises(MediaError, match=r"2 image\(s\) for 1 marker"):
        proj.tokenize(f"a {_native.MEDIA_MARKER} b", [img, img])
    with pytest.raises(ValueError, match="open context"):
        model.close()                                   # the projector keeps its model
    with pytest.raises(ValueError, match="n_threads must be positive"):
        _native.Projector(model, mmproj, n_threads=0)
    proj.close()
    with pytest.raises(ModelLoadError, match="failed to load the projector"):
        _native.Projector(model, text)                  # a text model is not a projector
