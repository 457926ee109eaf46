# Zero-copy numpy views of native memory. A view keeps its owner (a Context, a candidate array)
# alive; the memory itself is only valid until the owner next changes it (e.g. the next decode).
from cpython.buffer cimport PyBUF_FORMAT, PyBUF_WRITABLE
import numpy as np


cdef class NativeArray:
    """Buffer-protocol window on native memory; `np.asarray(view)` shares it without copying."""

    def __getbuffer__(self, Py_buffer * buf, int flags):
        if (flags & PyBUF_WRITABLE) and self.readonly:
            raise BufferError("this native view is read-only")
        cdef Py_ssize_t n = self.shape[0] if self.ndim == 1 else self.shape[0] * self.shape[1]
        buf.buf = self.data
        buf.obj = self
        buf.len = n * self.itemsize
        buf.readonly = self.readonly
        buf.itemsize = self.itemsize
        buf.format = <char *> self.fmt if (flags & PyBUF_FORMAT) else NULL
        buf.ndim = self.ndim
        buf.shape = self.shape
        buf.strides = self.strides
        buf.suboffsets = NULL
        buf.internal = NULL

    def __releasebuffer__(self, Py_buffer * buf):
        pass


cdef object _view(object owner, void * data, bytes fmt, Py_ssize_t itemsize, Py_ssize_t n,
                  Py_ssize_t stride=0, Py_ssize_t rows=0, bint readonly=False):
    """A numpy array over `data`: 1-D of n items (optionally strided), or rows × n when rows > 0."""
    cdef NativeArray v = NativeArray.__new__(NativeArray)
    v.owner = owner
    v.data = <char *> data
    v.itemsize = itemsize
    v.fmt = fmt
    v.readonly = readonly
    if rows > 0:
        v.ndim = 2
        v.shape[0] = rows
        v.shape[1] = n
        v.strides[0] = n * itemsize
        v.strides[1] = itemsize
    else:
        v.ndim = 1
        v.shape[0] = n
        v.strides[0] = stride if stride else itemsize
    return np.asarray(v)


cdef inline object _floats(object owner, float * data, Py_ssize_t n, Py_ssize_t rows=0):
    return _view(owner, data, b"f", sizeof(float), n, 0, rows)
