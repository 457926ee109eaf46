"""Images through every surface, held to upstream: a model created over HTTP from a GGUF and its projector
(``/api/blobs`` + ``/api/create`` with both files), shown with ``projector_info`` and the ``vision``
capability, and asked about images through ``/api/generate``, ``/api/chat`` (the ``ollama`` client),
``/v1/chat/completions`` and ``/v1/responses`` (the ``openai`` client) and ``/v1/messages`` (the ``anthropic``
client). Each answer is what ``llama-server --mmproj`` from the same build generates for the same rendered
prompt and image (greedy, token for token where the surface gives tokens), and a request with an image beside
text-only ones decodes the same as alone. The errors are 400s that say what is wrong.

No vision model exists on PyPI: the tiny random llama with ``tiny_gguf.write_tiny_mmproj``'s projector.
"""
from __future__ import annotations

import base64
import concurrent.futures as cf
import hashlib
import re
import time
from pathlib import Path

import pytest

from tests.api.conftest import Server
from tests.api.helpers import error_of
from tests.tiny_gguf import ppm_image, sample_images

M = "vision"
N = 12
TEMPLATE = "{{ if .System }}<|system|>{{ .System }}\n{{ end }}<|user|>{{ .Prompt }}\n<|assistant|>"
PROMPTS = ["What is in this picture?", "Describe it in one word:"]
OPTS = {"temperature": 0, "num_predict": N}
pytestmark = pytest.mark.tools


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def upload(s: Server, path: Path) -> str:
    data = path.read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert s.post(f"/api/blobs/{digest}", content=data).status_code in (200, 201)     # 200: already there
    return digest


@pytest.fixture(scope="module")
def server(vision_files, tmp_path_factory):
    """A server with its own store, the vision model created over HTTP from the two GGUFs."""
    root = tmp_path_factory.mktemp("vision-store")
    s = Server({"PYOLLAMA_MODELS": str(root / "models"), "OLLAMA_NUM_PARALLEL": "3",
                "PYOLLAMA_MAX_IMAGES": "3"}, root / "server.log")
    try:
        text, mmproj = vision_files
        r = s.post("/api/create", json={"model": M, "files": {"model.gguf": upload(s, text),
                                                               "mmproj.gguf": upload(s, mmproj)},
                                        "template": TEMPLATE, "stream": False})
        assert r.status_code == 200, r.text
        r = s.post("/api/create", json={"model": "plain", "files": {"model.gguf": upload(s, text)}, "stream": False})
        assert r.status_code == 200, r.text
        yield s
    finally:
        s.stop()


def reference(upstream, rendered: str, images: list[bytes]) -> dict:
    """llama-server's greedy answer for a prompt rendered by pyollama (``[img-N]`` marks → its marker)."""
    c, marker = upstream
    order = [int(i) for i in re.findall(r"\[img-(\d+)\]", rendered)]
    r = c.post("/completion", json={
        "prompt": {"prompt_string": re.sub(r"\[img-\d+\]", marker, rendered),
                   "multimodal_data": [b64(images[i]) for i in order]},
        "n_predict": N, "temperature": 0, "return_tokens": True, "cache_prompt": False})
    assert r.status_code == 200, r.text
    return r.json()


def rendered_chat(server, msgs: list[dict]) -> str:
    r = server.post("/api/chat", json={"model": M, "messages": msgs, "_debug_render_only": True})
    assert r.status_code == 200, r.text
    return r.json()["_debug_info"]["rendered_template"]


def test_show_and_capabilities(server):
    shown = server.post("/api/show", json={"model": M}).json()
    assert "vision" in shown["capabilities"] and "completion" in shown["capabilities"]
    assert shown["projector_info"]["general.architecture"] == "clip"
    assert shown["projector_info"]["clip.has_vision_encoder"] is True
    plain = server.post("/api/show", json={"model": "plain"}).json()
    assert "vision" not in plain["capabilities"] and "projector_info" not in plain
    manifest = server.get("/api/tags").json()
    assert {m["name"] for m in manifest["models"]} == {"vision:latest", "plain:latest"}


