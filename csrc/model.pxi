# Model: owns one llama_model*. LoraAdapter: owns one llama_adapter_lora* and keeps its Model alive.


from ggml cimport ggml_backend_dev_by_name

from pyollama.errors import ModelLoadError

_SPLIT_MODES = {"none": LLAMA_SPLIT_MODE_NONE, "layer": LLAMA_SPLIT_MODE_LAYER,
                "row": LLAMA_SPLIT_MODE_ROW, "tensor": LLAMA_SPLIT_MODE_TENSOR}


cdef cbool _progress_trampoline(float progress, void * user_data) noexcept with gil:
    cdef Model model = <Model> user_data
    try:
        return model._progress(progress) is not False
    except BaseException as e:   # never unwind through libllama: stop the load, re-raise later
        model._progress_error = e
        return False


def _check_gguf_file(path):
    """Clear errors for the usual mistakes before libllama sees the file."""
    if not os.path.exists(path):
        raise ModelLoadError(f"model file not found: {path}")
    if os.path.isdir(path):
        raise ModelLoadError(f"model path is a directory, not a GGUF file: {path}")
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise ModelLoadError(f"cannot read model file {path}: {e.strerror}") from e
    if magic != b"GGUF":
        shown = "empty file" if not magic else f"starts with {magic!r}"
        raise ModelLoadError(f"not a GGUF file ({shown}): {path}")


