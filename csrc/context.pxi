# Context: owns one llama_context* and keeps its Model alive. KVCache: a view of its memory.
from pyollama.errors import (ContextError, DecodeError, NoKVSlotError, DecodeAbortedError,
                             InvalidBatchError)

_KV_TYPES = {"f32": GGML_TYPE_F32, "f16": GGML_TYPE_F16, "bf16": GGML_TYPE_BF16,
             "q8_0": GGML_TYPE_Q8_0, "q4_0": GGML_TYPE_Q4_0, "q4_1": GGML_TYPE_Q4_1,
             "iq4_nl": GGML_TYPE_IQ4_NL, "q5_0": GGML_TYPE_Q5_0, "q5_1": GGML_TYPE_Q5_1}
_FLASH_ATTN = {"auto": LLAMA_FLASH_ATTN_TYPE_AUTO, True: LLAMA_FLASH_ATTN_TYPE_ENABLED,
               False: LLAMA_FLASH_ATTN_TYPE_DISABLED, "on": LLAMA_FLASH_ATTN_TYPE_ENABLED,
               "off": LLAMA_FLASH_ATTN_TYPE_DISABLED}


cdef llama_flash_attn_type _flash_attn(value, err) except *:
    """The flash-attention setting for libllama or libmtmd; a value neither knows raises ``err``."""
    if value not in _FLASH_ATTN:
        raise err(f"flash_attn must be 'auto', 'on', 'off', True or False, not {value!r}")
    return _FLASH_ATTN[value]

_POOLING = {None: LLAMA_POOLING_TYPE_UNSPECIFIED, "none": LLAMA_POOLING_TYPE_NONE,
            "mean": LLAMA_POOLING_TYPE_MEAN, "cls": LLAMA_POOLING_TYPE_CLS,
            "last": LLAMA_POOLING_TYPE_LAST, "rank": LLAMA_POOLING_TYPE_RANK}
_POOLING_NAMES = {v: k for k, v in _POOLING.items() if k is not None}
_POOLING_NAMES[LLAMA_POOLING_TYPE_UNSPECIFIED] = "unspecified"
_ATTENTION = {None: LLAMA_ATTENTION_TYPE_UNSPECIFIED, "causal": LLAMA_ATTENTION_TYPE_CAUSAL,
              "non_causal": LLAMA_ATTENTION_TYPE_NON_CAUSAL}
# Upstream clamps n_seq_max to this; asking for more is an error here rather than a surprise.
_MAX_SEQ = 256


cdef cbool _abort_trampoline(void * data) noexcept nogil:
    return (<volatile int *> data)[0] != 0


cdef _raise_decode(int rc, str what):
    why = _take_last_error()
    tail = f": {why}" if why else ""
    if rc == 1:
        raise NoKVSlotError(f"{what}: no free KV cache slot for the batch (context full){tail}", rc)
    if rc == 2:
        raise DecodeAbortedError(f"{what} aborted", rc)
    if rc == -1:
        raise InvalidBatchError(f"{what}: invalid batch{tail}", rc)
    raise DecodeError(f"{what} failed with code {rc}{tail}", rc)


