"""Model names: ``[scheme://][host/][namespace/]model[:tag][@digest]``, with Ollama's defaults and part rules.

Rules follow Ollama's ``types/model/name.go`` (docs/contract.md §10.1):

========== ======= ==================================================
part       length  characters
========== ======= ==================================================
host       1–350   alnum or ``_`` first, then alnum ``_ - . :``
namespace  1–80    alnum or ``_`` first, then alnum ``_ -`` (no dots)
model      1–80    alnum or ``_`` first, then alnum ``_ - .``
tag        1–80    alnum or ``_`` first, then alnum ``_ - .``
========== ======= ==================================================

Parts are ASCII only, so a valid name can never contain ``/``, ``\\``, NUL or start with ``.``: nothing built
from it can leave the manifests directory. Every failure raises :class:`~pyollama.errors.InvalidModelName`
with Ollama's message ``invalid model name``.

Thread-safety: everything here is pure and may be called from any thread.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from pyollama.errors import InvalidModelName

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"

INVALID_NAME = "invalid model name"

_FIRST = r"[A-Za-z0-9_]"
_HOST_RE = re.compile(_FIRST + r"[A-Za-z0-9_.:-]{0,349}")
_NS_RE = re.compile(_FIRST + r"[A-Za-z0-9_-]{0,79}")
_MODEL_RE = re.compile(_FIRST + r"[A-Za-z0-9_.-]{0,79}")
_TAG_RE = _MODEL_RE
# Digests in names use either separator (Ollama writes blob files with "-", references with ":").
DIGEST_RE = re.compile(r"sha256[:-]([0-9a-fA-F]{64})")


@dataclass(frozen=True)
class ModelName:
    """A fully qualified model name. Build one with :meth:`parse`; the constructor does not validate."""

    host: str
    namespace: str
    model: str
    tag: str
    digest: str | None = None   # "sha256:<64 lowercase hex>" when the name pinned one
    scheme: str = "https"       # "http" when the name was written as http://host/...

    # -- construction -----------------------------------------------------------------------------
    @classmethod
    def parse(cls, s: str) -> ModelName:
        """Parse and fill defaults. Raises ``InvalidModelName`` for anything that is not a valid name."""
        if not isinstance(s, str) or not s or "\x00" in s or len(s) > 1024:
            raise InvalidModelName(INVALID_NAME)
        scheme = "https"
        if "://" in s:
            scheme, _, s = s.partition("://")
            if scheme not in ("http", "https") or s.count("/") != 2:
                # a scheme only makes sense in front of an explicit host
                raise InvalidModelName(INVALID_NAME)
        digest = None
        if "@" in s:
            s, _, raw = s.rpartition("@")
            m = DIGEST_RE.fullmatch(raw)
            if not m or not s:
                raise InvalidModelName(INVALID_NAME)
            digest = "sha256:" + m.group(1).lower()
        tag = ""
        # ":" may appear in the host (a port), so only a colon after the last "/" starts the tag.
        if s.rfind(":") > s.rfind("/"):
            s, _, tag = s.rpartition(":")
            if not tag:
                raise InvalidModelName(INVALID_NAME)
        parts = s.split("/")
        host = namespace = ""
        if len(parts) == 1:
            model = parts[0]
        elif len(parts) == 2:
            namespace, model = parts
            if not namespace:
                raise InvalidModelName(INVALID_NAME)
        elif len(parts) == 3:
            host, namespace, model = parts
            if not host or not namespace:
                raise InvalidModelName(INVALID_NAME)
        else:
            raise InvalidModelName(INVALID_NAME)
        name = cls(host or DEFAULT_HOST, namespace or DEFAULT_NAMESPACE, model, tag or DEFAULT_TAG,
                   digest, scheme)
        if not name.is_valid():
            raise InvalidModelName(INVALID_NAME)
        return name

    @classmethod
    def from_parts(cls, parts: tuple[str, str, str, str] | list[str]) -> ModelName:
        """Build from ``(host, namespace, model, tag)`` path components (a manifest path); validates."""
        if len(parts) != 4:
            raise InvalidModelName(INVALID_NAME)
        name = cls(*parts)
        if not name.is_valid():
            raise InvalidModelName(INVALID_NAME)
        return name

    # -- validity ---------------------------------------------------------------------------------
    def is_valid(self) -> bool:
        return bool(_HOST_RE.fullmatch(self.host) and _NS_RE.fullmatch(self.namespace)
                    and _MODEL_RE.fullmatch(self.model) and _TAG_RE.fullmatch(self.tag))

    # -- forms ------------------------------------------------------------------------------------
    @property
    def parts(self) -> tuple[str, str, str, str]:
        """``(host, namespace, model, tag)``: the manifest path components under ``manifests/``."""
        return (self.host, self.namespace, self.model, self.tag)

    @property
    def key(self) -> tuple[str, str, str, str]:
        """Case-folded parts: two names are the same model when their keys are equal."""
        return tuple(p.lower() for p in self.parts)  # type: ignore[return-value]

    def display(self) -> str:
        """Shortest form, as ``ollama list`` shows it: ``llama3.2:latest``, ``user/m:tag``, ``h/ns/m:tag``."""
        if self.host.lower() != DEFAULT_HOST:
            prefix = f"{self.host}/{self.namespace}/"
        elif self.namespace.lower() != DEFAULT_NAMESPACE:
            prefix = f"{self.namespace}/"
        else:
            prefix = ""
        return f"{prefix}{self.model}:{self.tag}"

    def full(self) -> str:
        """``host/namespace/model:tag`` (the form capability errors quote)."""
        return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"

    @property
    def repository(self) -> str:
        """``namespace/model``: the registry repository path (``/v2/<repository>/...``)."""
        return f"{self.namespace}/{self.model}"

    def with_parts(self, parts: tuple[str, str, str, str]) -> ModelName:
        """The same name with the casing of ``parts`` (an existing manifest's path), keeping digest/scheme."""
        return ModelName(*parts, digest=self.digest, scheme=self.scheme)

    def equal_fold(self, other: ModelName) -> bool:
        return self.key == other.key

    def __str__(self) -> str:
        return self.display()


def parse_name(s: str) -> ModelName:
    """Shorthand for :meth:`ModelName.parse`."""
    return ModelName.parse(s)


def is_valid_name(s: str) -> bool:
    try:
        ModelName.parse(s)
    except InvalidModelName:
        return False
    return True