cdef class Model:
    """A GGUF model loaded by libllama.

    Model(path, *, n_gpu_layers=-1, use_mmap=True, use_mlock=False, vocab_only=False,
          progress=None, main_gpu=0, split_mode="layer", tensor_split=None, devices=None,
          check_tensors=False, kv_overrides=None)

    `progress(fraction) -> bool | None` is called during the load; returning False (or raising)
    aborts it. `kv_overrides` maps GGUF keys to int/float/bool/str values. `fit` (from
    `fit_params`) loads with upstream's placement; it overrides n_gpu_layers and tensor_split.
    Thread-safety: read-only after construction; usable from any thread.
    """

    def __cinit__(self):
        self.ptr = NULL
        self._children = 0

    def __init__(self, path, *, int n_gpu_layers=-1, bint use_mmap=True, bint use_mlock=False,
                 bint vocab_only=False, progress=None, int main_gpu=0, str split_mode="layer",
                 tensor_split=None, devices=None, bint check_tensors=False, kv_overrides=None, Fit fit=None):
        path = os.fspath(path)
        _check_gguf_file(path)
        if split_mode not in _SPLIT_MODES:
            raise ValueError(f"split_mode must be one of {sorted(_SPLIT_MODES)}, not {split_mode!r}")
        self.path = path
        self.vocab_only = vocab_only
        cdef llama_model_params p = llama_model_default_params()
        p.n_gpu_layers = n_gpu_layers
        p.main_gpu = main_gpu
        p.split_mode = _SPLIT_MODES[split_mode]
        p.vocab_only = vocab_only
        p.check_tensors = check_tensors
        if use_mmap and use_mlock:
            p.load_mode = LLAMA_LOAD_MODE_MMAP_MLOCK
        elif use_mmap:
            p.load_mode = LLAMA_LOAD_MODE_MMAP
        elif use_mlock:
            p.load_mode = LLAMA_LOAD_MODE_MLOCK
        else:
            p.load_mode = LLAMA_LOAD_MODE_NONE
        cdef float * split = NULL
        cdef ggml_backend_dev_t * devs = NULL
        cdef llama_model_kv_override * kvo = NULL
        cdef bytes bpath = path.encode()
        cdef const char * cpath = bpath
        cdef llama_model * m = NULL
        try:
            if tensor_split is not None:
                split = <float *> calloc(llama_max_devices(), sizeof(float))
                for i, v in enumerate(tensor_split):
                    if i >= <int> llama_max_devices():
                        raise ValueError(f"tensor_split has more than {llama_max_devices()} entries")
                    split[i] = v
                p.tensor_split = split
            if devices is not None:
                devs = _device_list(devices)
                p.devices = devs
            if kv_overrides:
                kvo = _kv_override_array(kv_overrides)
                p.kv_overrides = kvo
            if fit is not None:
                # Upstream's placement (fit_params); its buffers live as long as this Model.
                p.n_gpu_layers = fit.n_gpu_layers
                if fit.tensor_split:
                    p.tensor_split = fit._split
                if fit.n_overrides:
                    p.tensor_buft_overrides = fit._overrides
                self._fit = fit
            if progress is not None:
                self._progress = progress
                p.progress_callback = _progress_trampoline
                p.progress_callback_user_data = <void *> self
            _take_last_error()
            with nogil:
                m = llama_model_load_from_file(cpath, p)
        finally:
            free(split)
            free(devs)
            free(kvo)
            self._progress = None
        if self._progress_error is not None:
            err, self._progress_error = self._progress_error, None
            if m != NULL:
                llama_model_free(m)
            raise err
        if m == NULL:
            why = _take_last_error()
            if progress is not None and not why:
                why = "loading was cancelled by the progress callback"
            raise ModelLoadError(f"failed to load model from {path}" + (f": {why}" if why else ""))
        self.ptr = m

    def __dealloc__(self):
        cdef llama_model * m = self.ptr
        if m != NULL:
            with nogil:
                llama_model_free(m)
            self.ptr = NULL

    cdef llama_model * _p(self) except NULL:
        if self.ptr == NULL:
            raise ValueError("model is closed")
        return self.ptr

    def close(self):
        """Free the weights now. Refused while contexts or adapters made from it are open."""
        if self._children:
            raise ValueError(f"model still has {self._children} open context(s)/adapter(s); close them first")
        if self.ptr != NULL:
            with nogil:
                llama_model_free(self.ptr)
            self.ptr = NULL

    @property
    def closed(self):
        return self.ptr == NULL

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        if self.ptr == NULL:
            return f"<Model {self.path!r} closed>"
        return f"<Model {self.desc!r} from {self.path!r}>"

    @property
    def vocab(self):
        return Vocab._of(self)

    # --- metadata -------------------------------------------------------------------------------
    @property
    def metadata(self):
        """Every GGUF key/value as libllama renders it (arrays are summarized by libllama)."""
        if self._meta is None:
            self._meta = _read_meta(self._p())
        return dict(self._meta)

    def meta(self, str key, default=None):
        if self._meta is None:
            self._meta = _read_meta(self._p())
        return self._meta.get(key, default)

    @property
    def arch(self):
        return self.meta("general.architecture", "")

    @property
    def desc(self):
        cdef char buf[256]
        llama_model_desc(self._p(), buf, sizeof(buf))
        return _s(buf)

    @property
    def ftype(self):
        """Quantization name (e.g. 'Q4_1', 'Q4_K - Medium')."""
        return _s(llama_ftype_name(llama_model_ftype(self._p())))

    def chat_template(self, str name=None):
        """The GGUF's Jinja chat template (`tokenizer.chat_template[.name]`), or None."""
        cdef bytes bname = name.encode() if name else b""
        cdef const char * cname = NULL
        if name:
            cname = bname
        cdef const char * t = llama_model_chat_template(self._p(), cname)
        return _s(t) if t != NULL else None

    @property
    def n_params(self):
        return llama_model_n_params(self._p())

    @property
    def size(self):
        """Bytes of tensor data."""
        return llama_model_size(self._p())

    @property
    def n_ctx_train(self):
        return llama_model_n_ctx_train(self._p())

    @property
    def n_embd(self):
        return llama_model_n_embd(self._p())

    @property
    def n_embd_out(self):
        return llama_model_n_embd_out(self._p())

    @property
    def n_layer(self):
        return llama_model_n_layer(self._p())

    @property
    def n_head(self):
        return llama_model_n_head(self._p())

    @property
    def n_head_kv(self):
        return llama_model_n_head_kv(self._p())

    @property
    def n_swa(self):
        return llama_model_n_swa(self._p())

    @property
    def n_vocab(self):
        return llama_vocab_n_tokens(llama_model_get_vocab(self._p()))

    @property
    def n_cls_out(self):
        return llama_model_n_cls_out(self._p())

    def cls_label(self, uint32_t i):
        cdef const char * s = llama_model_cls_label(self._p(), i)
        return _s(s) if s != NULL else None

    @property
    def has_encoder(self):
        return bool(llama_model_has_encoder(self._p()))

    @property
    def has_decoder(self):
        return bool(llama_model_has_decoder(self._p()))

    @property
    def decoder_start_token(self):
        return llama_model_decoder_start_token(self._p())

    @property
    def is_recurrent(self):
        return bool(llama_model_is_recurrent(self._p()))

    @property
    def is_hybrid(self):
        return bool(llama_model_is_hybrid(self._p()))

    @property
    def is_diffusion(self):
        return bool(llama_model_is_diffusion(self._p()))

    @property
    def rope_type(self):
        return <int> llama_model_rope_type(self._p())

    def save(self, path):
        """Write the model (as loaded, overrides applied) to a new GGUF file."""
        cdef bytes bpath = os.fspath(path).encode()
        cdef const char * cpath = bpath
        cdef llama_model * m = self._p()
        with nogil:
            llama_model_save_to_file(m, cpath)


