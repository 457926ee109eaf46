# Memory planning with upstream's own numbers (csrc/shim/memplan.cpp): what a load would allocate
# per device (a no_alloc load), upstream's planner (common_fit_params, llama-server's --fit), and
# what a live context did allocate. Policy (which KV type, what to evict) is pyollama.scheduler's.

cdef extern from "shim/memplan.h" nogil:
    ctypedef struct pyollama_device_usage:
        ggml_backend_dev_t dev
        int64_t total
        int64_t free
        size_t model
        size_t context
        size_t compute
    int pyollama_device_memory(const char * path, const llama_model_params * mparams,
                               const llama_context_params * cparams, pyollama_device_usage * out, int cap,
                               uint32_t * n_layer, uint32_t * n_ctx_train, char * err, size_t err_len)
    int pyollama_context_memory(const llama_context * ctx, pyollama_device_usage * out, int cap)
    int pyollama_fit_params(const char * path, llama_model_params * mparams, llama_context_params * cparams,
                            float * tensor_split, llama_model_tensor_buft_override * overrides,
                            size_t * margins, uint32_t n_ctx_min, int log_level)
    size_t pyollama_max_devices()
    size_t pyollama_max_overrides()

DEF _MAX_USAGE = 64
_FIT_STATUS = {0: "fit", 1: "no_fit", 2: "error"}


cdef list _usage_list(pyollama_device_usage * u, int n):
    cdef ggml_backend_dev_props props
    out = []
    for i in range(n):
        if u[i].dev == NULL:
            name, kind = "host", "host"
        else:
            ggml_backend_dev_get_props(u[i].dev, &props)
            name = _s(props.name)
            kind = _DEVICE_TYPES.get(props.type, "unknown")
        out.append({"device": name, "type": kind, "total": u[i].total, "free": u[i].free,
                    "model": u[i].model, "context": u[i].context, "compute": u[i].compute})
    return out


def context_memory(Context ctx not None):
    """What ``ctx`` and its model allocated per device (see Context.allocated), with each device's
    free/total memory read now."""
    cdef pyollama_device_usage u[_MAX_USAGE]
    cdef int n
    cdef llama_context * c = ctx._c()
    with nogil:
        n = pyollama_context_memory(c, u, _MAX_USAGE)
    cdef size_t free_b = 0, total_b = 0
    cdef ggml_backend_dev_t dev
    out = _usage_list(u, n)
    for i in range(n):
        if u[i].dev != NULL:
            dev = u[i].dev
            with nogil:
                ggml_backend_dev_memory(dev, &free_b, &total_b)
            out[i]["free"], out[i]["total"] = free_b, total_b
    return out


cdef class _Params:
    """llama_model_params + llama_context_params for a planning call, and the buffers they point to."""
    cdef llama_model_params mp
    cdef llama_context_params cp
    cdef float * split
    cdef ggml_backend_dev_t * devs
    cdef bytes path

    def __cinit__(self):
        self.split = NULL
        self.devs = NULL

    def __dealloc__(self):
        free(self.split)
        free(self.devs)

    def __init__(self, path, dict opts):
        path = os.fspath(path)
        _check_gguf_file(path)
        self.path = path.encode()
        unknown = set(opts) - _PLAN_OPTIONS
        if unknown:
            raise TypeError(f"unknown planning option(s): {', '.join(sorted(unknown))}")
        o = {**_PLAN_DEFAULTS, **opts}
        self.mp = llama_model_default_params()
        if o["n_gpu_layers"] is not None:
            self.mp.n_gpu_layers = o["n_gpu_layers"]
        self.mp.main_gpu = o["main_gpu"]
        if o["split_mode"] not in _SPLIT_MODES:
            raise ValueError(f"split_mode must be one of {sorted(_SPLIT_MODES)}, not {o['split_mode']!r}")
        self.mp.split_mode = _SPLIT_MODES[o["split_mode"]]
        self.split = <float *> calloc(pyollama_max_devices(), sizeof(float))
        if o["tensor_split"] is not None:
            vals = list(o["tensor_split"])
            if len(vals) > <int> pyollama_max_devices():
                raise ValueError(f"tensor_split has more than {pyollama_max_devices()} entries")
            for i, v in enumerate(vals):
                self.split[i] = v
            self.mp.tensor_split = self.split
        if o["devices"] is not None:
            self.devs = _device_list(o["devices"])
            self.mp.devices = self.devs
        self.cp = llama_context_default_params()
        for key in ("type_k", "type_v"):
            if o[key] not in _KV_TYPES:
                raise ValueError(f"{key} must be one of {sorted(_KV_TYPES)}, not {o[key]!r}")
        if not 1 <= o["n_seq_max"] <= _MAX_SEQ:
            raise ValueError(f"n_seq_max must be between 1 and {_MAX_SEQ}, not {o['n_seq_max']}")
        self.cp.n_ctx = o["n_ctx"]
        self.cp.n_seq_max = o["n_seq_max"]
        self.cp.n_batch = o["n_batch"]
        self.cp.n_ubatch = min(o["n_ubatch"], o["n_batch"])
        self.cp.type_k = _KV_TYPES[o["type_k"]]
        self.cp.type_v = _KV_TYPES[o["type_v"]]
        self.cp.flash_attn_type = _flash_attn(o["flash_attn"], ValueError)
        self.cp.kv_unified = o["kv_unified"]
        self.cp.embeddings = o["embeddings"]


