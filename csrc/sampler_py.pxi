# A sampler implemented in Python: libllama calls back into an object whose apply() receives the
# candidates as numpy views it may modify. Costs a Python call per token over the candidate set,
# so it is opt-in and kept off the server's hot path.
from cpython.ref cimport Py_INCREF, Py_DECREF

_cb_state = threading.local()


cdef void _set_pending(BaseException e) noexcept:
    if getattr(_cb_state, "error", None) is None:
        _cb_state.error = e


def _raise_pending_callback_error():
    e = getattr(_cb_state, "error", None)
    if e is not None:
        _cb_state.error = None
        raise e


cdef const char * _py_name(const llama_sampler * smpl) noexcept nogil:
    return "python"


cdef void _py_apply(llama_sampler * smpl, llama_token_data_array * cur_p) noexcept with gil:
    cdef object obj = <object> smpl.ctx
    cdef Candidates c = Candidates.__new__(Candidates)
    c.arr = cur_p[0]          # borrowed: the views are valid during this call only
    try:
        fn = getattr(obj, "apply", obj)
        fn(c)
        cur_p.size = c.arr.size
        cur_p.selected = c.arr.selected
        cur_p.sorted = c.arr.sorted
    except BaseException as e:
        _set_pending(e)
    finally:
        c.arr.data = NULL
        c.arr.size = 0


cdef void _py_accept(llama_sampler * smpl, llama_token token) noexcept with gil:
    obj = <object> smpl.ctx
    try:
        fn = getattr(obj, "accept", None)
        if fn is not None:
            fn(token)
    except BaseException as e:
        _set_pending(e)


cdef void _py_reset(llama_sampler * smpl) noexcept with gil:
    obj = <object> smpl.ctx
    try:
        fn = getattr(obj, "reset", None)
        if fn is not None:
            fn()
    except BaseException as e:
        _set_pending(e)


cdef llama_sampler * _py_clone(const llama_sampler * smpl) noexcept with gil:
    obj = <object> smpl.ctx
    try:
        fn = getattr(obj, "clone", None)
        new = fn() if fn is not None else obj
    except BaseException as e:
        _set_pending(e)
        new = obj
    Py_INCREF(new)
    return llama_sampler_init(&_py_iface, <void *> new)


cdef void _py_free(llama_sampler * smpl) noexcept with gil:
    if smpl.ctx != NULL:
        Py_DECREF(<object> smpl.ctx)
        smpl.ctx = NULL


cdef llama_sampler_i _py_iface
_py_iface.name = _py_name
_py_iface.accept = _py_accept
_py_iface.apply = _py_apply
_py_iface.reset = _py_reset
_py_iface.clone = _py_clone
_py_iface.free = _py_free
_py_iface.backend_init = NULL
_py_iface.backend_accept = NULL
_py_iface.backend_apply = NULL
_py_iface.backend_set_input = NULL
_py_iface.backend_reset = NULL
_py_iface.copy_state = NULL


def python_sampler(obj):
    """Wrap a Python sampler: a callable `apply(candidates)`, or an object with `apply(candidates)`
    and optional `accept(token)`, `reset()`, `clone()`. apply() gets a Candidates whose `ids`,
    `logits` and `p` numpy views it may modify in place; it may shrink `size`, set `selected`
    (to choose a token) and `sorted`. Exceptions surface from the next sample()/apply() call."""
    if not callable(getattr(obj, "apply", obj)):
        raise TypeError("python_sampler needs a callable or an object with an apply(candidates) method")
    Py_INCREF(obj)
    cdef llama_sampler * p = llama_sampler_init(&_py_iface, <void *> obj)
    return Sampler._wrap(p, "python")
