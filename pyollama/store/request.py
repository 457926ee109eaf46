"""What to create: :class:`CreateRequest`, built from an ``/api/create`` body or from a Modelfile, and
validated completely before anything is written (so bad input leaves the store untouched).

Two kinds of sources, kept apart on purpose:

* API fields (``from_`` a model name, ``files``/``adapters`` mapping file names to blob digests that were
  uploaded with ``POST /api/blobs``) — safe to take from an HTTP client;
* library-only local paths (``from_path``, ``adapter_paths``, ...) — what a Modelfile's ``FROM ./x.gguf``
  means when pyollama runs in-process. The HTTP layer must never fill these from a request: they read
  arbitrary files of the server's machine.

Thread-safety: plain data and pure functions.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from pyollama.errors import CreateError, InvalidModelName, ModelfileError
from pyollama.store import modelfile as mfile
from pyollama.store import options as opts
from pyollama.store.blobs import InvalidDigest, normalize_digest
from pyollama.store.names import INVALID_NAME, ModelName
from pyollama.store.quantize import normalize as normalize_quant

_SEMVER_RE = re.compile(r"v?(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*)){0,2}(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?")


@dataclass
class CreateRequest:
    model: str
    from_: str = ""
    files: dict[str, str] = field(default_factory=dict)
    adapters: dict[str, str] = field(default_factory=dict)
    draft_files: dict[str, str] = field(default_factory=dict)
    template: str = ""
    system: str = ""
    license: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    quantize: str = ""
    draft_quantize: str = ""
    renderer: str = ""
    parser: str = ""
    requires: str = ""
    # library-only local sources (never from HTTP)
    from_path: Path | None = None
    extra_paths: list[Path] = field(default_factory=list)     # further FROM files (projectors)
    adapter_paths: list[Path] = field(default_factory=list)
    draft_path: Path | None = None

    # -- builders ---------------------------------------------------------------------------------
    @classmethod
    def from_api(cls, body: dict[str, Any]) -> CreateRequest:
        """From an ``/api/create`` JSON body (``model`` or legacy ``name``). Validates."""
        lic = body.get("license")
        if lic is None:
            licenses = []
        elif isinstance(lic, str):
            licenses = [lic] if lic else []
        elif isinstance(lic, list) and all(isinstance(x, str) for x in lic):
            licenses = list(lic)
        else:
            raise CreateError("license must be a string or a list of strings")

        def text(key: str) -> str:
            v = body.get(key) or ""
            if not isinstance(v, str):
                raise CreateError(f"{key} must be a string")
            return v

        def mapping(key: str) -> dict[str, str]:
            v = body.get(key) or {}
            if not isinstance(v, dict) or \
                    not all(isinstance(k, str) and isinstance(d, str) for k, d in v.items()):
                raise CreateError(f"{key} must be an object of file name to digest")
            return dict(v)

        params = body.get("parameters") or {}
        msgs = body.get("messages") or []
        if not isinstance(params, dict):
            raise CreateError("parameters must be an object")
        if not isinstance(msgs, list):
            raise CreateError("messages must be a list")
        req = cls(model=text("model") or text("name"), from_=text("from"), files=mapping("files"),
                  adapters=mapping("adapters"), draft_files=mapping("draft_files"),
                  template=text("template"), system=text("system"), license=licenses,
                  parameters=dict(params), messages=list(msgs),
                  quantize=text("quantize") or text("quantization"), draft_quantize=text("draft_quantize"),
                  renderer=text("renderer"), parser=text("parser"), requires=text("requires"))
        req.validate()
        return req

    @classmethod
    def from_modelfile(cls, model: str, modelfile: mfile.Modelfile | str | bytes, *,
                       base_dir: str | os.PathLike[str] | None = None, quantize: str = "",
                       draft_quantize: str = "") -> CreateRequest:
        """From a Modelfile, as ``ollama create -f`` does: FROM/ADAPTER/DRAFT paths are expanded
        (absolute, ``~``, or relative to ``base_dir``); a FROM that is no existing path is a model name."""
        mf = modelfile if isinstance(modelfile, mfile.Modelfile) else mfile.parse(modelfile)
        base = Path(base_dir) if base_dir is not None else Path.cwd()
        req = cls(model=model, quantize=quantize, draft_quantize=draft_quantize)
        first_from = True
        for c in mf.commands:
            if c.instruction == "FROM":
                p = expand_path(c.value, base)
                if first_from:
                    first_from = False
                    if p.exists():
                        req.from_path = p
                    else:
                        try:
                            ModelName.parse(c.value)
                        except InvalidModelName:
                            raise ModelfileError(f"(line {c.line}): FROM {c.value}: no such file or "
                                                 "directory, and not a valid model name") from None
                        req.from_ = c.value
                else:
                    req.extra_paths.append(_existing(p, c))
            elif c.instruction == "ADAPTER":
                req.adapter_paths.append(_existing(expand_path(c.value, base), c))
            elif c.instruction == "DRAFT":
                req.draft_path = _existing(expand_path(c.value, base), c)
            elif c.instruction == "TEMPLATE":
                req.template = c.value
            elif c.instruction == "SYSTEM":
                req.system = c.value
            elif c.instruction == "LICENSE":
                req.license.append(c.value)
            elif c.instruction == "RENDERER":
                req.renderer = c.value
            elif c.instruction == "PARSER":
                req.parser = c.value
            elif c.instruction == "REQUIRES":
                req.requires = c.value.removeprefix("v")
        req.parameters = mf.parameters()
        req.messages = mf.messages()
        req.validate()
        return req

    # -- validation -------------------------------------------------------------------------------
    def validate(self) -> None:
        """Check every field; normalizes digests, parameters and the quantization type in place."""
        try:
            ModelName.parse(self.model)
        except InvalidModelName:
            raise InvalidModelName(INVALID_NAME) from None
        if not (self.from_ or self.files or self.from_path):
            raise CreateError("neither 'from' or 'files' was specified")
        if self.from_ and not self.from_path:
            ModelName.parse(self.from_)
        for key in ("files", "adapters", "draft_files"):
            setattr(self, key, _check_files(getattr(self, key)))
        self.parameters = normalize_parameters(self.parameters)
        self.messages = [_check_message(m) for m in self.messages]
        if self.quantize:
            self.quantize = normalize_quant(self.quantize)
        if self.draft_quantize:
            self.draft_quantize = normalize_quant(self.draft_quantize)
        if self.requires and not _SEMVER_RE.fullmatch(self.requires):
            raise CreateError("requires must be a valid semver (e.g. 0.14.0)")


def expand_path(value: str, base: Path) -> Path:
    p = Path(os.path.expanduser(value))
    return (p if p.is_absolute() else base / p).absolute()


def _existing(p: Path, c: mfile.Command) -> Path:
    if not p.exists():
        raise ModelfileError(f"(line {c.line}): {c.instruction} {c.value}: no such file or directory")
    return p


def _check_files(files: dict[str, str]) -> dict[str, str]:
    out = {}
    for fname, digest in files.items():
        pp = PurePosixPath(fname)
        if not fname or pp.is_absolute() or ".." in pp.parts or "\\" in fname or fname.startswith("~") \
                or "\x00" in fname:
            raise CreateError("file path must be relative")
        try:
            out[fname] = normalize_digest(digest)
        except InvalidDigest:
            raise InvalidDigest("invalid digest format") from None
    return out


def normalize_parameters(params: dict[str, Any]) -> dict[str, Any]:
    """Type-check API ``parameters`` against the option table; removed legacy keys are dropped quietly."""
    out: dict[str, Any] = {}
    for k, v in params.items():
        if k in opts.REMOVED_OPTIONS:
            continue
        if k not in opts.OPTIONS:
            raise CreateError(f"unknown parameter '{k}'")
        try:
            out[k] = opts.coerce_json(k, v)
        except opts.OptionError as e:
            raise CreateError(str(e)) from None
    return out


def _check_message(m: Any) -> dict[str, Any]:
    if not isinstance(m, dict) or not isinstance(m.get("role"), str) or \
            not isinstance(m.get("content", ""), str):
        raise CreateError("each message needs a string role and content")
    role = m["role"].lower()
    if role not in mfile.ROLES:
        raise CreateError('message role must be one of "system", "user", or "assistant"')
    return {**m, "role": role, "content": m.get("content", "")}
