"""``create``: build a model from a GGUF file, a safetensors folder or an existing model, plus adapters,
template, system, parameters, messages and licenses — as Ollama's ``server/create.go`` does.

:func:`create` is a generator of progress dicts with Ollama's status strings (``parsing GGUF``,
``converting model``, ``quantizing F16 model to Q4_K_M``, ``using existing layer sha256:…``,
``creating new layer sha256:…``, ``writing manifest``, ``success``) for the API and CLI to stream.
Errors are raised from the iterator.

Order of work, for crash safety: everything is validated first (nothing written); then blobs are committed
under the store's shared writer lock; the manifest is written last. If anything fails (or the consumer stops
iterating) the blobs this call created and nothing references are removed again.

Template choice: when no TEMPLATE is given for an imported GGUF, no template layer is written and the
server renders the GGUF's own Jinja chat template (docs/contract.md §2.7, §8); Ollama's alternative,
matching the Jinja text against its built-in Go templates, needs a template index pyollama does not ship.

Thread-safety: may run in any thread; concurrent creates (threads or processes) are safe.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyollama.errors import ModelNotFound
from pyollama.golang import json as gojson
from pyollama.store import convert, fsutil, gguf_meta
from pyollama.store import manifest as mf
from pyollama.store import quantize as quant
from pyollama.store.blobs import BlobNotFound
from pyollama.store.model import derive_capabilities
from pyollama.store.names import ModelName
from pyollama.store.request import CreateError, CreateRequest
from pyollama.store.store import Store, noprune

log = logging.getLogger("pyollama.store")

Event = dict[str, Any]
PullFn = Callable[[ModelName], Iterable[Event]]


@dataclass
class _Layer:
    layer: mf.Layer
    info: gguf_meta.GGUFInfo | None = None     # parsed header for GGUF layers


def _media_type(info: gguf_meta.GGUFInfo) -> str:
    if info.kind == "adapter":
        return mf.MEDIA_ADAPTER
    no_text_blocks = info.arch_key("block_count") is None
    if info.kind in ("projector", "mmproj") or info.architecture == "clip" or \
            (no_text_blocks and info.arch_key("vision.block_count") is not None):
        return mf.MEDIA_PROJECTOR
    return mf.MEDIA_MODEL


def _sniff_gguf(path: Path, what: str) -> gguf_meta.GGUFInfo:
    if not path.is_file() or not gguf_meta.is_gguf(path):
        raise CreateError(f"{what} {path.name}: supplied file was not in GGUF format")
    return gguf_meta.read(path, max_array=0)


class _Creator:
    def __init__(self, store: Store, req: CreateRequest, pull: PullFn | None, nthread: int):
        self.store = store
        self.req = req
        self.pull = pull
        self.nthread = nthread
        self.created: set[str] = set()

    # -- plan: validation only, nothing written ---------------------------------------------------
    def plan(self) -> Iterator[Event]:
        req = self.req
        req.validate()
        self.name = self.store.existing_name(req.model)
        self.base_name: ModelName | None = None
        self.local_gguf: list[tuple[Path, gguf_meta.GGUFInfo]] = []
        self.local_dir: Path | None = None
        self.adapter_infos: list[tuple[Path, gguf_meta.GGUFInfo]] = []
        if req.from_path is not None:
            p = req.from_path
            if p.is_dir():
                if list(p.glob("*.safetensors")):
                    self.local_dir = p
                else:
                    ggufs = sorted(p.glob("*.gguf"))
                    if not ggufs:
                        raise CreateError(f"no safetensors or GGUF files found in {p}")
                    self.local_gguf += [(g, _sniff_gguf(g, "FROM")) for g in ggufs]
            else:
                self.local_gguf.append((p, _sniff_gguf(p, "FROM")))
        elif req.from_:
            base = ModelName.parse(req.from_)
            stored = self.store.manifests.resolve(base)
            if stored is None:
                if self.pull is None:
                    raise ModelNotFound(f"model '{base.display()}' not found")
                yield from self.pull(base)
                stored = self.store.manifests.resolve(base)
                if stored is None:
                    raise ModelNotFound(f"model '{base.display()}' not found")
            self.base_name = stored
        for p in req.extra_paths:
            self.local_gguf.append((p, _sniff_gguf(p, "FROM")))
        for p in req.adapter_paths:
            if p.suffix == ".safetensors" or p.is_dir():
                raise CreateError(f"ADAPTER {p.name}: only GGUF adapters are supported; convert it first")
            self.adapter_infos.append((p, _sniff_gguf(p, "ADAPTER")))
        # As in Ollama, `from` wins over `files` when a request has both.
        self.use_files = bool(req.files) and req.from_path is None and self.base_name is None
        used = {**(req.files if self.use_files else {}), **req.adapters, **req.draft_files}
        for digest in used.values():
            if not self.store.blobs.has(digest):
                raise BlobNotFound(f'blob "{digest}" not found (upload it with POST /api/blobs)')
        if req.draft_path is not None:
            _sniff_gguf(req.draft_path, "DRAFT")
        for _, info in self.adapter_infos:
            if info.kind != "adapter":
                raise CreateError(f"ADAPTER file is a {info.kind}, not an adapter")
        # Checks that need the base model's header, done now so a refusal writes nothing.
        base = self._planned_model_info()
        for _, info in self.adapter_infos:
            if base is not None and info.architecture and info.architecture != base.architecture:
                raise CreateError(f"adapter architecture {info.architecture} does not match the base "
                                  f"model's {base.architecture}")
        if req.quantize and base is not None and base.file_type_name != req.quantize:
            quant.check_source(base.file_type_name)
            # llama_model_quantize reads the hyperparameters in this process: refuse what it would abort on
            gguf_meta.check_loadable(base.path)
        if req.draft_quantize:
            draft = self._planned_draft_path()
            if draft is None:
                raise CreateError("draft_quantize needs a draft model (DRAFT or draft_files)")
            info = gguf_meta.read(draft, max_array=0)
            if info.file_type_name != req.draft_quantize:
                quant.check_source(info.file_type_name)
                gguf_meta.check_loadable(draft)

    def _planned_draft_path(self) -> Path | None:
        """The draft model's weights as this create will store them (given, or inherited)."""
        if self.req.draft_path is not None:
            return self.req.draft_path
        if self.req.draft_files:
            return self.store.blobs.path(next(iter(self.req.draft_files.values())))
        if self.base_name is not None:
            for layer in self.store.manifests.read(self.base_name).layers:
                if layer.media_type == mf.MEDIA_DRAFT and self.store.blobs.has(layer.digest):
                    return self.store.blobs.path(layer.digest)
        return None

    def _planned_model_info(self) -> gguf_meta.GGUFInfo | None:
        for _, info in self.local_gguf:
            if _media_type(info) == mf.MEDIA_MODEL:
                return info
        if self.base_name is not None:
            for layer in self.store.manifests.read(self.base_name).layers:
                if layer.media_type == mf.MEDIA_MODEL and self.store.blobs.has(layer.digest):
                    return gguf_meta.read(self.store.blobs.path(layer.digest), max_array=0)
        for fname, digest in (self.req.files if self.use_files else {}).items():
            if fname.endswith((".gguf", ".bin")):
                info = _sniff_gguf(self.store.blobs.path(digest), "file")
                if _media_type(info) == mf.MEDIA_MODEL:
                    return info
        return None

    # -- execute ----------------------------------------------------------------------------------
    def _put_file(self, path: Path, media_type: str) -> mf.Layer:
        blob = self.store.blobs.put_file(path)
        if blob.created:
            self.created.add(blob.digest)
        return mf.Layer(media_type, blob.digest, blob.size)

    def _put_bytes(self, data: bytes, media_type: str) -> mf.Layer:
        blob = self.store.blobs.put_bytes(data)
        if blob.created:
            self.created.add(blob.digest)
        return mf.Layer(media_type, blob.digest, blob.size)

    def _adopt(self, path: Path, media_type: str) -> mf.Layer:
        blob = self.store.blobs.adopt(path)
        if blob.created:
            self.created.add(blob.digest)
        return mf.Layer(media_type, blob.digest, blob.size)

    def _gguf_blob_layers(self, digests: Iterable[str]) -> list[_Layer]:
        out = []
        for digest in digests:
            path = self.store.blobs.path(digest)
            info = _sniff_gguf(path, "file")
            out.append(_Layer(mf.Layer(_media_type(info), digest, path.stat().st_size), info))
        return out

    def _convert(self, src_dir: Path) -> Iterator[Event]:
        yield {"status": "converting model"}
        tmp = self.store.blobs.temp_path(".gguf")
        try:
            convert.convert_bert(src_dir, tmp)
            layer = self._adopt(tmp, mf.MEDIA_MODEL)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        self.base.append(_Layer(layer, gguf_meta.read(self.store.blobs.path(layer.digest), max_array=0)))

    def _convert_files(self, files: dict[str, str]) -> Iterator[Event]:
        """API ``files``: link the uploaded blobs under their file names in a temp folder, convert."""
        work = fsutil.temp_name(self.store.root, "-convert")
        try:
            for fname, digest in files.items():
                dst = work / fname
                fsutil.makedirs(dst.parent)
                os.symlink(self.store.blobs.path(digest), dst)
            yield from self._convert(work)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _base_layers(self) -> Iterator[Event]:
        req = self.req
        self.base: list[_Layer] = []
        self.base_config: dict[str, Any] = {}
        if self.local_dir is not None:
            yield from self._convert(self.local_dir)
        for path, info in self.local_gguf:
            yield {"status": "parsing GGUF"}
            self.base.append(_Layer(self._put_file(path, _media_type(info)), info))
        if self.use_files:
            if any(f.endswith(".safetensors") for f in req.files):
                yield from self._convert_files(req.files)
            elif all(f.endswith((".gguf", ".bin")) for f in req.files):
                yield {"status": "parsing GGUF"}
                self.base += self._gguf_blob_layers(req.files.values())
            else:
                raise CreateError("unknown type: files must be GGUF (.gguf/.bin) or safetensors")
        if self.base_name is not None:
            m = self.store.manifests.read(self.base_name)
            parent = self.base_name.display()
            if m.config.digest and self.store.blobs.has(m.config.digest):
                with contextlib.suppress(ValueError):
                    self.base_config = json.loads(self.store.blobs.read_bytes(m.config.digest))
            for layer in m.layers:
                if not self.store.blobs.has(layer.digest):
                    raise BlobNotFound(f"{parent} is missing its layer {layer.digest}")
                inherited = mf.Layer(layer.media_type, layer.digest, layer.size, parent, layer.name)
                info = None
                if layer.media_type in (mf.MEDIA_MODEL, mf.MEDIA_PROJECTOR, mf.MEDIA_ADAPTER):
                    info = gguf_meta.read(self.store.blobs.path(layer.digest), max_array=0)
                self.base.append(_Layer(inherited, info))

    def _adapters_and_draft(self) -> None:
        for path, info in self.adapter_infos:
            self.base.append(_Layer(self._put_file(path, mf.MEDIA_ADAPTER), info))
        for digest in self.req.adapters.values():
            info = _sniff_gguf(self.store.blobs.path(digest), "ADAPTER")
            if info.kind != "adapter":
                raise CreateError(f"ADAPTER file is a {info.kind}, not an adapter")
            self.base.append(_Layer(mf.Layer(mf.MEDIA_ADAPTER, digest, self.store.blobs.size(digest)), info))
        model = next((x for x in self.base if x.layer.media_type == mf.MEDIA_MODEL), None)
        for x in self.base:
            if x.layer.media_type == mf.MEDIA_ADAPTER and model is not None and x.info is not None \
                    and x.info.architecture and model.info is not None \
                    and x.info.architecture != model.info.architecture:
                raise CreateError(f"adapter architecture {x.info.architecture} does not match the base "
                                  f"model's {model.info.architecture}")
        draft = None
        if self.req.draft_path is not None:
            draft = self._put_file(self.req.draft_path, mf.MEDIA_DRAFT)
        elif self.req.draft_files:
            digest = next(iter(self.req.draft_files.values()))
            draft = mf.Layer(mf.MEDIA_DRAFT, digest, self.store.blobs.size(digest))
        if draft is not None:
            self.base = [x for x in self.base if x.layer.media_type != mf.MEDIA_DRAFT]
            self.base.append(_Layer(draft))

    def _quantize(self) -> Iterator[Event]:
        """``quantize`` applies to the model's weights, ``draft_quantize`` to its draft model's."""
        for media, want, what in ((mf.MEDIA_MODEL, self.req.quantize, "model"),
                                  (mf.MEDIA_DRAFT, self.req.draft_quantize, "draft model")):
            if not want:
                continue
            for i, x in enumerate(self.base):
                if x.layer.media_type != media:
                    continue
                info = x.info or gguf_meta.read(self.store.blobs.path(x.layer.digest), max_array=0)
                have = info.file_type_name
                if have == want:
                    continue
                quant.check_source(have)
                gguf_meta.check_loadable(self.store.blobs.path(x.layer.digest))
                status = f"quantizing {have} {what} to {want}"
                total = x.layer.size
                yield {"status": status, "digest": x.layer.digest, "total": total, "completed": 0}
                tmp = self.store.blobs.temp_path(f"-{want}")
                try:
                    quant.quantize(self.store.blobs.path(x.layer.digest), tmp, want, self.nthread)
                    layer = self._adopt(tmp, media)
                finally:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(tmp)
                yield {"status": status, "digest": x.layer.digest, "total": total, "completed": total}
                self.base[i] = _Layer(layer, gguf_meta.read(self.store.blobs.path(layer.digest), max_array=0))

    def _small_layers(self, layers: list[mf.Layer]) -> list[mf.Layer]:
        req = self.req

        def replace(media: str, data: bytes) -> None:
            layers[:] = [x for x in layers if x.media_type != media and
                         not (media == mf.MEDIA_TEMPLATE and x.media_type == mf.MEDIA_PROMPT)]
            layers.append(self._put_bytes(data, media))

        if req.template:
            replace(mf.MEDIA_TEMPLATE, req.template.encode())
        if req.system:
            replace(mf.MEDIA_SYSTEM, req.system.encode())
        for lic in req.license:
            new = self._put_bytes(lic.encode(), mf.MEDIA_LICENSE)
            if not any(x.media_type == mf.MEDIA_LICENSE and x.digest == new.digest for x in layers):
                layers.append(new)
        params = dict(req.parameters)
        for x in [x for x in layers if x.media_type == mf.MEDIA_PARAMS]:
            try:
                existing = json.loads(self.store.blobs.read_bytes(x.digest))
            except ValueError:
                existing = {}
            for k, v in (existing.items() if isinstance(existing, dict) else ()):
                params.setdefault(k, v)   # the new request's values win, per key
        if params:
            replace(mf.MEDIA_PARAMS, gojson.encode(params, sort_keys=True))
        if req.messages:
            msgs = [{"role": m["role"], "content": m.get("content", ""),
                     **{k: v for k, v in m.items() if k not in ("role", "content") and v}}
                    for m in req.messages]
            replace(mf.MEDIA_MESSAGES, gojson.encode(msgs))
        return layers

    def _config(self, layers: list[mf.Layer]) -> dict[str, Any]:
        cfg: dict[str, Any] = {"model_format": "", "model_family": "", "model_families": None,
                               "model_type": "", "file_type": ""}
        families: list[str] = []
        model_info = None
        for x in self.base:
            if x.info is None or x.layer.media_type == mf.MEDIA_DRAFT:
                continue
            arch = x.info.architecture
            cfg["model_format"] = cfg["model_format"] or "gguf"
            cfg["model_family"] = cfg["model_family"] or arch
            if arch and arch not in families:
                families.append(arch)
            if x.layer.media_type == mf.MEDIA_MODEL and model_info is None:
                model_info = x.info
                cfg["model_type"] = gguf_meta.human_number(x.info.parameter_count)
                cfg["file_type"] = x.info.file_type_name
        cfg["model_families"] = families or None
        for key in ("renderer", "parser", "requires"):
            v = getattr(self.req, key) or self.base_config.get(key) or ""
            if v:
                cfg[key] = v
        template = next((self.store.blobs.read_bytes(x.digest).decode("utf-8", "replace") for x in layers
                         if x.media_type in (mf.MEDIA_TEMPLATE, mf.MEDIA_PROMPT)), None)
        is_jinja = False
        if template is None and model_info is not None:
            full = gguf_meta.read(self.store.blobs.path(
                next(x.layer.digest for x in self.base if x.info is model_info)), max_array=0, tensors=False)
            template, is_jinja = full.chat_template, True
        caps = derive_capabilities(model_info, template, is_jinja=is_jinja,
                                   projector=any(x.media_type == mf.MEDIA_PROJECTOR for x in layers))
        if caps:
            cfg["capabilities"] = caps
        if model_info is not None:
            if model_info.context_length:
                cfg["context_length"] = model_info.context_length
            if model_info.embedding_length:
                cfg["embedding_length"] = model_info.embedding_length
        cfg["architecture"] = "amd64"
        cfg["os"] = "linux"
        cfg["rootfs"] = {"type": "layers", "diff_ids": [x.digest for x in layers]}
        return cfg

    def execute(self) -> Iterator[Event]:
        existed_before = set(self.store.blobs.digests())
        old = None
        with contextlib.suppress(ModelNotFound, mf.InvalidManifest):
            old = self.store.manifests.read(self.name)
        with self.store.writing():
            yield from self._base_layers()
            self._adapters_and_draft()
            yield from self._quantize()
            if not any(x.layer.media_type == mf.MEDIA_MODEL for x in self.base):
                raise CreateError("the model has no weights (no GGUF model layer)")
            layers = self._small_layers([x.layer for x in self.base])
            cfg_layer = self._put_bytes(gojson.encode(self._config(layers)), mf.CONFIG_MEDIA_TYPE)
            for x in layers:
                verb = "using existing" if x.digest in existed_before else "creating new"
                yield {"status": f"{verb} layer {x.digest}"}
            yield {"status": "writing manifest"}
            manifest = mf.Manifest(cfg_layer, layers)
            self.store.write_manifest(self.name, manifest)
        # Blobs of a replaced model (and intermediate ones, like a quantizer's F16 input) that nothing
        # references any more are collected, as Ollama's RemoveLayers does after a create.
        leftovers = set(self.created)
        if old is not None and not noprune():
            leftovers |= old.blob_digests()
        self.store.collect(leftovers)
        self.created.clear()
        yield {"status": "success"}

    def cleanup(self) -> None:
        if self.created:
            removed = self.store.collect(self.created)
            log.info("create of %s failed; removed %d new blob(s)", self.req.model, len(removed))


