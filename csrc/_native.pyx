# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, embedsignature=True
"""pyollama._native — Cython bindings over the pinned libllama/ggml.

Mechanism only: thin extension types that each own one C pointer (Model, Context, Batch, Sampler,
LoraAdapter), views that keep their owner alive (Vocab, KVCache, logits/embedding arrays), and
every blocking call inside `with nogil`. Policy (options, generation loops, scheduling) lives in
`pyollama.engine` and above.

Threading: a Model and its Vocab may be used from any thread (tokenization is thread-safe
upstream). A Context, its KVCache, a Batch and a Sampler belong to one thread at a time; only
`Context.abort()` may be called from another thread.
"""
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport malloc, calloc, realloc, free
from libc.string cimport memcpy, memset, strcmp, strncpy
from libcpp cimport bool as cbool
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from ggml cimport *
from llama cimport *

include "log.pxi"
include "backend.pxi"
include "views.pxi"
include "model.pxi"
include "vocab.pxi"
include "batch.pxi"
include "context.pxi"
include "sampler.pxi"
include "sampler_py.pxi"
include "quantize.pxi"
include "grammar.pxi"
include "memplan.pxi"
include "drafter.pxi"
include "rpc.pxi"
include "mtmd.pxi"
