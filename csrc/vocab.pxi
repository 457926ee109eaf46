# Vocab: a view of the model's tokenizer. Upstream documents tokenization as thread-safe, so a
# Vocab may be used from any thread, concurrently with decoding.
from pyollama.errors import TokenizeError


cdef class Vocab:
    """Tokenizer of a Model (keeps the model alive).

    Token ids are checked against the vocabulary before they reach libllama, which would
    otherwise abort the process on an out-of-range id.
    """

    @staticmethod
    cdef Vocab _of(Model model):
        cdef Vocab v = Vocab.__new__(Vocab)
        v.model = model
        v.ptr = llama_model_get_vocab(model._p())
        v.n_tokens = llama_vocab_n_tokens(v.ptr)
        return v

    def __init__(self, *args, **kwargs):
        raise TypeError("use Model.vocab")

    cdef const llama_vocab * _v(self) except NULL:
        if self.model.ptr == NULL:
            raise ValueError("model is closed")
        return self.ptr

    cdef int _check(self, long token) except -1:
        if token < 0 or token >= self.n_tokens:
            raise TokenizeError(f"token id {token} is out of range for a vocabulary of {self.n_tokens}")
        return 0

    def __len__(self):
        return self.n_tokens

    @property
    def type(self):
        """'spm', 'bpe', 'wpm', 'ugm', 'rwkv', 'plamo2', 'test' or 'none'."""
        names = {LLAMA_VOCAB_TYPE_NONE: "none", LLAMA_VOCAB_TYPE_SPM: "spm", LLAMA_VOCAB_TYPE_BPE: "bpe",
                 LLAMA_VOCAB_TYPE_WPM: "wpm", LLAMA_VOCAB_TYPE_UGM: "ugm", LLAMA_VOCAB_TYPE_RWKV: "rwkv",
                 LLAMA_VOCAB_TYPE_PLAMO2: "plamo2", LLAMA_VOCAB_TYPE_TEST: "test"}
        return names.get(llama_get_vocab_type(self._v()), "unknown")

    def mismatch(self, Vocab other not None):
        """Why ``other`` cannot draft for this vocabulary (speculative decoding), or None: upstream's rule
        (same type, same BOS/EOS use, sizes within 128, equal token texts from id 5 on)."""
        cdef const llama_vocab * a = self._v()
        cdef const llama_vocab * b = other._v()
        if llama_get_vocab_type(a) != llama_get_vocab_type(b):
            return f"the tokenizer types differ ({self.type} and {other.type})"
        if llama_vocab_get_add_bos(a) != llama_vocab_get_add_bos(b) or (
                llama_vocab_get_add_bos(a) and llama_vocab_bos(a) != llama_vocab_bos(b)):
            return "the BOS tokens differ"
        if llama_vocab_get_add_eos(a) != llama_vocab_get_add_eos(b) or (
                llama_vocab_get_add_eos(a) and llama_vocab_eos(a) != llama_vocab_eos(b)):
            return "the EOS tokens differ"
        if abs(self.n_tokens - other.n_tokens) > 128:
            return f"the vocabulary sizes differ too much ({self.n_tokens} and {other.n_tokens})"
        cdef int32_t i, n = min(self.n_tokens, other.n_tokens), bad = -1
        with nogil:
            for i in range(5, n):
                if strcmp(llama_vocab_get_text(a, i), llama_vocab_get_text(b, i)) != 0:
                    bad = i
                    break
        if bad >= 0:
            return f"token {bad} differs ({self.text(bad)!r} and {other.text(bad)!r})"
        return None

    def tokenize(self, text, *, bint add_special=True, bint parse_special=False):
        """Text (str or UTF-8 bytes) → list of token ids.

        add_special: add BOS/EOS as the model's metadata asks. parse_special: treat special-token
        text such as "<|im_start|>" as that token (templates), not as plain text (user input).
        """
        cdef bytes b = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        cdef const char * cb = b
        cdef int32_t nb = len(b)
        if len(b) > 0x7FFFFFFF - 16:
            raise TokenizeError("text too long to tokenize")
        cdef int32_t cap = nb + 8
        cdef llama_token * buf = <llama_token *> malloc(cap * sizeof(llama_token))
        cdef int32_t n
        cdef const llama_vocab * v = self._v()
        try:
            with nogil:
                n = llama_tokenize(v, cb, nb, buf, cap, add_special, parse_special)
            if n < 0 and n != -2147483648:
                cap = -n
                free(buf)
                buf = <llama_token *> malloc(cap * sizeof(llama_token))
                with nogil:
                    n = llama_tokenize(v, cb, nb, buf, cap, add_special, parse_special)
            if n < 0:
                raise TokenizeError(f"tokenization failed ({n})")
            return [buf[i] for i in range(n)]
        finally:
            free(buf)

    def token_to_piece(self, int token, *, bint special=False, int lstrip=0):
        """One token → its bytes (may be a partial UTF-8 sequence). special: render control tokens."""
        self._check(token)
        cdef char small[64]
        cdef int32_t n = llama_token_to_piece(self._v(), token, small, sizeof(small), lstrip, special)
        cdef char * big
        if n >= 0:
            return small[:n]
        big = <char *> malloc(-n)
        try:
            n = llama_token_to_piece(self.ptr, token, big, -n, lstrip, special)
            return big[:n] if n >= 0 else b""
        finally:
            free(big)

    def pieces(self, *, bint special=False):
        """token_to_piece for every token, as a list of bytes (for detokenizer caches)."""
        return [self.token_to_piece(t, special=special) for t in range(self.n_tokens)]

    def detokenize(self, tokens, *, bint remove_special=False, bint unparse_special=False):
        """Token ids → text (invalid UTF-8 replaced)."""
        return self.detokenize_bytes(tokens, remove_special=remove_special,
                                     unparse_special=unparse_special).decode("utf-8", "replace")

    def detokenize_bytes(self, tokens, *, bint remove_special=False, bint unparse_special=False):
        cdef Py_ssize_t nt = len(tokens)
        cdef llama_token * toks = <llama_token *> malloc((nt + 1) * sizeof(llama_token))
        cdef int32_t cap = <int32_t> (nt * 8 + 16)
        cdef char * out = NULL
        cdef int32_t n
        cdef const llama_vocab * v = self._v()
        try:
            for i, t in enumerate(tokens):
                self._check(t)
                toks[i] = t
            out = <char *> malloc(cap)
            with nogil:
                n = llama_detokenize(v, toks, <int32_t> nt, out, cap, remove_special, unparse_special)
            if n < 0:
                cap = -n
                free(out)
                out = <char *> malloc(cap)
                with nogil:
                    n = llama_detokenize(v, toks, <int32_t> nt, out, cap, remove_special, unparse_special)
            if n < 0:
                raise TokenizeError(f"detokenization failed ({n})")
            return out[:n]
        finally:
            free(toks)
            free(out)

    # --- token properties -----------------------------------------------------------------------
    def text(self, int token):
        self._check(token)
        return _s(llama_vocab_get_text(self._v(), token))

    def score(self, int token):
        self._check(token)
        return llama_vocab_get_score(self._v(), token)

    def attr(self, int token):
        """Bit flags (LLAMA_TOKEN_ATTR_*): 8 = control, 16 = user-defined, 32 = byte, …"""
        self._check(token)
        return <int> llama_vocab_get_attr(self._v(), token)

    def is_eog(self, int token):
        """End of generation (EOS, EOT, or any token the model marks as such)."""
        return 0 <= token < self.n_tokens and llama_vocab_is_eog(self._v(), token)

    def is_control(self, int token):
        self._check(token)
        return bool(llama_vocab_is_control(self._v(), token))

    @property
    def eog_tokens(self):
        cdef const llama_vocab * v = self._v()
        return [t for t in range(self.n_tokens) if llama_vocab_is_eog(v, t)]

    # Special tokens: -1 (LLAMA_TOKEN_NULL) when the model has none.
    @property
    def bos(self): return llama_vocab_bos(self._v())
    @property
    def eos(self): return llama_vocab_eos(self._v())
    @property
    def eot(self): return llama_vocab_eot(self._v())
    @property
    def sep(self): return llama_vocab_sep(self._v())
    @property
    def nl(self): return llama_vocab_nl(self._v())
    @property
    def pad(self): return llama_vocab_pad(self._v())
    @property
    def mask(self): return llama_vocab_mask(self._v())
    @property
    def fim_pre(self): return llama_vocab_fim_pre(self._v())
    @property
    def fim_suf(self): return llama_vocab_fim_suf(self._v())
    @property
    def fim_mid(self): return llama_vocab_fim_mid(self._v())
    @property
    def fim_pad(self): return llama_vocab_fim_pad(self._v())
    @property
    def fim_rep(self): return llama_vocab_fim_rep(self._v())
    @property
    def fim_sep(self): return llama_vocab_fim_sep(self._v())
    @property
    def add_bos(self): return bool(llama_vocab_get_add_bos(self._v()))
    @property
    def add_eos(self): return bool(llama_vocab_get_add_eos(self._v()))
    @property
    def add_sep(self): return bool(llama_vocab_get_add_sep(self._v()))