def create(store: Store, request: CreateRequest, *, pull: PullFn | None = None,
           nthread: int = 0) -> Iterator[Event]:
    """Create (or replace) ``request.model``; yields progress dicts; raises on error.

    ``pull`` is called with the base model's name when ``request.from_`` names a model that is not in the
    store (the registry client plugs in here); without it a missing base raises ModelNotFound.
    """
    c = _Creator(store, request, pull, nthread)
    ok = False
    try:
        yield from c.plan()
        yield from c.execute()
        ok = True
    finally:
        if not ok:
            c.cleanup()


def create_from_modelfile(store: Store, model: str, modelfile: str | bytes, *,
                          base_dir: str | os.PathLike[str] | None = None, quantize: str = "",
                          draft_quantize: str = "", nthread: int = 0) -> Iterator[Event]:
    """Parse a Modelfile and create ``model`` from it (library / in-process CLI use)."""
    req = CreateRequest.from_modelfile(model, modelfile, base_dir=base_dir, quantize=quantize,
                                       draft_quantize=draft_quantize)
    return create(store, req, nthread=nthread)


def model_path(store: Store, name: str | ModelName) -> Path:
    """The GGUF weights file of a stored model (e.g. the converted MiniLM, for the engine's tests)."""
    m = store.manifest(name)
    for layer in m.layers:
        if layer.media_type == mf.MEDIA_MODEL:
            return store.blobs.path(layer.digest)
    raise CreateError(f"{store.parse_name(name).display()} has no model layer")
