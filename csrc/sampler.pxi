# Sampler: owns one llama_sampler* until it is handed to a SamplerChain, which then owns it.
# Also the fast selection paths (argmax, top-k) that read raw logits instead of building a
# candidate entry for every vocabulary token on each step.

from libcpp.string cimport string as cpp_string

from pyollama.errors import SamplerError

cdef extern from "shim/safe_sampler.h" nogil:
    int pyo_sampler_accept(llama_sampler * smpl, llama_token token, cpp_string & err)
    int pyo_sampler_apply(llama_sampler * smpl, llama_token_data_array * cur_p, cpp_string & err)
    int pyo_sampler_sample(llama_sampler * smpl, llama_context * ctx, int32_t idx, llama_token * out,
                           cpp_string & err)


cdef int _check_rc(int rc, cpp_string & err) except -1:
    _raise_pending_callback_error()
    if rc != 0:
        raise SamplerError(err.decode("utf-8", "replace"))
    return 0


cdef class Sampler:
    """One libllama sampler. Build with the class methods (Sampler.top_k(40), …).

    Adding a sampler to a SamplerChain transfers ownership: this object then becomes empty.
    One thread at a time.
    """

    def __cinit__(self):
        self.ptr = NULL

    def __init__(self, *a, **kw):
        raise TypeError("build samplers with the Sampler.<kind>(...) class methods")

    @staticmethod
    cdef Sampler _wrap(llama_sampler * p, str what):
        if p == NULL:
            why = _take_last_error()
            raise SamplerError(f"could not create {what} sampler" + (f": {why}" if why else ""))
        cdef Sampler s = Sampler.__new__(Sampler)
        s.ptr = p
        return s

    def __dealloc__(self):
        if self.ptr != NULL:
            llama_sampler_free(self.ptr)
            self.ptr = NULL

    cdef llama_sampler * _s(self) except NULL:
        if self.ptr == NULL:
            raise ValueError("sampler is empty (freed, or handed to a chain)")
        return self.ptr

    def close(self):
        if self.ptr != NULL:
            llama_sampler_free(self.ptr)
            self.ptr = NULL

    # --- built-ins ------------------------------------------------------------------------------
    @classmethod
    def greedy(cls):
        return Sampler._wrap(llama_sampler_init_greedy(), "greedy")

    @classmethod
    def dist(cls, seed=None):
        """Random choice by probability. seed None/-1 = random seed."""
        return Sampler._wrap(llama_sampler_init_dist(_seed(seed)), "dist")

    @classmethod
    def top_k(cls, int k):
        return Sampler._wrap(llama_sampler_init_top_k(k), "top_k")

    @classmethod
    def top_p(cls, float p, size_t min_keep=1):
        return Sampler._wrap(llama_sampler_init_top_p(p, min_keep), "top_p")

    @classmethod
    def min_p(cls, float p, size_t min_keep=1):
        return Sampler._wrap(llama_sampler_init_min_p(p, min_keep), "min_p")

    @classmethod
    def typical(cls, float p, size_t min_keep=1):
        return Sampler._wrap(llama_sampler_init_typical(p, min_keep), "typical")

    @classmethod
    def temp(cls, float t):
        return Sampler._wrap(llama_sampler_init_temp(t), "temp")

    @classmethod
    def temp_ext(cls, float t, float delta, float exponent):
        return Sampler._wrap(llama_sampler_init_temp_ext(t, delta, exponent), "temp_ext")

    @classmethod
    def xtc(cls, float p, float t, size_t min_keep=1, seed=None):
        return Sampler._wrap(llama_sampler_init_xtc(p, t, min_keep, _seed(seed)), "xtc")

    @classmethod
    def top_n_sigma(cls, float n):
        return Sampler._wrap(llama_sampler_init_top_n_sigma(n), "top_n_sigma")

    @classmethod
    def mirostat(cls, int n_vocab, seed=None, float tau=5.0, float eta=0.1, int m=100):
        return Sampler._wrap(llama_sampler_init_mirostat(n_vocab, _seed(seed), tau, eta, m), "mirostat")

    @classmethod
    def mirostat_v2(cls, seed=None, float tau=5.0, float eta=0.1):
        return Sampler._wrap(llama_sampler_init_mirostat_v2(_seed(seed), tau, eta), "mirostat_v2")

    @classmethod
    def grammar(cls, Vocab vocab not None, str gbnf, str root="root"):
        """Constrain output to a GBNF grammar; SamplerError names the parse problem."""
        cdef bytes g = gbnf.encode()
        cdef bytes r = root.encode()
        _take_last_error()
        return Sampler._wrap(llama_sampler_init_grammar(vocab._v(), g, r), "grammar")

    @classmethod
    def grammar_lazy(cls, Vocab vocab not None, str gbnf, str root="root", trigger_patterns=(),
                     trigger_tokens=()):
        """A grammar that only starts constraining once a trigger pattern (regex over the output)
        matches or a trigger token is sampled — e.g. tool calls after free text."""
        pats = [p.encode() for p in trigger_patterns]
        toks = list(trigger_tokens)
        cdef bytes g = gbnf.encode()
        cdef bytes r = root.encode()
        cdef const char ** cpats = <const char **> malloc((len(pats) + 1) * sizeof(char *))
        cdef llama_token * ctoks = <llama_token *> malloc((len(toks) + 1) * sizeof(llama_token))
        try:
            for i, p in enumerate(pats):
                cpats[i] = <const char *> p
            for i, t in enumerate(toks):
                vocab._check(t)
                ctoks[i] = t
            _take_last_error()
            return Sampler._wrap(llama_sampler_init_grammar_lazy_patterns(
                vocab._v(), g, r, cpats, len(pats), ctoks, len(toks)), "lazy grammar")
        finally:
            free(cpats)
            free(ctoks)

    @classmethod
    def penalties(cls, int last_n=64, float repeat=1.0, float frequency=0.0, float presence=0.0, int n_vocab=0):
        """Repetition penalties over the last `last_n` accepted tokens (0 = off, -1 = whole context)."""
        if repeat <= 0:
            raise SamplerError(f"repeat penalty must be > 0, not {repeat}")
        return Sampler._wrap(llama_sampler_init_penalties(n_vocab, last_n, repeat, frequency, presence), "penalties")

    @classmethod
    def dry(cls, Vocab vocab not None, float multiplier, float base=1.75, int allowed_length=2,
            int penalty_last_n=-1, seq_breakers=("\n", ":", "\"", "*")):
        brk = [b.encode() for b in seq_breakers]
        cdef const char ** cb = <const char **> malloc((len(brk) + 1) * sizeof(char *))
        try:
            for i, b in enumerate(brk):
                cb[i] = <const char *> b
            return Sampler._wrap(llama_sampler_init_dry(vocab._v(), multiplier, base, allowed_length,
                                                        penalty_last_n, cb, len(brk)), "dry")
        finally:
            free(cb)

    @classmethod
    def adaptive_p(cls, float target, float decay, seed=None):
        return Sampler._wrap(llama_sampler_init_adaptive_p(target, decay, _seed(seed)), "adaptive_p")

    @classmethod
    def logit_bias(cls, int n_vocab, bias):
        """Add bias[token] to that token's logit (a dict or (token, bias) pairs; -inf bans)."""
        items = list(bias.items()) if isinstance(bias, dict) else list(bias)
        cdef llama_logit_bias * arr = <llama_logit_bias *> malloc((len(items) + 1) * sizeof(llama_logit_bias))
        try:
            for i, (t, b) in enumerate(items):
                if not 0 <= t < n_vocab:
                    raise SamplerError(f"logit_bias token {t} is out of range for a vocabulary of {n_vocab}")
                arr[i].token = t
                arr[i].bias = b
            return Sampler._wrap(llama_sampler_init_logit_bias(n_vocab, len(items), arr), "logit_bias")
        finally:
            free(arr)

    @classmethod
    def infill(cls, Vocab vocab not None):
        return Sampler._wrap(llama_sampler_init_infill(vocab._v()), "infill")

    # --- operations -----------------------------------------------------------------------------
    @property
    def name(self):
        return _s(llama_sampler_name(self._s()))

    @property
    def seed(self):
        return llama_sampler_get_seed(self._s())

    def accept(self, int token):
        cdef cpp_string err
        cdef int rc = pyo_sampler_accept(self._s(), token, err)
        _check_rc(rc, err)

    def reset(self):
        llama_sampler_reset(self._s())

    def clone(self):
        return Sampler._wrap(llama_sampler_clone(self._s()), "cloned")

    def sample(self, Context ctx not None, int idx=-1):
        """Choose a token from the logits of batch index `idx` and accept it (GIL released,
        except while a Python sampler in the chain runs)."""
        cdef llama_sampler * s = self._s()
        cdef llama_context * c = ctx._c()
        cdef llama_token t = -1
        cdef cpp_string err
        cdef int rc = 0
        cdef float * lg
        with nogil:     # reading the logits waits for the decode: without the GIL (_NOGIL_LOGITS)
            lg = llama_get_logits_ith(c, idx)
            if lg != NULL:
                rc = pyo_sampler_sample(s, c, idx, &t, err)
        if lg == NULL:
            _no_logits(idx)
        _check_rc(rc, err)
        return t

    def apply(self, Candidates cand not None):
        """Run this sampler over a candidate set in place (cand.selected says the choice)."""
        cdef cpp_string err
        cdef int rc = pyo_sampler_apply(self._s(), &cand.arr, err)
        _check_rc(rc, err)