cdef class Context:
    """An inference context over a Model.

    Context(model, *, n_ctx=None, n_batch=2048, n_ubatch=512, n_seq_max=1, n_threads=None,
            n_threads_batch=None, flash_attn="auto", type_k="f16", type_v="f16", kv_unified=False,
            embeddings=False, pooling=None, attention=None, swa_full=False, offload_kqv=True,
            n_outputs_max=0, no_perf=False, rope_freq_base=0.0, rope_freq_scale=0.0)

    n_ctx=None takes the model's trained context. With n_seq_max > 1 and kv_unified=False every
    sequence gets its own n_ctx / n_seq_max cells (upstream semantics); pass n_ctx already
    multiplied by the number of slots for "full context per slot".
    One thread at a time; `abort()` may be called from any thread.
    """

    def __cinit__(self):
        self.ptr = NULL
        self._abort_flag = 0

    def __init__(self, Model model not None, *, n_ctx=None, int n_batch=2048, int n_ubatch=512,
                 int n_seq_max=1, n_threads=None, n_threads_batch=None, flash_attn="auto",
                 str type_k="f16", str type_v="f16", bint kv_unified=False, bint embeddings=False,
                 pooling=None, attention=None, bint swa_full=False, bint offload_kqv=True,
                 int n_outputs_max=0, bint no_perf=False, float rope_freq_base=0.0,
                 float rope_freq_scale=0.0):
        cdef llama_model * m = model._p()
        if model.vocab_only:
            raise ContextError("cannot create a context for a model loaded with vocab_only=True")
        if n_ctx is not None and (not isinstance(n_ctx, int) or n_ctx <= 0):
            raise ContextError(f"n_ctx must be a positive integer (or None for the model's {model.n_ctx_train}), not {n_ctx!r}")
        if n_ctx is not None and n_ctx > 0xFFFFFFFF:
            raise ContextError(f"n_ctx={n_ctx} is larger than libllama supports")
        if n_batch <= 0 or n_ubatch <= 0:
            raise ContextError(f"n_batch and n_ubatch must be positive (got {n_batch}, {n_ubatch})")
        if not 1 <= n_seq_max <= _MAX_SEQ:
            raise ContextError(f"n_seq_max must be between 1 and {_MAX_SEQ}, not {n_seq_max}")
        for name, t in (("type_k", type_k), ("type_v", type_v)):
            if t not in _KV_TYPES:
                raise ContextError(f"{name} must be one of {sorted(_KV_TYPES)}, not {t!r}")
        if pooling not in _POOLING:
            raise ContextError(f"pooling must be one of {[k for k in _POOLING if k]}, not {pooling!r}")
        if attention not in _ATTENTION:
            raise ContextError(f"attention must be 'causal' or 'non_causal', not {attention!r}")
        cdef llama_context_params p = llama_context_default_params()
        p.n_ctx = n_ctx if n_ctx is not None else 0
        p.n_batch = n_batch
        p.n_ubatch = min(n_ubatch, n_batch)
        p.n_seq_max = n_seq_max
        if n_threads is not None:
            if n_threads <= 0:
                raise ContextError(f"n_threads must be positive, not {n_threads}")
            p.n_threads = n_threads
            p.n_threads_batch = n_threads
        if n_threads_batch is not None:
            if n_threads_batch <= 0:
                raise ContextError(f"n_threads_batch must be positive, not {n_threads_batch}")
            p.n_threads_batch = n_threads_batch
        p.flash_attn_type = _flash_attn(flash_attn, ContextError)
        p.type_k = _KV_TYPES[type_k]
        p.type_v = _KV_TYPES[type_v]
        p.kv_unified = kv_unified
        p.embeddings = embeddings
        p.pooling_type = _POOLING[pooling]
        p.attention_type = _ATTENTION[attention]
        p.swa_full = swa_full
        p.offload_kqv = offload_kqv
        p.n_outputs_max = n_outputs_max
        p.no_perf = no_perf
        p.rope_freq_base = rope_freq_base
        p.rope_freq_scale = rope_freq_scale
        p.abort_callback = _abort_trampoline
        p.abort_callback_data = <void *> &self._abort_flag
        cdef llama_context * c
        _take_last_error()
        with nogil:
            c = llama_init_from_model(m, p)
        if c == NULL:
            why = _take_last_error()
            raise ContextError(f"failed to create a context (n_ctx={p.n_ctx}, n_seq_max={n_seq_max}, "
                               f"type_k={type_k})" + (f": {why}" if why else ""))
        self.ptr = c
        self.model = model
        self.n_vocab = model.n_vocab
        self.embeddings = embeddings
        self._swa_full = swa_full
        model._children += 1

    def __dealloc__(self):
        self._free()

    cdef _free(self):
        # Freeing (and clearing, below) waits on every backend: an RPC worker's thread may need the GIL
        # meanwhile, to log a lost connection before it aborts the process.
        cdef llama_context * c = self.ptr
        if c != NULL:
            with nogil:
                llama_free(c)
            self.ptr = NULL
            self.model._children -= 1

    def close(self):
        """Free the context (and its KV cache) now; idempotent."""
        self._free()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    cdef llama_context * _c(self) except NULL:
        if self.ptr == NULL:
            raise ValueError("context is closed")
        return self.ptr

    # --- sizes ----------------------------------------------------------------------------------
    @property
    def n_ctx(self): return llama_n_ctx(self._c())
    @property
    def n_ctx_seq(self): return llama_n_ctx_seq(self._c())
    @property
    def n_batch(self): return llama_n_batch(self._c())
    @property
    def n_ubatch(self): return llama_n_ubatch(self._c())
    @property
    def n_seq_max(self): return llama_n_seq_max(self._c())
    @property
    def n_threads(self): return llama_n_threads(self._c())
    @property
    def n_threads_batch(self): return llama_n_threads_batch(self._c())
    @property
    def pooling(self): return _POOLING_NAMES.get(llama_get_pooling_type(self._c()), "unknown")

    def set_threads(self, int n_threads, n_threads_batch=None):
        if n_threads <= 0:
            raise ContextError("n_threads must be positive")
        llama_set_n_threads(self._c(), n_threads, n_threads_batch or n_threads)

    def set_embeddings(self, bint on):
        llama_set_embeddings(self._c(), on)
        self.embeddings = on

    def set_causal_attn(self, bint on):
        llama_set_causal_attn(self._c(), on)

    @property
    def memory(self):
        """The KV cache (llama_memory_t) of this context."""
        return KVCache._of(self)

    def allocated(self):
        """Bytes this context and its model hold per device, as allocated (not estimated):
        [{device, type, total, free, model, context, compute}, ...], devices first, "host" last."""
        return context_memory(self)

    # --- decode / encode ------------------------------------------------------------------------
    def abort(self):
        """Ask a running decode to stop at the next graph node (any thread). Cleared by the next decode."""
        self._abort_flag = 1

    cdef int _check_batch(self, Batch batch) except -1:
        if batch.b.n_tokens <= 0:
            raise InvalidBatchError("empty batch", -1)
        if <uint32_t> batch.b.n_tokens > llama_n_batch(self.ptr):
            raise InvalidBatchError(f"batch of {batch.b.n_tokens} tokens exceeds n_batch={llama_n_batch(self.ptr)}", -1)
        if batch.embd == 0:
            for i in range(batch.b.n_tokens):
                if batch.b.token[i] < 0 or batch.b.token[i] >= self.n_vocab:
                    raise InvalidBatchError(f"token id {batch.b.token[i]} at batch index {i} is out of range "
                                            f"for a vocabulary of {self.n_vocab}", -1)
        for i in range(batch.b.n_tokens):
            for j in range(batch.b.n_seq_id[i]):
                if batch.b.seq_id[i][j] < 0 or <uint32_t> batch.b.seq_id[i][j] >= llama_n_seq_max(self.ptr):
                    raise InvalidBatchError(f"sequence id {batch.b.seq_id[i][j]} at batch index {i} is out of "
                                            f"range for n_seq_max={llama_n_seq_max(self.ptr)}", -1)
        return 0

    def decode(self, Batch batch not None):
        """Run the model over the batch (GIL released). Raises NoKVSlotError, DecodeAbortedError,
        InvalidBatchError or DecodeError by libllama's return code."""
        cdef llama_context * c = self._c()
        self._check_batch(batch)
        cdef int rc
        self._abort_flag = 0
        with nogil:
            rc = llama_decode(c, batch.b)
        self._n_outputs = batch.n_outputs
        if rc != 0:
            _raise_decode(rc, "decode")

    def encode(self, Batch batch not None):
        """Run an encoder (embedding models, T5 encoders) over the batch (GIL released)."""
        cdef llama_context * c = self._c()
        self._check_batch(batch)
        cdef int rc
        self._abort_flag = 0
        with nogil:
            rc = llama_encode(c, batch.b)
        self._n_outputs = batch.n_outputs
        if rc != 0:
            _raise_decode(rc, "encode")

    def synchronize(self):
        cdef llama_context * c = self._c()
        with nogil:
            llama_synchronize(c)

    # --- outputs (zero-copy views, valid until the next decode) ---------------------------------
    def logits(self, int i=-1):
        """Logits of batch token i (negative: from the end of the outputs) as a float32 numpy view
        of n_vocab values, without a copy. Valid until the next decode."""
        cdef llama_context * c = self._c()
        cdef float * p
        with nogil:     # waits for the decode on every backend (sampler.pxi: _NOGIL_LOGITS)
            p = llama_get_logits_ith(c, i)
        if p == NULL:
            raise IndexError(f"no logits for batch index {i} (was its output flag set?)")
        return _floats(self, p, self.n_vocab)

    def all_logits(self):
        """Logits of every output of the last batch: an (n_outputs, n_vocab) float32 view."""
        cdef llama_context * c = self._c()
        cdef float * p
        with nogil:
            p = llama_get_logits(c)
        if p == NULL or self._n_outputs == 0:
            raise IndexError("the last batch produced no logits")
        return _floats(self, p, self.n_vocab, self._n_outputs)

    def embeddings_ith(self, int i=-1):
        """Per-token embedding of batch token i (float32 view of n_embd_out values)."""
        cdef llama_context * c = self._c()
        cdef float * p
        with nogil:
            p = llama_get_embeddings_ith(c, i)
        if p == NULL:
            raise IndexError(f"no embedding for batch index {i} (embeddings off, or pooled?)")
        return _floats(self, p, self.model.n_embd_out)

    def embeddings_seq(self, int seq_id=0):
        """Pooled embedding of a sequence (float32 view; for rank pooling, n_cls_out scores)."""
        self._seq(seq_id)
        cdef llama_context * c = self._c()
        cdef float * p
        with nogil:
            p = llama_get_embeddings_seq(c, seq_id)
        if p == NULL:
            raise IndexError(f"no pooled embedding for sequence {seq_id} (pooling is '{self.pooling}')")
        n = self.model.n_cls_out if llama_get_pooling_type(self.ptr) == LLAMA_POOLING_TYPE_RANK else self.model.n_embd_out
        return _floats(self, p, n)

    # --- state ----------------------------------------------------------------------------------
    cdef int _seq(self, int seq_id) except -1:
        if not 0 <= seq_id < <int> llama_n_seq_max(self._c()):
            raise ValueError(f"sequence id {seq_id} is out of range for n_seq_max={llama_n_seq_max(self.ptr)}")
        return 0

    def seq_state_size(self, int seq_id, *, bint partial_only=False):
        """Bytes seq_state() would return (without copying anything)."""
        self._seq(seq_id)
        cdef llama_context * c = self._c()
        cdef llama_state_seq_flags fl = LLAMA_STATE_SEQ_FLAGS_PARTIAL_ONLY if partial_only else 0
        cdef size_t n
        with nogil:
            n = llama_state_seq_get_size_ext(c, seq_id, fl)
        return n

    def seq_state(self, int seq_id, *, bint partial_only=False):
        """Serialized KV/recurrent state of one sequence (bytes, written in place: one copy of the state)."""
        n = self.seq_state_size(seq_id, partial_only=partial_only)
        cdef llama_context * c = self._c()
        cdef llama_state_seq_flags fl = LLAMA_STATE_SEQ_FLAGS_PARTIAL_ONLY if partial_only else 0
        cdef bytes out = PyBytes_FromStringAndSize(NULL, n)      # not shared yet: safe to fill
        cdef uint8_t * dst = <uint8_t *> PyBytes_AS_STRING(out)
        cdef size_t got
        cdef size_t cap = n
        with nogil:
            got = llama_state_seq_get_data_ext(c, dst, cap, seq_id, fl)
        return out if got == cap else out[:got]

    def set_seq_state(self, const uint8_t[::1] data, int dest_seq_id, *, bint partial_only=False):
        """Restore a state from seq_state() into dest_seq_id; raises when libllama rejects it."""
        self._seq(dest_seq_id)
        cdef llama_context * c = self._c()
        cdef llama_state_seq_flags fl = LLAMA_STATE_SEQ_FLAGS_PARTIAL_ONLY if partial_only else 0
        cdef size_t got
        with nogil:
            got = llama_state_seq_set_data_ext(c, &data[0], data.shape[0], dest_seq_id, fl)
        if got == 0:
            raise ContextError(f"sequence state rejected: {_take_last_error() or 'incompatible or corrupt data'}")
        return got

    def save_state(self, path, tokens=()):
        """Whole-context state to a session file, with the tokens it represents."""
        cdef bytes bp = os.fspath(path).encode()
        cdef Py_ssize_t n = len(tokens)
        cdef llama_token * toks = <llama_token *> malloc((n + 1) * sizeof(llama_token))
        cdef bint ok
        cdef llama_context * c = self._c()
        cdef const char * cp = bp
        try:
            for i, t in enumerate(tokens):
                toks[i] = t
            with nogil:
                ok = llama_state_save_file(c, cp, toks, n)
        finally:
            free(toks)
        if not ok:
            raise ContextError(f"could not save state to {path}: {_take_last_error()}")

    def load_state(self, path, int max_tokens=1 << 20):
        """Load a session file; returns its tokens."""
        cdef bytes bp = os.fspath(path).encode()
        cdef llama_token * toks = <llama_token *> malloc(max_tokens * sizeof(llama_token))
        cdef size_t n = 0
        cdef bint ok
        cdef llama_context * c = self._c()
        cdef const char * cp = bp
        try:
            with nogil:
                ok = llama_state_load_file(c, cp, toks, max_tokens, &n)
            if not ok:
                raise ContextError(f"could not load state from {path}: {_take_last_error()}")
            return [toks[i] for i in range(n)]
        finally:
            free(toks)

    # --- adapters / perf ------------------------------------------------------------------------
    def set_adapters(self, adapters=()):
        """Replace the LoRA set: an iterable of LoraAdapter or (LoraAdapter, scale)."""
        items = [(a, 1.0) if isinstance(a, LoraAdapter) else tuple(a) for a in adapters]
        cdef Py_ssize_t n = len(items)
        cdef llama_adapter_lora ** arr = <llama_adapter_lora **> malloc((n + 1) * sizeof(void *))
        cdef float * scales = <float *> malloc((n + 1) * sizeof(float))
        cdef LoraAdapter ad
        cdef int32_t rc
        try:
            for i, (a, s) in enumerate(items):
                ad = a
                if ad.ptr == NULL or ad.model is not self.model:
                    raise ValueError(f"adapter {ad.path!r} is closed or belongs to another model")
                arr[i] = ad.ptr
                scales[i] = s
            rc = llama_set_adapters_lora(self._c(), arr, n, scales)
        finally:
            free(arr)
            free(scales)
        if rc != 0:
            raise ContextError(f"could not set LoRA adapters: {_take_last_error() or rc}")
        self._adapters = items

    def perf(self):
        """libllama's timing counters: prompt/eval milliseconds and token counts."""
        cdef llama_perf_context_data d = llama_perf_context(self._c())
        return {"t_load_ms": d.t_load_ms, "t_p_eval_ms": d.t_p_eval_ms, "t_eval_ms": d.t_eval_ms,
                "n_p_eval": d.n_p_eval, "n_eval": d.n_eval, "n_reused": d.n_reused}

    def reset_perf(self):
        llama_perf_context_reset(self._c())


