"""Images in a turn, as Ollama places them: each image of a message is marked ``[img-N]`` in its content
(replacing a ``[img]`` the user wrote, else in front of the text), the template renders the marks with the
text, and the runner gets the prompt with libmtmd's media marker where each mark was and the images in
that order.

Marks are numbered over the whole request, so a prompt fitted by dropping old messages still names its
images unambiguously (the numbers never reach the model: each mark becomes the image itself). Counting a
prompt's tokens splits it at the marks exactly as libmtmd does, so the server's count of the text is the
runner's, and each image counts as the places the loaded projector gives it.

Thread-safety: pure functions.
"""
from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pyollama import _native
from pyollama.errors import InvalidRequest

_TAG = re.compile(r"\[img-(\d+)\]")


def count(messages: list[dict[str, Any]], extra: Sequence[bytes] = ()) -> int:
    return sum(len(m.get("images") or ()) for m in messages) + len(extra)


def check_limit(n: int, limit: int) -> None:
    if n > limit:
        raise InvalidRequest(f"too many images: {n} in this request, the limit is {limit} (PYOLLAMA_MAX_IMAGES)")


def tag_messages(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[bytes]]:
    """Messages with their images marked in their content (Ollama's chatPrompt), and every image in mark
    order."""
    images: list[bytes] = []
    out = []
    for m in messages:
        imgs = m.get("images") or []
        if not imgs:
            out.append(m)
            continue
        content, prefix = m.get("content") or "", ""
        for data in imgs:
            tag = f"[img-{len(images)}]"
            images.append(data)
            if "[img]" in content:
                content = content.replace("[img]", tag, 1)
            else:
                prefix += tag
        out.append({**m, "content": prefix + content})
    return out, images


def tag_prompt(prompt: str, images: list[bytes]) -> str:
    """A raw prompt's images: those it does not mark itself go in front of it."""
    marked = {int(x) for x in _TAG.findall(prompt)}
    return "".join(f"[img-{i}]" for i in range(len(images)) if i not in marked) + prompt


def split(text: str, n_images: int) -> list[str | int]:
    """``text`` as text pieces and image numbers (marks of images that exist; any other mark is text)."""
    out: list[str | int] = []
    pos = 0
    for m in _TAG.finditer(text):
        i = int(m.group(1))
        if i >= n_images:
            continue
        out.append(text[pos:m.start()])
        out.append(i)
        pos = m.end()
    out.append(text[pos:])
    return out


def for_runner(text: str, images: list[bytes]) -> tuple[str, list[bytes]]:
    """The prompt with a media marker per mark, and the images in the order of the marks."""
    parts = split(text, len(images))
    return ("".join(_native.MEDIA_MARKER if isinstance(p, int) else p for p in parts),
            [images[p] for p in parts if isinstance(p, int)])


async def layout(text: str, n_images: int, image_tokens: int, add_special: bool,
                 tokenize: Callable[[str, bool], Awaitable[list[int]]]) -> list[int]:
    """The prompt's tokens as the runner will place them: its text pieces tokenized one by one (special
    tokens added to the first only), and ``image_tokens`` places (-1) for each image."""
    out: list[int] = []
    first = True
    for p in split(text, n_images):
        if isinstance(p, int):
            out += [-1] * image_tokens
        elif p or first:
            out += await tokenize(p, add_special and first)
        first = False
    return out
