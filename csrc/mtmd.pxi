# libmtmd (tools/mtmd at the pin): a model's media projector (an "mmproj" GGUF) beside its text model.
# It turns images into chunks of embeddings between the prompt's text chunks, and evaluates them into a
# llama_context. Mechanism only: which marker a template uses and how images reach a request is policy.
from mtmd cimport *
from pyollama.errors import MediaError

MEDIA_MARKER = (<bytes> mtmd_default_marker()).decode()
mtmd_helper_log_set(_log_callback, NULL)        # libmtmd logs through its own hook: into Python's logging too


cdef class Projector:
    """A media projector loaded for ``model`` (libmtmd's mtmd_context); keeps the model alive and counts
    as one of its children, so the model cannot be closed under it.

    Projector(model, path, *, n_threads=None (upstream's default), use_gpu=True, flash_attn="auto",
              warmup=False)
    Thread-safety: tokenize and image from any thread; eval on the context's thread only."""

    cdef mtmd_context * ptr
    cdef readonly Model model
    cdef readonly str path

    def __cinit__(self):
        self.ptr = NULL

    def __init__(self, Model model not None, path, *, n_threads=None, bint use_gpu=True, flash_attn="auto",
                 bint warmup=False):
        path = os.fspath(path)
        _check_gguf_file(path)
        cdef mtmd_context_params p = mtmd_context_params_default()
        p.use_gpu = use_gpu
        p.print_timings = False
        if n_threads is not None:
            if n_threads <= 0:
                raise ValueError(f"n_threads must be positive, not {n_threads}")
            p.n_threads = n_threads
        p.flash_attn_type = _flash_attn(flash_attn, ValueError)
        p.warmup = warmup
        cdef bytes bpath = path.encode()
        cdef const char * cpath = bpath
        cdef llama_model * m = model._p()
        cdef mtmd_context * c
        with nogil:
            c = mtmd_init_from_file(cpath, m, p)
        if c == NULL:
            why = _take_last_error()
            raise ModelLoadError(f"failed to load the projector {path}" + (f": {why}" if why else ""))
        self.ptr = c
        self.model = model
        self.path = path
        model._children += 1

    def __dealloc__(self):
        self._free()

    cdef _free(self):
        cdef mtmd_context * c = self.ptr
        if c != NULL:
            with nogil:
                mtmd_free(c)
            self.ptr = NULL
            self.model._children -= 1

    def close(self):
        self._free()

    cdef mtmd_context * _c(self) except NULL:
        if self.ptr == NULL:
            raise ValueError("projector is closed")
        return self.ptr

    @property
    def vision(self):
        return bool(mtmd_support_vision(self._c()))

    @property
    def audio(self):
        return bool(mtmd_support_audio(self._c()))

    @property
    def mrope(self):
        """Whether media positions are M-RoPE (Qwen2-VL family): an image then spans fewer positions than
        tokens, and text tokens take four positions each."""
        return bool(mtmd_decode_use_mrope(self._c()))

    def image(self, data):
        """An image from the bytes of a file (any format libmtmd decodes: JPEG, PNG, BMP, GIF, PNM …).
        Raises MediaError when it cannot be decoded."""
        cdef const unsigned char[::1] buf = memoryview(bytes(data)).cast("B")
        if buf.shape[0] == 0:
            raise MediaError("the image is empty")
        cdef mtmd_context * c = self._c()
        cdef mtmd_helper_bitmap_wrapper w
        with nogil:
            w = mtmd_helper_bitmap_init_from_buf(c, &buf[0], buf.shape[0], False, mtmd_helper_init_opt_default())
        if w.bitmap == NULL:
            _take_last_error()          # upstream's line is logged; this one says what is accepted
            raise MediaError("the image cannot be decoded: JPEG, PNG, BMP, GIF, TGA or PNM expected")
        return Bitmap._wrap(w.bitmap)

    def tokenize(self, str text, images=(), *, bint add_special=True, bint parse_special=True):
        """Split ``text`` at each MEDIA_MARKER into text chunks and the chunks of ``images`` (Bitmaps,
        one per marker, in order)."""
        cdef list bms = list(images)
        markers = text.count(MEDIA_MARKER)
        if markers != len(bms):
            raise MediaError(f"{len(bms)} image(s) for {markers} marker(s) in the prompt")
        for b in bms:
            if not isinstance(b, Bitmap):
                raise TypeError(f"images must be Bitmaps (Projector.image), not {type(b).__name__}")
        cdef bytes btext = text.encode()
        cdef mtmd_input_text t
        t.text = btext
        t.text_len = len(btext)
        t.add_special = add_special
        t.parse_special = parse_special
        cdef size_t n = len(bms)
        cdef const mtmd_bitmap ** arr = <const mtmd_bitmap **> malloc((n + 1) * sizeof(void *))
        if arr == NULL:
            raise MemoryError()
        cdef Chunks chunks = Chunks.__new__(Chunks)
        chunks.ptr = mtmd_input_chunks_init()
        chunks.projector = self
        cdef mtmd_context * c = self._c()
        cdef int32_t rc
        try:
            for i in range(n):
                arr[i] = (<Bitmap> bms[i])._b()
            with nogil:
                rc = mtmd_tokenize(c, chunks.ptr, &t, arr, n)
        finally:
            free(arr)
        if rc != 0:
            why = _take_last_error()
            raise MediaError(f"an image could not be prepared for the model (code {rc})" + (f": {why}" if why else ""))
        return chunks

    def eval(self, Context ctx not None, Chunks chunks not None, int n_past=0, int seq_id=0, int n_batch=512,
             bint logits_last=True):
        """Evaluate ``chunks`` into ``ctx`` from position ``n_past`` of sequence ``seq_id``: text chunks
        decoded, image chunks encoded by the projector and their embeddings decoded. Returns the new
        n_past. With logits_last, the last token's logits are then readable (index -1)."""
        if ctx.model is not self.model:
            raise ValueError("the context belongs to another model than this projector's")
        cdef mtmd_context * c = self._c()
        cdef llama_context * lc = ctx._c()
        cdef const mtmd_input_chunks * cp = chunks._p()
        cdef llama_pos new_past = 0
        cdef int32_t rc
        with nogil:
            rc = mtmd_helper_eval_chunks(c, lc, cp, n_past, seq_id, n_batch, logits_last, &new_past)
        if rc != 0:
            why = _take_last_error()
            raise DecodeError(f"evaluating the prompt's media failed with code {rc}" + (f": {why}" if why else ""), rc)
        ctx._n_outputs = 1 if logits_last else 0
        return new_past

    def encode(self, Chunks chunks not None, size_t i):
        """Run the projector on media chunk ``i``: its embeddings, an owned float32 array of
        (n_tokens, the text model's input width), for ``decode`` now or later (a cache)."""
        cdef const mtmd_input_chunk * ch = chunks._chunk(i)
        if mtmd_input_chunk_get_type(ch) == MTMD_INPUT_CHUNK_TYPE_TEXT:
            raise ValueError(f"chunk {i} is text, not media")
        cdef mtmd_context * c = self._c()
        cdef int32_t rc
        with nogil:
            rc = mtmd_encode_chunk(c, ch)
        if rc != 0:
            why = _take_last_error()
            raise MediaError(f"the projector failed to encode the image (code {rc})" + (f": {why}" if why else ""))
        cdef size_t n = mtmd_input_chunk_get_n_tokens(ch)
        cdef size_t width = llama_model_n_embd_inp(self.model._p())
        out = np.empty((n, width), dtype=np.float32)
        cdef float[:, ::1] dst = out
        cdef float * src = mtmd_get_output_embd(c)
        if n and width:
            memcpy(&dst[0, 0], src, n * width * sizeof(float))
        return out

    def decode(self, Context ctx not None, Chunks chunks not None, size_t i, embd, int n_past, int seq_id=0,
               int n_batch=512):
        """Decode media chunk ``i``'s embeddings (``encode``'s array) into ``ctx`` at position ``n_past`` of
        sequence ``seq_id``, with the attention the model wants for media (non-causal for Gemma 3).
        Returns the new n_past. No output is kept (logits of the last decode are gone)."""
        if ctx.model is not self.model:
            raise ValueError("the context belongs to another model than this projector's")
        cdef const mtmd_input_chunk * ch = chunks._chunk(i)
        if mtmd_input_chunk_get_type(ch) == MTMD_INPUT_CHUNK_TYPE_TEXT:
            raise ValueError(f"chunk {i} is text, not media")
        cdef float[:, ::1] e = embd
        cdef size_t n = mtmd_input_chunk_get_n_tokens(ch)
        if <size_t> e.shape[0] != n or e.shape[1] != llama_model_n_embd_inp(self.model._p()):
            raise ValueError(f"embeddings of shape {tuple(embd.shape)} for a chunk of {n} tokens")
        cdef mtmd_context * c = self._c()
        cdef llama_context * lc = ctx._c()
        cdef llama_pos new_past = 0
        cdef int32_t rc
        with nogil:
            rc = mtmd_helper_decode_image_chunk(c, lc, ch, &e[0, 0], n_past, seq_id, n_batch, &new_past, NULL, NULL)
        ctx._n_outputs = 0
        if rc != 0:
            why = _take_last_error()
            raise DecodeError(f"decoding the image's embeddings failed with code {rc}" + (f": {why}" if why else ""), rc)
        return new_past