cdef class KVCache:
    """The context's memory (KV cache / recurrent state). Positions: p0 inclusive, p1 exclusive;
    negative = open end. seq_id < 0 = every sequence. Keeps the Context alive."""

    @staticmethod
    cdef KVCache _of(Context ctx):
        cdef KVCache k = KVCache.__new__(KVCache)
        k.context = ctx
        k.mem = llama_get_memory(ctx._c())
        return k

    def __init__(self, *a, **kw):
        raise TypeError("use Context.memory")

    cdef llama_memory_t _m(self) except? NULL:
        self.context._c()
        return self.mem

    cdef int _seq(self, int seq_id, bint allow_all=False) except -1:
        # libllama asserts (aborts the process) on an out-of-range id: check here instead.
        if allow_all and seq_id < 0:
            return 0
        if not 0 <= seq_id < <int> llama_n_seq_max(self.context.ptr):
            raise ValueError(f"sequence id {seq_id} is out of range for n_seq_max={llama_n_seq_max(self.context.ptr)}")
        return 0

    def clear(self, bint data=True):
        cdef llama_memory_t m = self._m()
        with nogil:
            llama_memory_clear(m, data)

    def seq_rm(self, int seq_id, int p0=-1, int p1=-1):
        """Remove positions [p0, p1); False when the memory can't remove a partial range
        (recurrent / sliding-window caches): then re-process from scratch."""
        self._seq(seq_id, True)
        return bool(llama_memory_seq_rm(self._m(), seq_id, p0, p1))

    def seq_cp(self, int src, int dst, int p0=-1, int p1=-1):
        """Make dst share src's cells in [p0, p1) (with separate streams: a copy)."""
        self._seq(src)
        self._seq(dst)
        if self.context.model.n_swa > 0 and not self.context._swa_full:
            raise ContextError("seq_cp is not supported by sliding-window KV caches; "
                               "create the context with swa_full=True")
        llama_memory_seq_cp(self._m(), src, dst, p0, p1)

    def seq_keep(self, int seq_id):
        """Drop every other sequence's cells (within this sequence's KV stream)."""
        self._seq(seq_id)
        llama_memory_seq_keep(self._m(), seq_id)

    def seq_add(self, int seq_id, int p0, int p1, int delta):
        """Shift positions [p0, p1) by delta (context shift); needs can_shift."""
        self._seq(seq_id)
        if not llama_memory_can_shift(self._m()):
            raise ContextError("this model's memory cannot shift positions")
        llama_memory_seq_add(self.mem, seq_id, p0, p1, delta)

    def seq_div(self, int seq_id, int p0, int p1, int d):
        self._seq(seq_id)
        if d <= 0:
            raise ValueError("d must be positive")
        if not llama_memory_can_shift(self._m()):
            raise ContextError("this model's memory cannot shift positions")
        llama_memory_seq_div(self.mem, seq_id, p0, p1, d)

    def seq_pos_min(self, int seq_id):
        """Smallest position of the sequence in memory, -1 if empty."""
        self._seq(seq_id)
        return llama_memory_seq_pos_min(self._m(), seq_id)

    def seq_pos_max(self, int seq_id):
        """Largest position of the sequence in memory, -1 if empty."""
        self._seq(seq_id)
        return llama_memory_seq_pos_max(self._m(), seq_id)

    @property
    def can_shift(self):
        return bool(llama_memory_can_shift(self._m()))