cdef uint32_t _seed(seed) except? 0:
    if seed is None or seed == -1:
        return <uint32_t> LLAMA_DEFAULT_SEED
    if not 0 <= seed <= 0xFFFFFFFF:
        raise SamplerError(f"seed must fit in 32 bits (or be -1 for random), not {seed}")
    return <uint32_t> seed


cdef class SamplerChain(Sampler):
    """An ordered chain; the last sampler must select (greedy, dist, mirostat, adaptive_p)."""

    def __init__(self, samplers=(), *, bint no_perf=True):
        cdef llama_sampler_chain_params p = llama_sampler_chain_default_params()
        p.no_perf = no_perf
        self.ptr = llama_sampler_chain_init(p)
        for s in samplers:
            self.add(s)

    def add(self, Sampler s not None):
        """Append `s`; the chain takes ownership and `s` becomes empty."""
        if s is self:
            raise ValueError("cannot add a chain to itself")
        llama_sampler_chain_add(self._s(), s._s())
        s.ptr = NULL
        return self

    def __len__(self):
        return llama_sampler_chain_n(self._s())

    @property
    def names(self):
        cdef llama_sampler * c = self._s()
        return [_s(llama_sampler_name(llama_sampler_chain_get(c, i))) for i in range(llama_sampler_chain_n(c))]

    def remove(self, int i):
        """Take sampler i out of the chain; ownership returns to the caller."""
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"chain index {i} out of range ({n} samplers)")
        return Sampler._wrap(llama_sampler_chain_remove(self._s(), i % n), "removed")

    def perf(self):
        cdef llama_perf_sampler_data d = llama_perf_sampler(self._s())
        return {"t_sample_ms": d.t_sample_ms, "n_sample": d.n_sample}