cdef class Bitmap:
    """A decoded image (libmtmd's mtmd_bitmap): its size and content hash (the id libmtmd gives it)."""

    cdef mtmd_bitmap * ptr

    def __cinit__(self):
        self.ptr = NULL

    @staticmethod
    cdef Bitmap _wrap(mtmd_bitmap * p):
        cdef Bitmap b = Bitmap.__new__(Bitmap)
        b.ptr = p
        return b

    def __dealloc__(self):
        if self.ptr != NULL:
            mtmd_bitmap_free(self.ptr)
            self.ptr = NULL

    cdef const mtmd_bitmap * _b(self) except NULL:
        if self.ptr == NULL:
            raise ValueError("bitmap is freed")
        return self.ptr

    @property
    def width(self):
        return mtmd_bitmap_get_nx(self._b())

    @property
    def height(self):
        return mtmd_bitmap_get_ny(self._b())

    @property
    def id(self):
        cdef const char * s = mtmd_bitmap_get_id(self._b())
        return s.decode() if s != NULL else ""


cdef class Chunks:
    """A tokenized prompt with media (libmtmd's mtmd_input_chunks); keeps its Projector alive.
    ``len()`` chunks; ``n_tokens`` and ``n_pos`` over all of them; ``kinds()`` and ``text_tokens(i)``."""

    cdef mtmd_input_chunks * ptr
    cdef readonly Projector projector

    def __cinit__(self):
        self.ptr = NULL

    def __dealloc__(self):
        if self.ptr != NULL:
            mtmd_input_chunks_free(self.ptr)
            self.ptr = NULL

    cdef const mtmd_input_chunks * _p(self) except NULL:
        if self.ptr == NULL:
            raise ValueError("chunks are freed")
        return self.ptr

    def __len__(self):
        return mtmd_input_chunks_size(self._p())

    @property
    def n_tokens(self):
        return mtmd_helper_get_n_tokens(self._p())

    @property
    def n_pos(self):
        return mtmd_helper_get_n_pos(self._p())

    def kinds(self):
        """Each chunk's kind: "text", "image" or "audio"."""
        names = {MTMD_INPUT_CHUNK_TYPE_TEXT: "text", MTMD_INPUT_CHUNK_TYPE_IMAGE: "image",
                 MTMD_INPUT_CHUNK_TYPE_AUDIO: "audio"}
        cdef const mtmd_input_chunks * p = self._p()
        return [names[mtmd_input_chunk_get_type(mtmd_input_chunks_get(p, i))] for i in range(len(self))]

    cdef const mtmd_input_chunk * _chunk(self, size_t i) except NULL:
        cdef const mtmd_input_chunks * p = self._p()
        if i >= mtmd_input_chunks_size(p):
            raise IndexError(f"chunk {i} of {len(self)}")
        return mtmd_input_chunks_get(p, i)

    def media(self, size_t i):
        """Media chunk ``i``'s (n_tokens, n_pos, id): its id is the hash of the image's bytes, so equal
        images share it."""
        cdef const mtmd_input_chunk * ch = self._chunk(i)
        cdef const char * s = mtmd_input_chunk_get_id(ch)
        return (mtmd_input_chunk_get_n_tokens(ch), mtmd_input_chunk_get_n_pos(ch),
                s.decode() if s != NULL else "")

    def text_tokens(self, size_t i):
        """The token ids of text chunk ``i`` ([] for a media chunk)."""
        cdef const mtmd_input_chunks * p = self._p()
        if i >= mtmd_input_chunks_size(p):
            raise IndexError(f"chunk {i} of {len(self)}")
        cdef size_t n = 0
        cdef const llama_token * toks = mtmd_input_chunk_get_tokens_text(mtmd_input_chunks_get(p, i), &n)
        return [toks[j] for j in range(n)] if toks != NULL else []
