"""Images in the step loop (runner/media.py with batcher.py): the prefix cache reuses the KV of an image only for
the same image, never cuts one, encodes each image once, and refuses what it cannot run."""
from __future__ import annotations

import pytest

from pyollama import _native
from pyollama.errors import InvalidRequest, MediaError
from pyollama.runner.media import Media, Span, places
from pyollama.runner.runner import Runner
from pyollama.runner.types import RunnerSpec, SeqRequest
from tests.tiny_gguf import sample_images

M = _native.MEDIA_MARKER
OPTS = {"temperature": 0, "num_predict": 8}
GRADIENT, CHECKER = (sample_images()[k] for k in ("gradient", "checker"))


@pytest.fixture(scope="module")
def mmproj(vision_files):
    return vision_files[1]


def start(model, mmproj, **kw) -> Runner:
    return Runner(RunnerSpec(str(model), projector=str(mmproj) if mmproj else "", num_ctx=256, **kw))


def run(r: Runner, prompt: str, images=()):
    s = r.submit(SeqRequest(prompt, options=OPTS, images=list(images)))
    for _ in s:
        pass
    return s.done


def test_places_are_negative_and_differ_by_image():
    a, b = places("ab" * 32, 16), places("cd" * 32, 16)
    assert all(t < 0 for t in a + b) and a != b and a == places("ab" * 32, 16)
    media = Media(chunks=None, spans=[Span(3, 16, 1, "x"), Span(25, 16, 3, "y")])
    assert [media.snap(k) for k in (2, 3, 4, 18, 19, 20, 25, 30, 41)] == [2, 3, 3, 3, 19, 20, 25, 25, 41]
    assert media.next_start(4, 99) == 25 and media.next_start(26, 99) == 99 and media.at(25).chunk == 3


def test_prefix_cache_never_crosses_images(tiny_model_path, mmproj):
    prompt = f"Look at this: {M} What is it?"
    with start(tiny_model_path, mmproj) as cold:
        want = {name: run(cold, prompt, [img]).tokens for name, img in (("g", GRADIENT), ("c", CHECKER))}
    with start(tiny_model_path, mmproj) as r:                   # one slot: each prompt meets the last one's KV
        first = run(r, prompt, [GRADIENT])
        assert first.tokens == want["g"] and first.prompt_cached == 0
        other = run(r, prompt, [CHECKER])
        n_before_image = len(r.model.vocab.tokenize("Look at this: ", add_special=True, parse_special=True))
        assert other.tokens == want["c"] and 0 < other.prompt_cached <= n_before_image
        again = run(r, prompt, [CHECKER])                       # the same image: its KV is reused
        assert again.tokens == want["c"] and again.prompt_cached == again.prompt_eval_count - 1
        assert r.loop.vision.cache.stats()["misses"] == 2       # each image was encoded once
        info = r.info
        assert info.vision and info.image_tokens == 16 == r.vision.image_tokens


def test_refusals(tiny_model_path, mmproj):
    with start(tiny_model_path, mmproj, parallel=1) as r:
        with pytest.raises(InvalidRequest, match="ends with an image"):
            r.submit(SeqRequest(f"describe {M}", options=OPTS, images=[GRADIENT]))
        with pytest.raises(MediaError, match="1 image\\(s\\) for 2 marker"):
            r.submit(SeqRequest(f"{M} and {M} ?", options=OPTS, images=[GRADIENT]))
        with pytest.raises(MediaError, match="image 1: the image cannot be decoded"):
            r.submit(SeqRequest(f"{M} and {M} ?", options=OPTS, images=[GRADIENT, b"not an image"]))
        with pytest.raises(InvalidRequest, match="does not fit the context of 256"):
            r.submit(SeqRequest(" ".join([M] * 17) + " ?", options=OPTS, images=[CHECKER] * 17))
        with pytest.raises(InvalidRequest, match="must be text"):
            r.submit(SeqRequest([1, 2, 3], options=OPTS, images=[CHECKER]))
        assert run(r, f"{M} ok?", [CHECKER]).done_reason in ("stop", "length")      # still serving
    with start(tiny_model_path, None) as plain:
        with pytest.raises(InvalidRequest, match="no vision projector"):
            plain.submit(SeqRequest(f"{M} ok?", options=OPTS, images=[CHECKER]))
        assert not plain.info.vision


def test_a_bos_written_by_the_template_is_not_doubled(tiny_model_path, mmproj):
    with start(tiny_model_path, mmproj) as r:
        vocab = r.model.vocab
        tokens, media = r.vision.tokenize(f"<s>Look: {M} ok?", [CHECKER], True)
        head = vocab.tokenize("<s>Look: ", add_special=True, parse_special=True)
        assert head[:2] == [vocab.bos, vocab.bos]
        assert tokens[0] == vocab.bos and tokens[1] != vocab.bos
        assert media.spans[0].start == len(head) - 1 and tokens[:len(head) - 1] == head[1:]