# --- candidate arrays and fast selection ---------------------------------------------------------
cdef class Candidates:
    """A llama_token_data_array as numpy views (`ids`, `logits`, `p`), for custom sampling and for
    running samplers over a reduced candidate set. Views are valid while this object lives."""

    def __cinit__(self):
        self.arr.data = NULL
        self.arr.size = 0
        self.arr.selected = -1
        self.arr.sorted = False
        self.owned = False
        self.cap = 0

    def __dealloc__(self):
        if self.owned:
            free(self.arr.data)

    @staticmethod
    def from_logits(logits, token_ids=None):
        """A new candidate set (own memory) from logits (all tokens, or the given ids)."""
        cdef const float[::1] lg = np.ascontiguousarray(logits, dtype=np.float32)
        cdef Candidates c = Candidates.__new__(Candidates)
        cdef Py_ssize_t n = lg.shape[0]
        cdef const int32_t[::1] ids
        c.arr.data = <llama_token_data *> malloc(max(n, 1) * sizeof(llama_token_data))
        c.owned = True
        c.cap = n
        c.arr.size = n
        if token_ids is not None:
            ids = np.ascontiguousarray(token_ids, dtype=np.int32)
            if ids.shape[0] != n:
                raise ValueError("token_ids and logits differ in length")
            for i in range(n):
                c.arr.data[i].id = ids[i]
                c.arr.data[i].logit = lg[i]
                c.arr.data[i].p = 0
        else:
            for i in range(n):
                c.arr.data[i].id = <int32_t> i
                c.arr.data[i].logit = lg[i]
                c.arr.data[i].p = 0
        return c

    def __len__(self):
        return self.arr.size

    @property
    def size(self):
        return self.arr.size

    @size.setter
    def size(self, size_t n):
        """Shrink the set to its first n entries (e.g. after sorting)."""
        if n > self.arr.size:
            raise ValueError(f"can only shrink the candidate set (size {self.arr.size}), not grow it to {n}")
        self.arr.size = n
        if self.arr.selected >= <int64_t> n:
            self.arr.selected = -1

    @property
    def selected(self):
        return self.arr.selected

    @selected.setter
    def selected(self, int64_t i):
        if not -1 <= i < <int64_t> self.arr.size:
            raise IndexError(f"selected index {i} out of range (size {self.arr.size})")
        self.arr.selected = i

    @property
    def sorted(self):
        return bool(self.arr.sorted)

    @sorted.setter
    def sorted(self, bint v):
        self.arr.sorted = v

    @property
    def ids(self):
        return _view(self, &self.arr.data[0].id, b"i", 4, self.arr.size, sizeof(llama_token_data))

    @property
    def logits(self):
        return _view(self, &self.arr.data[0].logit, b"f", 4, self.arr.size, sizeof(llama_token_data))

    @property
    def p(self):
        return _view(self, &self.arr.data[0].p, b"f", 4, self.arr.size, sizeof(llama_token_data))

    @property
    def selected_token(self):
        if not 0 <= self.arr.selected < <int64_t> self.arr.size:
            raise ValueError("no candidate is selected")
        return self.arr.data[self.arr.selected].id


