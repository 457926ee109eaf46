# Batch: owns one llama_batch (preallocated arrays); filled per token or in bulk, reused by reset().
from pyollama.errors import BatchFullError


cdef class Batch:
    """A preallocated batch of up to `capacity` tokens (or embeddings when embd > 0), each in up to
    `n_seq_max` sequences. One thread at a time."""

    def __cinit__(self, int capacity, int n_seq_max=1, int embd=0):
        if capacity <= 0:
            raise ValueError(f"capacity must be positive, not {capacity}")
        if n_seq_max <= 0:
            raise ValueError(f"n_seq_max must be positive, not {n_seq_max}")
        if embd < 0:
            raise ValueError("embd must be >= 0")
        self.b = llama_batch_init(capacity, embd, n_seq_max)
        self.capacity = capacity
        self.n_seq_max = n_seq_max
        self.embd = embd
        self.n_outputs = 0

    def __dealloc__(self):
        if self.b.pos != NULL:
            llama_batch_free(self.b)
            self.b.pos = NULL

    def close(self):
        if self.b.pos != NULL:
            llama_batch_free(self.b)
            self.b.pos = NULL
        self.b.n_tokens = 0

    cdef int _room(self, Py_ssize_t n) except -1:
        if self.b.pos == NULL:
            raise ValueError("batch is closed")
        if self.b.n_tokens + n > self.capacity:
            raise BatchFullError(f"batch holds at most {self.capacity} tokens; "
                                 f"{self.b.n_tokens} are in it and {n} more were added")
        return 0

    def __len__(self):
        return self.b.n_tokens

    @property
    def n_tokens(self):
        return self.b.n_tokens

    def reset(self):
        """Empty the batch (keeps its memory)."""
        self.b.n_tokens = 0
        self.n_outputs = 0

    def add(self, int token, int pos, seq_ids=0, bint output=False):
        """Append one token at `pos` in the given sequence id(s); returns its batch index."""
        if self.embd:
            raise TypeError("this batch holds embeddings; use add_embedding()")
        self._room(1)
        cdef int i = self.b.n_tokens
        self.b.token[i] = token
        self._place(i, pos, seq_ids, output)
        self.b.n_tokens += 1
        return i

    cdef int _place(self, int i, int pos, seq_ids, bint output) except -1:
        self.b.pos[i] = pos
        if isinstance(seq_ids, int):
            if seq_ids < 0:
                raise ValueError(f"sequence id must be >= 0, not {seq_ids}")
            self.b.n_seq_id[i] = 1
            self.b.seq_id[i][0] = seq_ids
        else:
            ids = list(seq_ids)
            if not 1 <= len(ids) <= self.n_seq_max:
                raise ValueError(f"a token belongs to 1..{self.n_seq_max} sequences in this batch, not {len(ids)}")
            for j, s in enumerate(ids):
                if s < 0:
                    raise ValueError(f"sequence id must be >= 0, not {s}")
                self.b.seq_id[i][j] = s
            self.b.n_seq_id[i] = len(ids)
        self.b.logits[i] = output
        if output:
            self.n_outputs += 1
        return 0

    def add_sequence(self, tokens, int pos0, int seq_id=0, bint output_last=True, bint output_all=False):
        """Append tokens at positions pos0, pos0+1, … of one sequence; returns the index of the first.
        `tokens` may be a list or an int32 numpy array."""
        if self.embd:
            raise TypeError("this batch holds embeddings; use add_embedding()")
        if seq_id < 0:
            raise ValueError(f"sequence id must be >= 0, not {seq_id}")
        cdef const int32_t[::1] arr = np.ascontiguousarray(tokens, dtype=np.int32)
        cdef Py_ssize_t n = arr.shape[0]
        if n == 0:
            return self.b.n_tokens
        self._room(n)
        cdef int start = self.b.n_tokens
        cdef int i
        cdef Py_ssize_t k
        for k in range(n):
            i = start + k
            self.b.token[i] = arr[k]
            self.b.pos[i] = pos0 + k
            self.b.n_seq_id[i] = 1
            self.b.seq_id[i][0] = seq_id
            self.b.logits[i] = output_all
        if output_all:
            self.n_outputs += n
        elif output_last:
            self.b.logits[start + n - 1] = 1
            self.n_outputs += 1
        self.b.n_tokens += n
        return start

    def add_arrays(self, tokens, positions, seq_ids, outputs=None):
        """Append n tokens from numpy arrays (int32 tokens, positions, one sequence id each; an
        optional bool/int8 output flag each). The runner-style bulk path: one call per step."""
        if self.embd:
            raise TypeError("this batch holds embeddings; use add_embedding()")
        cdef const int32_t[::1] tk = np.ascontiguousarray(tokens, dtype=np.int32)
        cdef const int32_t[::1] ps = np.ascontiguousarray(positions, dtype=np.int32)
        cdef const int32_t[::1] sq = np.ascontiguousarray(seq_ids, dtype=np.int32)
        cdef Py_ssize_t n = tk.shape[0]
        if ps.shape[0] != n or sq.shape[0] != n:
            raise ValueError(f"tokens, positions and seq_ids differ in length ({n}, {ps.shape[0]}, {sq.shape[0]})")
        cdef const int8_t[::1] out
        cdef bint have_out = outputs is not None
        if have_out:
            out = np.ascontiguousarray(outputs, dtype=np.int8)
            if out.shape[0] != n:
                raise ValueError("outputs differs in length from tokens")
        for k in range(n):
            if sq[k] < 0:
                raise ValueError(f"sequence id must be >= 0, not {sq[k]}")
        self._room(n)
        cdef int start = self.b.n_tokens
        cdef int i
        cdef Py_ssize_t k2
        for k2 in range(n):
            i = start + k2
            self.b.token[i] = tk[k2]
            self.b.pos[i] = ps[k2]
            self.b.n_seq_id[i] = 1
            self.b.seq_id[i][0] = sq[k2]
            self.b.logits[i] = (out[k2] != 0) if have_out else 0
            if self.b.logits[i]:
                self.n_outputs += 1
        self.b.n_tokens += n
        return start

    def add_embedding(self, const float[::1] vector, int pos, seq_ids=0, bint output=False):
        """Append one input embedding of `embd` floats (media chunks, embedding-input models)."""
        if not self.embd:
            raise TypeError("this batch holds tokens; create it with embd=n_embd for embeddings")
        if vector.shape[0] != self.embd:
            raise ValueError(f"embedding has {vector.shape[0]} values, the batch expects {self.embd}")
        self._room(1)
        cdef int i = self.b.n_tokens
        memcpy(&self.b.embd[i * self.embd], &vector[0], self.embd * sizeof(float))
        self._place(i, pos, seq_ids, output)
        self.b.n_tokens += 1
        return i

    def set_output(self, int i, bint output=True):
        """Turn the output (logits) flag of batch index i on or off."""
        if not 0 <= i < self.b.n_tokens:
            raise IndexError(f"batch index {i} out of range (n_tokens={self.b.n_tokens})")
        if self.b.logits[i] != output:
            self.n_outputs += 1 if output else -1
        self.b.logits[i] = output

    def tokens(self):
        return [self.b.token[i] for i in range(self.b.n_tokens)] if not self.embd else []

    def positions(self):
        return [self.b.pos[i] for i in range(self.b.n_tokens)]

    def output_indices(self):
        return [i for i in range(self.b.n_tokens) if self.b.logits[i]]
