"""Images in a prompt, for the step loop: a prompt with media becomes one token list in which each image
holds the place of its embeddings, so the prefix cache, slot choice and KV copies work on it unchanged.

An image's places are negative ids derived from the hash of its bytes (libmtmd's chunk id): equal images
give equal places, so a returning conversation reuses the KV its images left, and different images never
share a prefix. The loop evaluates an image as a whole, in its own decode between batch steps (upstream's
helper: encode with the projector, then decode the embeddings with the attention the model wants for
media), and never cuts a sequence's KV inside one (``Media.snap``). Encoded images are kept by hash in
``EmbeddingCache`` so a multi-turn chat encodes each image once.

Thread-safety: ``tokenize`` from any thread (it only reads the vocabulary and decodes images); ``Vision``
on the loop thread.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass

import numpy as np

from pyollama import _native
from pyollama.errors import InvalidRequest, MediaError

_MIX = 0x9E3779B9             # spreads an image's places over the id space


@dataclass(frozen=True)
class Span:
    """One image in a prompt: its places ``[start, start + n)`` in the token list, its chunk, its hash."""

    start: int
    n: int
    chunk: int
    id: str

    @property
    def end(self) -> int:
        return self.start + self.n


@dataclass
class Media:
    """The images of one prompt (libmtmd's chunks, which hold them ready for the projector)."""

    chunks: _native.Chunks
    spans: list[Span]

    def at(self, pos: int) -> Span | None:
        """The image whose places start at ``pos``."""
        return next((s for s in self.spans if s.start == pos), None)

    def next_start(self, pos: int, default: int) -> int:
        """Where the first image at or after ``pos`` starts (``default`` when none does)."""
        return next((s.start for s in self.spans if s.start >= pos), default)

    def snap(self, keep: int) -> int:
        """``keep`` moved back to the start of an image it would cut."""
        for s in self.spans:
            if s.start < keep < s.end:
                return s.start
        return keep


def places(image_id: str, n: int) -> list[int]:
    """The ``n`` token-list places of the image with hash ``image_id``: negative, never a real token."""
    base = int(image_id[:15] or "0", 16)
    return [-1 - (base + i * _MIX) % 0x7FFFFFFE for i in range(n)]


def tokenize(projector: _native.Projector, text: str, images: list[bytes], *, add_special: bool,
             max_pixels: int) -> tuple[list[int], Media]:
    """``text`` with one ``MEDIA_MARKER`` per image → the token list (text tokens and each image's places)
    and its media. Raises MediaError for an image that cannot be used (named by its position). A template
    that writes the BOS text itself gets one BOS token, not two (as the server does for text prompts)."""
    if not projector.vision:
        raise MediaError("this model's projector takes no images")
    if projector.mrope:
        raise MediaError("images for models with M-RoPE positions (the Qwen2-VL family) are not supported yet")
    bitmaps = []
    for i, data in enumerate(images):
        try:
            bm = projector.image(data)
        except MediaError as e:
            raise MediaError(f"image {i}: {e}") from None
        if max_pixels and bm.width * bm.height > max_pixels:
            raise MediaError(f"image {i} is {bm.width}x{bm.height} pixels, more than the limit of {max_pixels} "
                             "(PYOLLAMA_MAX_IMAGE_PIXELS)")
        bitmaps.append(bm)
    chunks = projector.tokenize(text, bitmaps, add_special=add_special, parse_special=True)
    tokens: list[int] = []
    spans: list[Span] = []
    for i, kind in enumerate(chunks.kinds()):
        if kind == "text":
            tokens += chunks.text_tokens(i)
            continue
        if kind != "image":
            raise MediaError(f"{kind} input is not supported")
        n, _, image_id = chunks.media(i)
        spans.append(Span(len(tokens), n, i, image_id))
        tokens += places(image_id, n)
    bos = projector.model.vocab.bos
    if add_special and len(tokens) >= 2 and tokens[0] == tokens[1] == bos and bos >= 0 and \
            (not spans or spans[0].start >= 2):
        tokens = tokens[1:]
        spans = [Span(sp.start - 1, sp.n, sp.chunk, sp.id) for sp in spans]
    if spans and spans[-1].end == len(tokens):
        raise InvalidRequest("the prompt ends with an image: text must follow it for the model to answer")
    return tokens, Media(chunks, spans)


def _bmp(width: int, height: int) -> bytes:
    """A grey 24-bit BMP image (a probe libmtmd decodes without an imaging library)."""
    row = (width * 3 + 3) & ~3
    size = 54 + row * height
    head = b"BM" + size.to_bytes(4, "little") + bytes(4) + (54).to_bytes(4, "little")
    info = (40).to_bytes(4, "little") + width.to_bytes(4, "little") + height.to_bytes(4, "little") + \
        (1).to_bytes(2, "little") + (24).to_bytes(2, "little") + bytes(24)
    return head + info + b"\x80" * (row * height)


class EmbeddingCache:
    """Encoded images by hash, least recently used first out, within a byte budget."""

    def __init__(self, budget: int):
        self.budget = budget
        self.used = 0
        self._items: collections.OrderedDict[str, np.ndarray] = collections.OrderedDict()
        self.hits = self.misses = 0

    def get(self, image_id: str) -> np.ndarray | None:
        e = self._items.get(image_id)
        if e is None:
            self.misses += 1
            return None
        self._items.move_to_end(image_id)
        self.hits += 1
        return e

    def put(self, image_id: str, embd: np.ndarray) -> None:
        if not image_id or embd.nbytes > self.budget or image_id in self._items:
            return
        self._items[image_id] = embd
        self.used += embd.nbytes
        while self.used > self.budget:
            _, old = self._items.popitem(last=False)
            self.used -= old.nbytes

    def stats(self) -> dict:
        return {"images": len(self._items), "bytes": self.used, "hits": self.hits, "misses": self.misses}


class Vision:
    """A runner's projector and its cache of encoded images; evaluates one image of a sequence."""

    CACHE_BYTES = 64 << 20      # ~20 images of a 7B model (576 × 4096 floats), hundreds of small ones

    def __init__(self, projector: _native.Projector, *, max_pixels: int):
        self.projector = projector
        self.max_pixels = max_pixels
        self.cache = EmbeddingCache(self.CACHE_BYTES)
        self.image_tokens = self._typical_tokens()

    def tokenize(self, text: str, images: list[bytes], add_special: bool) -> tuple[list[int], Media]:
        return tokenize(self.projector, text, images, add_special=add_special, max_pixels=self.max_pixels)

    def _typical_tokens(self) -> int:
        """The places a 768x768 image takes (fixed for most projectors; those that tile or keep the
        resolution take more for larger images): what the server counts per image when it fits a prompt."""
        probe = self.projector.image(_bmp(768, 768))
        return self.projector.tokenize(_native.MEDIA_MARKER, [probe], add_special=False).n_tokens

    def eval(self, ctx: _native.Context, media: Media, span: Span, n_past: int, seq_id: int, n_batch: int) -> int:
        """Encode (or take from the cache) and decode one image at ``n_past``; returns the new n_past."""
        embd = self.cache.get(span.id)
        if embd is None:
            embd = self.projector.encode(media.chunks, span.chunk)
            self.cache.put(span.id, embd)
        return self.projector.decode(ctx, media.chunks, span.chunk, embd, n_past, seq_id, n_batch)

    def close(self) -> None:
        self.projector.close()
