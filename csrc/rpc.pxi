# ggml's RPC backend (libggml-rpc.so, loaded like any other backend): workers that serve this
# machine's devices, and remote workers registered as devices of this process. Its functions are
# reached through the registry (ggml_backend_reg_get_proc_address), as the module is loaded at run time.
#
# Upstream aborts the process when a worker cannot be reached or stops answering mid-command, so a
# caller checks a worker first (pyollama.rpc.probe) and uses remote devices only in a child process.

cdef extern from "ggml-rpc.h":
    int RPC_PROTO_MAJOR_VERSION
    int RPC_PROTO_MINOR_VERSION
    int RPC_PROTO_PATCH_VERSION
    int GGML_RPC_MAX_SERVERS

ctypedef ggml_backend_reg_t (*_rpc_add_server_fn)(const char * endpoint) noexcept nogil
ctypedef void (*_rpc_start_server_fn)(const char * endpoint, const char * cache_dir, size_t n_threads,
                                      size_t n_devices, ggml_backend_dev_t * devices) noexcept nogil

RPC_PROTOCOL = (RPC_PROTO_MAJOR_VERSION, RPC_PROTO_MINOR_VERSION, RPC_PROTO_PATCH_VERSION)
_rpc_registered = {}        # endpoint -> device names, in the order the worker lists them


cdef void * _rpc_proc(const char * name) except NULL:
    cdef ggml_backend_reg_t reg = ggml_backend_reg_by_name(b"RPC")
    if reg == NULL:
        raise NativeError("ggml's RPC backend is not loaded (libggml-rpc.so is missing from "
                          f"{backend_dir()!r}; this build has GGML_RPC off)")
    cdef void * fn = ggml_backend_reg_get_proc_address(reg, name)
    if fn == NULL:
        raise NativeError(f"ggml's RPC backend lacks {name.decode()}")
    return fn


def rpc_add_server(str endpoint):
    """Register the worker at ``endpoint`` (host:port): its devices become devices of this process
    (named RPC0, RPC1, … in registration order; the description is the endpoint). Returns their
    names. Idempotent. Contacts the worker; upstream aborts the process if it does not answer."""
    if endpoint in _rpc_registered:
        return list(_rpc_registered[endpoint])
    if len(_rpc_registered) >= GGML_RPC_MAX_SERVERS:
        raise NativeError(f"at most {GGML_RPC_MAX_SERVERS} RPC workers can be registered")
    cdef _rpc_add_server_fn add = <_rpc_add_server_fn> _rpc_proc(b"ggml_backend_rpc_add_server")
    cdef bytes ep = endpoint.encode()
    cdef const char * cep = ep
    cdef ggml_backend_reg_t reg
    with nogil:
        reg = add(cep)
    if reg == NULL:
        raise NativeError(f"RPC worker {endpoint} serves no devices")
    with nogil:
        ggml_backend_register(reg)
    names = [_s(ggml_backend_dev_name(ggml_backend_reg_dev_get(reg, i)))
             for i in range(ggml_backend_reg_dev_count(reg))]
    _rpc_registered[endpoint] = names
    return list(names)


def rpc_serve(str endpoint, devices, size_t n_threads, cache_dir=None):
    """Serve ``devices`` (names, e.g. ["CPU"]) to RPC clients at ``endpoint`` (host:port); blocks for
    good (one client at a time, as upstream's rpc-server). Returns only if the socket cannot be
    bound or a backend cannot start (upstream prints why)."""
    if not devices:
        raise ValueError("rpc_serve needs at least one device")
    cdef _rpc_start_server_fn start = <_rpc_start_server_fn> _rpc_proc(b"ggml_backend_rpc_start_server")
    cdef ggml_backend_dev_t * devs = _device_list(devices)
    cdef bytes ep = endpoint.encode()
    cdef bytes cd = os.fsencode(cache_dir) if cache_dir else b""
    cdef const char * cep = ep
    cdef const char * ccd = <const char *> cd if cache_dir else NULL
    cdef size_t n = len(devices)
    try:
        with nogil:
            start(cep, ccd, n_threads, n, devs)
    finally:
        free(devs)