cdef dict _read_meta(llama_model * m):
    cdef int32_t n = llama_model_meta_count(m)
    cdef int32_t need
    cdef char kbuf[512]
    cdef char * vbuf = <char *> malloc(4096)
    cdef int32_t vcap = 4096
    out = {}
    try:
        for i in range(n):
            if llama_model_meta_key_by_index(m, i, kbuf, sizeof(kbuf)) < 0:
                continue
            need = llama_model_meta_val_str_by_index(m, i, vbuf, vcap)
            if need >= vcap:
                free(vbuf)
                vcap = need + 1
                vbuf = <char *> malloc(vcap)
                need = llama_model_meta_val_str_by_index(m, i, vbuf, vcap)
            if need < 0:
                continue
            out[_s(kbuf)] = (<bytes> vbuf[:need]).decode("utf-8", "replace")
    finally:
        free(vbuf)
    return out


cdef ggml_backend_dev_t * _device_list(wanted) except NULL:
    names = [d.encode() for d in wanted]
    cdef ggml_backend_dev_t * arr = <ggml_backend_dev_t *> calloc(len(names) + 1, sizeof(ggml_backend_dev_t))
    for i, name in enumerate(names):
        arr[i] = ggml_backend_dev_by_name(name)
        if arr[i] == NULL:
            free(arr)
            known = ", ".join(d["name"] for d in devices())
            raise ValueError(f"unknown device {name.decode()!r}; known: {known}")
    return arr


cdef llama_model_kv_override * _kv_override_array(dict overrides) except NULL:
    cdef llama_model_kv_override * arr = <llama_model_kv_override *> calloc(
        len(overrides) + 1, sizeof(llama_model_kv_override))
    cdef bytes k, sv
    try:
        for i, (key, value) in enumerate(overrides.items()):
            k = str(key).encode()
            if len(k) >= 128:
                raise ValueError(f"kv_overrides key too long (max 127 bytes): {key!r}")
            strncpy(arr[i].key, k, 127)
            if isinstance(value, bool):
                arr[i].tag = LLAMA_KV_OVERRIDE_TYPE_BOOL
                arr[i].val_bool = value
            elif isinstance(value, int):
                arr[i].tag = LLAMA_KV_OVERRIDE_TYPE_INT
                arr[i].val_i64 = value
            elif isinstance(value, float):
                arr[i].tag = LLAMA_KV_OVERRIDE_TYPE_FLOAT
                arr[i].val_f64 = value
            elif isinstance(value, str):
                sv = value.encode()
                if len(sv) >= 128:
                    raise ValueError(f"kv_overrides value for {key!r} too long (max 127 bytes)")
                arr[i].tag = LLAMA_KV_OVERRIDE_TYPE_STR
                strncpy(arr[i].val_str, sv, 127)
            else:
                raise TypeError(f"kv_overrides[{key!r}] must be bool, int, float or str, not {type(value).__name__}")
    except BaseException:
        free(arr)
        raise
    return arr


cdef class LoraAdapter:
    """A LoRA adapter GGUF loaded for a model; set it on contexts with Context.set_adapters()."""

    def __cinit__(self):
        self.ptr = NULL

    def __init__(self, Model model, path):
        path = os.fspath(path)
        _check_gguf_file(path)
        cdef bytes bpath = path.encode()
        cdef const char * cpath = bpath
        cdef llama_model * m = model._p()
        cdef llama_adapter_lora * a
        _take_last_error()
        with nogil:
            a = llama_adapter_lora_init(m, cpath)
        if a == NULL:
            why = _take_last_error()
            raise ModelLoadError(f"failed to load LoRA adapter {path}" + (f": {why}" if why else ""))
        self.ptr = a
        self.model = model
        self.path = path
        model._children += 1

    def __dealloc__(self):
        self._free()

    cdef _free(self):
        if self.ptr != NULL:
            if self.model.ptr != NULL:
                llama_adapter_lora_free(self.ptr)
            self.ptr = NULL
            self.model._children -= 1

    def close(self):
        self._free()

    @property
    def metadata(self):
        cdef char kbuf[512]
        cdef char vbuf[4096]
        out = {}
        if self.ptr == NULL:
            return out
        for i in range(llama_adapter_meta_count(self.ptr)):
            if llama_adapter_meta_key_by_index(self.ptr, i, kbuf, sizeof(kbuf)) >= 0 and \
               llama_adapter_meta_val_str_by_index(self.ptr, i, vbuf, sizeof(vbuf)) >= 0:
                out[_s(kbuf)] = _s(vbuf)
        return out