@pytest.mark.parametrize("prompt", PROMPTS)
def test_generate_matches_upstream(server, vision_upstream, prompt):
    answers = set()
    for name, image in sample_images().items():
        r = server.post("/api/generate", json={"model": M, "prompt": prompt, "images": [b64(image)],
                                               "stream": False, "options": OPTS})
        assert r.status_code == 200, r.text
        out = r.json()
        debug = server.post("/api/generate", json={"model": M, "prompt": prompt, "images": [b64(image)],
                                                   "_debug_render_only": True}).json()["_debug_info"]
        assert debug["image_count"] == 1 and debug["rendered_template"].startswith("<|user|>[img-0]")
        ref = reference(vision_upstream, debug["rendered_template"], [image])
        assert out["context"][-out["eval_count"]:] == ref["tokens"][:out["eval_count"]], name
        assert out["response"] == ref["content"], name
        assert out["prompt_eval_count"] == ref["tokens_evaluated"], name     # images counted as upstream
        assert out["eval_count"] == N
        answers.add(out["response"])
    assert len(answers) == len(sample_images()) == 3            # each image leads elsewhere


def test_chat_through_the_ollama_client(server, vision_upstream):
    ollama = pytest.importorskip("ollama")
    with ollama.Client(host=server.url) as client:
        _chat_turns(client, server, vision_upstream)


def _chat_turns(client, server, vision_upstream) -> None:
    images = sample_images()
    for prompt in PROMPTS:
        for name, image in images.items():
            msgs = [{"role": "user", "content": prompt, "images": [image]}]
            out = client.chat(M, messages=msgs, options=OPTS)
            ref = reference(vision_upstream, rendered_chat(server, [{**msgs[0], "images": [b64(image)]}]), [image])
            assert out.message.content == ref["content"], (prompt, name)
            assert out.prompt_eval_count == ref["tokens_evaluated"]
    # Two images in one turn, one placed by the user with [img]; then a follow-up turn that keeps them.
    gradient, checker = images["gradient"], images["checker"]
    msgs = [{"role": "user", "content": "Compare [img] with this.", "images": [b64(gradient), b64(checker)]}]
    text = rendered_chat(server, msgs)
    assert "<|user|>[img-1]Compare [img-0] with this." in text
    first = server.post("/api/chat", json={"model": M, "messages": msgs, "stream": False, "options": OPTS}).json()
    assert first["message"]["content"] == reference(vision_upstream, text, [gradient, checker])["content"]
    msgs += [first["message"], {"role": "user", "content": "And now?"}]
    second = server.post("/api/chat", json={"model": M, "messages": msgs, "stream": False, "options": OPTS}).json()
    assert second["message"]["content"] == reference(vision_upstream, rendered_chat(server, msgs), [gradient, checker])["content"]
    assert second["prompt_eval_count"] > first["prompt_eval_count"]


def test_openai_and_anthropic_clients(server, vision_upstream):
    """/v1/chat/completions (image_url), /v1/responses (input_image) and /v1/messages (image blocks)."""
    openai = pytest.importorskip("openai")
    anthropic = pytest.importorskip("anthropic")
    with openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0) as oa, \
            anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0) as an:
        _compatible_turns(oa, an, server, vision_upstream)


