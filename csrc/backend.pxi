# Process-wide set-up: logging, backend discovery (ggml's dynamic backends), device listing.
import os

from ggml cimport (ggml_backend_dev_t, ggml_backend_reg_t, ggml_backend_dev_props,
                   ggml_backend_dev_count, ggml_backend_dev_get, ggml_backend_dev_get_props,
                   ggml_backend_dev_backend_reg, ggml_backend_reg_name, ggml_backend_reg_count,
                   ggml_backend_reg_get,
                   ggml_backend_load, ggml_backend_load_all, ggml_backend_load_all_from_path,
                   GGML_BACKEND_DEVICE_TYPE_CPU, GGML_BACKEND_DEVICE_TYPE_GPU,
                   GGML_BACKEND_DEVICE_TYPE_IGPU, GGML_BACKEND_DEVICE_TYPE_ACCEL,
                   GGML_BACKEND_DEVICE_TYPE_META)
from llama cimport *

from pyollama.errors import NativeError

_DEVICE_TYPES = {GGML_BACKEND_DEVICE_TYPE_CPU: "cpu", GGML_BACKEND_DEVICE_TYPE_GPU: "gpu",
                 GGML_BACKEND_DEVICE_TYPE_IGPU: "igpu", GGML_BACKEND_DEVICE_TYPE_ACCEL: "accel",
                 GGML_BACKEND_DEVICE_TYPE_META: "meta"}

cdef str _s(const char * p):
    return (<bytes> p).decode("utf-8", "replace") if p != NULL else ""


def backend_dir():
    """Where the backend modules (libggml-cpu*.so, libggml-cuda.so, …) are loaded from:
    $PYOLLAMA_BACKEND_DIR, else lib/ beside the installed extension, else the build folder the
    extension was linked in (a development checkout)."""
    env = os.environ.get("PYOLLAMA_BACKEND_DIR")
    if env:
        return env
    here = os.path.join(os.path.dirname(__file__), "lib")
    return here if os.path.isdir(here) else os.path.dirname(os.path.realpath(__file__))


_backend_failures = []
_NOT_BACKENDS = ("libggml-base.", "libggml-cpu")   # the base library; CPU variants not picked are not failures


def backend_failures():
    """Backend modules found but not loaded: [(path, reason)] (e.g. the CUDA backend on a machine
    without an NVIDIA driver)."""
    return list(_backend_failures)


def _find_load_failures(str folder):
    """ggml loads backends silently; for each module in ``folder`` whose backend did not register,
    ask the dynamic loader why (dlopen's message), or say it found no device."""
    import ctypes
    registered = {_s(ggml_backend_reg_name(ggml_backend_reg_get(i))).lower() for i in range(ggml_backend_reg_count())}
    out = []
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return out
    for name in names:
        if not (name.startswith("libggml-") and name.endswith(".so")) or name.startswith(_NOT_BACKENDS):
            continue
        backend = name[len("libggml-"):-len(".so")]
        if backend.lower() in registered:
            continue
        path = os.path.join(folder, name)
        try:
            ctypes.CDLL(path, mode=os.RTLD_LAZY | os.RTLD_LOCAL)
        except OSError as e:
            out.append((path, str(e).replace(path + ": ", "")))
        else:
            out.append((path, "it loads but found no usable device"))
    return out


