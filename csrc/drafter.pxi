# Drafter: self-speculative drafts from upstream's n-gram drafters (common/speculative.h, through
# csrc/shim/drafter.cpp). Mechanism only: when to draft, how long, and verification are the runner's.

cdef extern from "shim/drafter.h" nogil:
    ctypedef struct pyollama_drafter:
        pass
    pyollama_drafter * pyollama_drafter_new(const char * types, uint32_t n_seq, uint16_t size_n, uint16_t size_m,
                                            uint16_t min_hits, char * err, size_t err_len)
    void pyollama_drafter_free(pyollama_drafter * d)
    int pyollama_drafter_begin(pyollama_drafter * d, int32_t seq, const llama_token * tokens, size_t n)
    int pyollama_drafter_push(pyollama_drafter * d, int32_t seq, const llama_token * tokens, size_t n)
    int pyollama_drafter_draft(pyollama_drafter * d, int32_t seq, llama_token last, int32_t n_max,
                               llama_token * out, int32_t cap)
    int pyollama_drafter_accept(pyollama_drafter * d, int32_t seq, uint16_t n_accepted)

DEF _DRAFT_CAP = 1024


cdef class Drafter:
    """Drafts for ``n_seq`` sequences from each one's own history: the tokens that followed the last
    earlier occurrence of its most recent ``size_n`` tokens (``types``: upstream's n-gram drafters,
    comma separated, tried in upstream's order). One thread at a time."""

    def __cinit__(self, str types="ngram-map-k", int n_seq=1, int size_n=12, int size_m=48, int min_hits=1):
        if n_seq <= 0:
            raise ValueError(f"n_seq must be positive, not {n_seq}")
        if not 1 <= size_n <= 1024 or not 1 <= size_m <= _DRAFT_CAP:
            raise ValueError(f"size_n must be 1..1024 and size_m 1..{_DRAFT_CAP}, not {size_n} and {size_m}")
        if not 1 <= min_hits <= 65535:
            raise ValueError(f"min_hits must be 1..65535, not {min_hits}")
        cdef char err[256]
        err[0] = 0
        cdef bytes bt = types.encode()
        self.ptr = pyollama_drafter_new(bt, n_seq, size_n, size_m, min_hits, err, sizeof(err))
        if self.ptr == NULL:
            raise ValueError(f"no drafter for {types!r}: {_s(err)}")
        self.types = types
        self.n_seq = n_seq
        self.size_n = size_n
        self.size_m = size_m

    def __dealloc__(self):
        pyollama_drafter_free(<pyollama_drafter *> self.ptr)
        self.ptr = NULL

    def close(self):
        pyollama_drafter_free(<pyollama_drafter *> self.ptr)
        self.ptr = NULL

    cdef void * _d(self, int seq) except NULL:
        if self.ptr == NULL:
            raise ValueError("drafter is closed")
        if not 0 <= seq < self.n_seq:
            raise ValueError(f"sequence {seq} is out of range for {self.n_seq}")
        return <pyollama_drafter *> self.ptr

    def begin(self, int seq, tokens):
        """A new generation in ``seq``: its history becomes ``tokens`` (the prompt)."""
        self._tokens(seq, tokens, True)

    def push(self, int seq, tokens):
        """Append tokens the sequence kept."""
        self._tokens(seq, tokens, False)

    cdef _tokens(self, int seq, tokens, bint begin):
        cdef pyollama_drafter * d = <pyollama_drafter *> self._d(seq)
        cdef const int32_t[::1] arr = np.ascontiguousarray(tokens if len(tokens) else [0], dtype=np.int32)
        cdef size_t n = len(tokens)
        cdef int rc
        with nogil:
            if begin:
                rc = pyollama_drafter_begin(d, seq, &arr[0], n)
            else:
                rc = pyollama_drafter_push(d, seq, &arr[0], n)
        if rc != 0:
            raise NativeError("drafter failed to take the tokens")

    def draft(self, int seq, int last, int n_max):
        """Up to ``n_max`` tokens likely to follow ``last`` (sampled, not yet pushed); [] when the history
        has no match."""
        cdef pyollama_drafter * d = <pyollama_drafter *> self._d(seq)
        cdef llama_token out[_DRAFT_CAP]
        cdef int n
        n_max = min(n_max, _DRAFT_CAP)
        with nogil:
            n = pyollama_drafter_draft(d, seq, last, n_max, out, _DRAFT_CAP)
        if n < 0:
            raise NativeError("drafter failed")
        return [out[i] for i in range(n)]

    def accept(self, int seq, int n_accepted):
        """How many tokens of the last draft for ``seq`` were accepted (call only after a non-empty draft)."""
        cdef pyollama_drafter * d = <pyollama_drafter *> self._d(seq)
        if not 0 <= n_accepted <= 65535:
            raise ValueError("n_accepted out of range")
        cdef int rc
        with nogil:
            rc = pyollama_drafter_accept(d, seq, n_accepted)
        if rc != 0:
            raise NativeError("drafter failed to accept")