def _compatible_turns(oa, an, server, vision_upstream) -> None:
    for prompt in PROMPTS:
        for name, image in sample_images().items():
            ref = reference(vision_upstream, rendered_chat(server, [{"role": "user", "content": prompt,
                                                              "images": [b64(image)]}]), [image])
            url = "data:image/jpeg;base64," + b64(image)
            r = oa.chat.completions.create(model=M, max_tokens=N, temperature=0, messages=[{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": prompt}]}])
            assert r.choices[0].message.content == ref["content"], (prompt, name)
            assert r.usage.prompt_tokens == ref["tokens_evaluated"]
            m = an.messages.create(model=M, max_tokens=N, extra_body={"temperature": 0}, messages=[{"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64(image)}},
                {"type": "text", "text": prompt}]}])
            assert "".join(b.text for b in m.content if b.type == "text") == ref["content"], (prompt, name)
            assert m.usage.input_tokens == ref["tokens_evaluated"]
            resp = oa.responses.create(model=M, max_output_tokens=N, temperature=0, input=[{"role": "user", "content": [
                {"type": "input_image", "image_url": url}, {"type": "input_text", "text": prompt}]}])
            assert resp.output_text == ref["content"], (prompt, name)


def test_image_beside_text_requests_equals_alone(server):
    """Continuous batching: an image request shares the step loop with text-only ones (3 slots)."""
    image = sample_images()["checker"]
    jobs = [{"prompt": PROMPTS[0], "images": [b64(image)]}, {"prompt": "Once upon a time"},
            {"prompt": "The quick brown fox"}]

    spans = []

    def run(job):
        t0 = time.monotonic()
        r = server.post("/api/generate", json={"model": M, "stream": False, "options": OPTS, **job})
        spans.append((t0, time.monotonic()))
        assert r.status_code == 200, r.text
        return r.json()["context"]

    alone = [run(j) for j in jobs]
    spans.clear()
    with cf.ThreadPoolExecutor(3) as pool:
        together = list(pool.map(run, jobs))
    assert together == alone
    assert max(a for a, _ in spans) < min(b for _, b in spans), "the three requests did not run together"


def test_errors(server):
    image = b64(sample_images()["gradient"])
    r = server.post("/api/generate", json={"model": "plain", "prompt": "hi", "images": [image]})
    assert r.status_code == 400 and "does not support vision" in error_of(r)
    r = server.post("/api/chat", json={"model": "plain", "messages": [
        {"role": "user", "content": "hi", "images": [image]}]})
    assert r.status_code == 400 and "does not support vision" in error_of(r)
    r = server.post("/api/generate", json={"model": M, "prompt": "hi", "images": ["***"]})
    assert r.status_code == 400 and "base64" in error_of(r)
    corrupt = b64(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    r = server.post("/api/generate", json={"model": M, "prompt": "hi", "images": [corrupt], "stream": False})
    assert r.status_code == 400 and "image 0" in error_of(r) and "cannot be decoded" in error_of(r)
    r = server.post("/api/chat", json={"model": M, "messages": [
        {"role": "user", "content": "hi", "images": [image] * 4}]})
    assert r.status_code == 400 and "too many images: 4" in error_of(r) and "limit is 3" in error_of(r)
    # The server still answers after the refusals.
    r = server.post("/api/generate", json={"model": M, "prompt": "hi", "images": [image], "stream": False,
                                           "options": OPTS})
    assert r.status_code == 200 and r.json()["done"]


def test_too_large_image(serve, vision_files, tmp_path):
    """PYOLLAMA_MAX_IMAGE_PIXELS: an image over it is refused with the limit (the runner reads the size)."""
    s = serve(PYOLLAMA_MODELS=str(tmp_path / "models"), PYOLLAMA_MAX_IMAGE_PIXELS="1000")
    text, mmproj = vision_files
    r = s.post("/api/create", json={"model": M, "files": {"model.gguf": upload(s, text),
                                                           "mmproj.gguf": upload(s, mmproj)}, "stream": False})
    assert r.status_code == 200, r.text
    big = b64(ppm_image(40, 30, lambda x, y: (x, y, 0)))
    r = s.post("/api/generate", json={"model": M, "prompt": "hi", "images": [big], "stream": False})
    assert r.status_code == 400 and "40x30 pixels" in error_of(r) and "limit of 1000" in error_of(r)
    small = b64(ppm_image(20, 20, lambda x, y: (x, y, 0)))
    r = s.post("/api/generate", json={"model": M, "prompt": "hi", "images": [small], "stream": False,
                                      "options": OPTS})
    assert r.status_code == 200, r.text


def test_push_and_pull_keep_the_projector(server, registry):
    """A manifest with a projector layer goes to a real registry and comes back a vision model."""
    remote = f"{registry.host}/library/vision-remote:v1"
    try:
        _push_and_pull(server, remote)
    finally:        # the module's other tests expect their own models only
        server.request("DELETE", "/api/delete", json={"model": remote})


def _push_and_pull(server, remote: str) -> None:
    assert server.post("/api/copy", json={"source": M, "destination": remote}).status_code == 200
    r = server.post("/api/push", json={"model": remote, "insecure": True, "stream": False})
    assert r.status_code == 200 and r.json()["status"] == "success", r.text
    manifest = server.post("/api/show", json={"model": remote}).json()
    assert server.request("DELETE", "/api/delete", json={"model": remote}).status_code == 200
    r = server.post("/api/pull", json={"model": remote, "insecure": True, "stream": False})
    assert r.status_code == 200 and r.json()["status"] == "success", r.text
    pulled = server.post("/api/show", json={"model": remote}).json()
    assert "vision" in pulled["capabilities"] and pulled["projector_info"] == manifest["projector_info"]
    image = b64(sample_images()["checker"])
    a, b = (server.post("/api/generate", json={"model": name, "prompt": "hi", "images": [image], "stream": False,
                                               "options": OPTS}).json()["response"] for name in (M, remote))
    assert a == b