def _load_pinned(str folder, str variant):
    """``PYOLLAMA_CPU_VARIANT``: this CPU variant of a build with all of them (the same sums on every machine
    that can run it, or a way around a variant that faults on a machine whose CPU advertises more than it
    runs), then every other backend module in ``folder``, as ggml would load them."""
    import ctypes
    try:
        names = sorted(os.listdir(folder))
    except OSError as e:
        raise NativeError(f"cannot list the backend folder {folder!r}: {e.strerror or e}") from None
    have = [n[len("libggml-cpu-"):-len(".so")] for n in names if n.startswith("libggml-cpu-") and n.endswith(".so")]
    if variant not in have:
        raise NativeError(f"PYOLLAMA_CPU_VARIANT={variant!r} is not in this build ({folder}): "
                          + (f"it has {', '.join(have)}" if have else
                             "it was built for this machine only (PYOLLAMA_CPU_VARIANTS=native)"))
    cpu = os.path.join(folder, f"libggml-cpu-{variant}.so")
    score = ctypes.CDLL(cpu, mode=os.RTLD_LAZY | os.RTLD_LOCAL).ggml_backend_score
    score.restype = ctypes.c_int
    if score() <= 0:
        raise NativeError(f"PYOLLAMA_CPU_VARIANT={variant!r}: this CPU lacks instructions that variant needs")
    cdef bytes p
    cdef const char * cp
    for name in [os.path.basename(cpu)] + [n for n in names if n.startswith("libggml-") and n.endswith(".so")
                                           and not n.startswith(_NOT_BACKENDS)]:
        p = os.path.join(folder, name).encode()
        cp = p
        with nogil:
            ggml_backend_load(cp)           # a module that does not register is reported by the caller


def _init():
    _install_log_callback()
    with nogil:
        llama_backend_init()
    path = backend_dir().encode()
    cdef const char * cpath = path
    variant = os.environ.get("PYOLLAMA_CPU_VARIANT", "").strip()
    if variant:
        _load_pinned(backend_dir(), variant)
    else:
        with nogil:
            ggml_backend_load_all_from_path(cpath)
    _backend_failures[:] = _find_load_failures(backend_dir())
    serving = ", ".join(sorted({_s(ggml_backend_reg_name(ggml_backend_reg_get(i)))
                                for i in range(ggml_backend_reg_count())})) or "none"
    for failed, why in _backend_failures:
        name = os.path.basename(failed)[len("libggml-"):-len(".so")].upper()
        _native_logger.warning("%s backend not loaded (%s): %s; %s serves", name, failed, why, serving)
    if ggml_backend_dev_count() == 0:
        with nogil:
            ggml_backend_load_all()   # next to the executable / working directory
    if ggml_backend_dev_count() == 0:
        raise NativeError(f"no ggml backend could be loaded from {backend_dir()!r}; "
                          "reinstall pyollama or set PYOLLAMA_BACKEND_DIR to the folder holding libggml-cpu*.so")


def devices():
    """Every device ggml found: name, description, type, backend, free/total memory in bytes."""
    cdef ggml_backend_dev_props props
    cdef ggml_backend_dev_t dev
    out = []
    for i in range(ggml_backend_dev_count()):
        dev = ggml_backend_dev_get(i)
        with nogil:
            ggml_backend_dev_get_props(dev, &props)
        out.append({
            "name": _s(props.name),
            "description": _s(props.description),
            "type": _DEVICE_TYPES.get(props.type, "unknown"),
            "backend": _s(ggml_backend_reg_name(ggml_backend_dev_backend_reg(dev))),
            "memory_free": props.memory_free,
            "memory_total": props.memory_total,
            "device_id": _s(props.device_id) or None,
        })
    return out


def system_info():
    """libllama's feature summary for the loaded backends (the line llama-bench prints)."""
    return _s(llama_print_system_info())


def supports(str what):
    """One of 'mmap', 'mlock', 'gpu_offload', 'rpc'."""
    if what == "mmap":
        return bool(llama_supports_mmap())
    if what == "mlock":
        return bool(llama_supports_mlock())
    if what == "gpu_offload":
        return bool(llama_supports_gpu_offload())
    if what == "rpc":
        return bool(llama_supports_rpc())
    raise ValueError(f"unknown capability {what!r}; one of gpu_offload, mlock, mmap, rpc")


def max_parallel_sequences():
    return llama_max_parallel_sequences()


def time_us():
    return llama_time_us()


_init()
