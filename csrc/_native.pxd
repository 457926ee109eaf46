# Declarations of the extension types in _native.pyx (their C-level attributes and methods), so
# the .pxi files can refer to each other in any order and other Cython code can cimport them.
from libc.stdint cimport int32_t, int64_t, uint32_t
from llama cimport (llama_model, llama_vocab, llama_context, llama_memory_t, llama_batch,
                    llama_sampler, llama_adapter_lora, llama_token_data_array,
                    llama_model_tensor_buft_override)


cdef class NativeArray:
    cdef object owner
    cdef char * data
    cdef Py_ssize_t shape[2]
    cdef Py_ssize_t strides[2]
    cdef int ndim
    cdef Py_ssize_t itemsize
    cdef bytes fmt
    cdef bint readonly


cdef class Fit:
    cdef float * _split
    cdef llama_model_tensor_buft_override * _overrides
    cdef readonly str status
    cdef readonly int n_gpu_layers
    cdef readonly int n_ctx
    cdef readonly list tensor_split
    cdef readonly int n_overrides


cdef class Model:
    cdef llama_model * ptr
    cdef readonly str path
    cdef readonly bint vocab_only
    cdef object _progress
    cdef object _progress_error
    cdef int _children
    cdef dict _meta
    cdef object _fit
    cdef llama_model * _p(self) except NULL


cdef class LoraAdapter:
    cdef llama_adapter_lora * ptr
    cdef readonly Model model
    cdef readonly str path
    cdef _free(self)


cdef class Vocab:
    cdef readonly Model model
    cdef const llama_vocab * ptr
    cdef readonly int n_tokens
    @staticmethod
    cdef Vocab _of(Model model)
    cdef const llama_vocab * _v(self) except NULL
    cdef int _check(self, long token) except -1


cdef class Context:
    cdef llama_context * ptr
    cdef readonly Model model
    cdef volatile int _abort_flag
    cdef readonly int n_vocab
    cdef int _n_outputs
    cdef readonly bint embeddings
    cdef object _adapters
    cdef bint _swa_full
    cdef _free(self)
    cdef int _seq(self, int seq_id) except -1
    cdef llama_context * _c(self) except NULL
    cdef int _check_batch(self, Batch batch) except -1


cdef class KVCache:
    cdef readonly Context context
    cdef llama_memory_t mem
    @staticmethod
    cdef KVCache _of(Context ctx)
    cdef llama_memory_t _m(self) except? NULL
    cdef int _seq(self, int seq_id, bint allow_all=*) except -1


cdef class Batch:
    cdef llama_batch b
    cdef readonly int capacity
    cdef readonly int n_seq_max
    cdef readonly int embd
    cdef readonly int n_outputs
    cdef int _room(self, Py_ssize_t n) except -1
    cdef int _place(self, int i, int pos, seq_ids, bint output) except -1


cdef class Sampler:
    cdef llama_sampler * ptr
    @staticmethod
    cdef Sampler _wrap(llama_sampler * p, str what)
    cdef llama_sampler * _s(self) except NULL


cdef class SamplerChain(Sampler):
    pass


cdef class Candidates:
    cdef llama_token_data_array arr
    cdef bint owned
    cdef size_t cap


cdef class Drafter:
    cdef void * ptr
    cdef readonly str types
    cdef readonly int n_seq
    cdef readonly int size_n
    cdef readonly int size_m
    cdef void * _d(self, int seq) except NULL
    cdef _tokens(self, int seq, tokens, bint begin)