_PLAN_DEFAULTS = {"n_gpu_layers": None, "main_gpu": 0, "split_mode": "layer", "tensor_split": None,
                  "devices": None, "n_ctx": 4096, "n_seq_max": 1, "n_batch": 512, "n_ubatch": 512,
                  "type_k": "f16", "type_v": "f16", "flash_attn": "auto", "kv_unified": False,
                  "embeddings": False}
_PLAN_OPTIONS = frozenset(_PLAN_DEFAULTS)


def device_memory(path, **opts):
    """What loading ``path`` with these model/context options would allocate on each device, measured
    by upstream (a no_alloc load: the header is read, nothing is allocated).

    Options: n_gpu_layers (None = libllama's default, all), main_gpu, split_mode, tensor_split,
    devices, n_ctx (total cells), n_seq_max, n_batch, n_ubatch, type_k, type_v, flash_attn,
    kv_unified, embeddings. Returns {"devices": [{device, type, total, free, model, context,
    compute}, ...] (the model's devices, then "host"), "n_layer", "n_ctx_train"}."""
    cdef _Params p = _Params(path, opts)
    cdef pyollama_device_usage u[_MAX_USAGE]
    cdef uint32_t n_layer = 0, n_ctx_train = 0
    cdef char err[512]
    cdef const char * cpath = p.path
    cdef int n
    err[0] = 0
    with nogil:
        n = pyollama_device_memory(cpath, &p.mp, &p.cp, u, _MAX_USAGE, &n_layer, &n_ctx_train, err, sizeof(err))
    if n < 0:
        why = _take_last_error() or err.decode("utf-8", "replace")
        raise ModelLoadError(f"cannot measure the memory of {path}: {why}")
    return {"devices": _usage_list(u, n), "n_layer": n_layer, "n_ctx_train": n_ctx_train}


cdef class Fit:
    """Upstream's placement for one model + context on the free memory of this process's devices:
    ``n_gpu_layers``, ``tensor_split`` and the tensor buffer overrides it chose. Pass it to
    ``Model(path, fit=...)`` to load exactly that way. ``status`` is "fit", "no_fit" (the closest
    it got does not fit; loading it may fail) or "error"."""

    def __cinit__(self):
        self._split = NULL
        self._overrides = NULL

    def __dealloc__(self):
        free(self._split)
        free(self._overrides)

    def __repr__(self):
        return (f"Fit(status={self.status!r}, n_gpu_layers={self.n_gpu_layers}, "
                f"tensor_split={self.tensor_split}, n_overrides={self.n_overrides})")


def fit_params(path, margins=0, *, int n_ctx_min=0, **opts):
    """Run upstream's planner (common_fit_params: what ``llama-server --fit on`` does) for ``path``
    with these options (see :func:`device_memory`): it lowers n_gpu_layers and sets tensor_split
    and overrides so every device keeps ``margins`` bytes free (an int for all devices, or a list
    in device order). Options given explicitly (n_gpu_layers, tensor_split) are left as they are.
    Not thread-safe (upstream swaps the global logger while it measures)."""
    cdef _Params p = _Params(path, opts)
    cdef size_t nd = pyollama_max_devices()
    cdef size_t no = pyollama_max_overrides()
    cdef Fit f = Fit.__new__(Fit)
    f._split = <float *> calloc(nd, sizeof(float))
    f._overrides = <llama_model_tensor_buft_override *> calloc(no, sizeof(llama_model_tensor_buft_override))
    cdef size_t * m = <size_t *> calloc(nd, sizeof(size_t))
    cdef const char * cpath = p.path
    cdef int status = 0
    if f._split == NULL or f._overrides == NULL or m == NULL:
        free(m)
        raise MemoryError()
    try:
        vals = [margins] * nd if isinstance(margins, int) else list(margins)
        if len(vals) > <int> nd:
            raise ValueError(f"margins has more than {nd} entries")
        for i, v in enumerate(vals):
            if v < 0:
                raise ValueError(f"margins must not be negative, not {v}")
            m[i] = v
        if p.mp.tensor_split != NULL:
            memcpy(f._split, p.mp.tensor_split, nd * sizeof(float))
        with nogil:
            status = pyollama_fit_params(cpath, &p.mp, &p.cp, f._split, f._overrides, m, n_ctx_min,
                                         GGML_LOG_LEVEL_ERROR)
    finally:
        free(m)
    f.status = _FIT_STATUS.get(status, "error")
    f.n_gpu_layers = p.mp.n_gpu_layers
    f.n_ctx = p.cp.n_ctx
    if p.mp.tensor_split != f._split:       # the planner left the split alone
        memset(f._split, 0, nd * sizeof(float))
    f.tensor_split = [f._split[i] for i in range(nd)]
    while f.tensor_split and f.tensor_split[len(f.tensor_split) - 1] == 0:
        f.tensor_split.pop()
    n = 0
    if p.mp.tensor_buft_overrides == f._overrides:
        while n < <int> no and f._overrides[n].pattern != NULL:
            n += 1
    f.n_overrides = n
    return f
