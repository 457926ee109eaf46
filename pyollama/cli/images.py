"""Image paths in a REPL prompt, as Ollama's REPL reads them for a vision model: every path in the text that
starts with ``/``, ``./``, ``\\`` or a drive letter and ends in .jpg, .jpeg, .png or .webp (spaces escaped
with a backslash, or the path in quotes) is read, checked to be an image, and sent with the message; the
path leaves the text.

    text, images = extract("what is in ./cat.png?")     # → "what is in ?", [b"\\x89PNG..."]

A path-like word that is no file stays in the text, with a note on stderr (it may be meant as text); a file
that cannot be read or is not an image is an ImageError, and nothing is sent.

Thread-safety: pure functions over the file system.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

MAX_BYTES = 100 << 20        # Ollama's limit for an image the REPL sends
_PATH = re.compile(r"(?:[a-zA-Z]:)?(?:\./|/|\\)[\S\\ ]+?\.(?i:jpg|jpeg|png|webp)\b")
_ESCAPES = [("\\ ", " "), ("\\(", "("), ("\\)", ")"), ("\\[", "["), ("\\]", "]"), ("\\{", "{"), ("\\}", "}"),
            ("\\$", "$"), ("\\&", "&"), ("\\;", ";"), ("\\'", "'"), ("\\\\", "\\"), ("\\*", "*"), ("\\?", "?"),
            ("%20", " ")]


class ImageError(Exception):
    """A file named in the prompt that cannot be sent as an image."""


def normalize(path: str) -> str:
    """A path as the shell would have unescaped it."""
    for a, b in _ESCAPES:
        path = path.replace(a, b)
    return path


def kind(head: bytes) -> str | None:
    """The image type a file starts with (JPEG, PNG or WebP: what Ollama's REPL accepts), else None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def read_image(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ImageError(f"{path}: {size} bytes, more than the limit of {MAX_BYTES} (100 MiB)")
        data = path.read_bytes()
    except IsADirectoryError:
        raise ImageError(f"{path} is a directory, not an image") from None
    except OSError as e:
        raise ImageError(f"cannot read {path}: {e.strerror or e}") from None
    if kind(data[:16]) is None:
        raise ImageError(f"{path} is not a JPEG, PNG or WebP image")
    return data


def extract(text: str, *, err=None) -> tuple[str, list[bytes]]:
    """The prompt without the image paths it names, and the images' bytes (in order)."""
    err = err or sys.stderr
    images: list[bytes] = []
    for raw in _PATH.findall(text):
        path = normalize(raw)
        if not Path(path).exists():
            print(f"No image at '{path}': it stays in the text", file=err, flush=True)
            continue
        images.append(read_image(Path(path)))
        print(f"Added image '{path}'", file=err, flush=True)
        for form in (f"'{path}'", f"'{raw}'", f'"{path}"', f'"{raw}"', raw):
            text = text.replace(form, "")
    return text.strip(), images