cdef extern from "shim/pick.h" nogil:
    ctypedef struct pyo_token_data:     # same layout as llama_token_data
        pass
    int32_t pyo_argmax(const float * logits, int32_t n)
    int32_t pyo_top_k(const float * logits, int32_t n, int32_t k, pyo_token_data * out)


# _NOGIL_LOGITS: reading a batch's logits waits for the decode to finish on every backend, so it runs
# without the GIL, in the same nogil block as the work on them (one release per token): a backend's
# thread may need the GIL meanwhile (an RPC worker's, to log a lost connection before it aborts) and
# would deadlock against a waiter holding it.
cdef int _no_logits(int idx) except -1:
    raise IndexError(f"no logits for batch index {idx}")


def argmax(Context ctx not None, int idx=-1):
    """Greedy choice straight from the logits (no candidate array)."""
    cdef llama_context * c = ctx._c()
    cdef float * lg
    cdef llama_token t = -1
    cdef int n = ctx.n_vocab
    with nogil:     # _NOGIL_LOGITS
        lg = llama_get_logits_ith(c, idx)
        if lg != NULL:
            t = pyo_argmax(lg, n)
    if lg == NULL:
        _no_logits(idx)
    return t


def sample_top_k(Context ctx not None, int idx, int k, Sampler tail not None, Candidates scratch=None,
                 bint accept=True):
    """Select the top-k logits into a sorted candidate set and let `tail` (e.g. top_p → min_p →
    temp → dist) choose among them; equals a full chain that starts with top_k(k), without the
    full-vocabulary candidate array. Returns the token; `tail` accepts it unless accept=False."""
    cdef Candidates cand = _fill_top_k(ctx, idx, k, scratch)
    cdef llama_sampler * s = tail._s()
    cdef cpp_string err
    cdef int rc
    with nogil:
        rc = pyo_sampler_apply(s, &cand.arr, err)
    _check_rc(rc, err)
    if not 0 <= cand.arr.selected < <int64_t> cand.arr.size:
        raise SamplerError("the tail sampler chain did not select a token (does it end with dist/greedy?)")
    cdef llama_token t = cand.arr.data[cand.arr.selected].id
    if accept:
        rc = pyo_sampler_accept(s, t, err)
        _check_rc(rc, err)
    return t


cdef int _candidates_reserve(Candidates c, size_t n) except -1:
    cdef llama_token_data * p
    if not c.owned and c.arr.data != NULL:
        raise ValueError("cannot grow a borrowed candidate set")
    if c.cap < n:
        p = <llama_token_data *> realloc(c.arr.data if c.owned else NULL, n * sizeof(llama_token_data))
        if p == NULL:
            raise MemoryError()
        c.arr.data = p
        c.cap = n
        c.owned = True
    return 0


def top_candidates(Context ctx not None, int idx, int k, Candidates scratch=None):
    """The k highest logits of batch index `idx` as a sorted Candidates set (without building an
    entry for every vocabulary token). Reuses `scratch` when given."""
    return _fill_top_k(ctx, idx, k, scratch)


cdef Candidates _fill_top_k(Context ctx, int idx, int k, Candidates scratch):
    cdef llama_context * c = ctx._c()
    if k <= 0:
        raise ValueError("k must be positive")
    cdef Candidates cand = scratch if scratch is not None else Candidates.__new__(Candidates)
    _candidates_reserve(cand, k)
    cdef int n = ctx.n_vocab
    cdef float * lg
    with nogil:     # _NOGIL_LOGITS
        lg = llama_get_logits_ith(c, idx)
        if lg != NULL:
            cand.arr.size = pyo_top_k(lg, n, k, <pyo_token_data *> cand.arr.data)
            cand.arr.sorted = True
            cand.arr.selected = -1
    if lg == NULL:
        _no_logits(idx)
    return cand
