"""The scan loop in Cython: drives the loop body's Cython VM step by step.

It does what ``ScanThunk._python_loop`` (vmc/scan/thunk.py) does, which
defines the semantics, without Python bytecode per step: sequence rows are
made as numpy views through the C API, the inputs are stored straight into
the VM's registers (``VM._load_args``), the program runs through
``VM._execute``, and each traced output is copied into its trace buffer with
``memmove`` when it is contiguous and of the trace's dtype (else through
``LoopState``, which also allocates a trace on its first step and raises the
shape errors). The rings of previous values hold views of the trace rows
(see ``LoopState``). Registers are not cleared between steps, only the
outputs' (so that thunks may reuse buffers nothing else holds); all at the end.
"""
cimport numpy as cnp
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.ref cimport Py_DECREF, Py_INCREF, PyObject
from libc.string cimport memmove

from vmc._vm cimport VM, Frame

import numpy as np

cnp.import_array()

cdef extern from "Python.h":
    int _is_true "PyObject_IsTrue"(PyObject *o) noexcept
    void _xdecref "Py_XDECREF"(PyObject *o) noexcept

cdef extern from "numpy/arrayobject.h":
    # Steals the reference to descr; NULL with an exception set on failure.
    object _new_from_descr "PyArray_NewFromDescr"(
        void *subtype, void *descr, int nd, cnp.npy_intp *dims,
        cnp.npy_intp *strides, void *data, int flags, PyObject *obj)


def can_drive(vm):
    """Whether ``run_loop`` can drive ``vm`` (a Cython VM)."""
    return isinstance(vm, VM)


cdef int _reraise() except -1:
    """Propagate the exception a noexcept VM method left set."""
    return -1


cdef object _row(cnp.ndarray a, Py_ssize_t i):
    """``a[i, ...]`` as an ndarray view (a 0-d array for a vector), built
    through the C API."""
    cdef int nd = cnp.PyArray_NDIM(a) - 1
    cdef char *data = cnp.PyArray_BYTES(a) + i * cnp.PyArray_STRIDES(a)[0]
    cdef PyObject *descr = <PyObject*>cnp.PyArray_DESCR(a)
    Py_INCREF(<object>descr)          # stolen by PyArray_NewFromDescr
    view = _new_from_descr(
        <void*>np.ndarray, <void*>descr, nd, cnp.PyArray_DIMS(a) + 1,
        cnp.PyArray_STRIDES(a) + 1, <void*>data,
        cnp.PyArray_FLAGS(a) & cnp.NPY_ARRAY_WRITEABLE, NULL)
    Py_INCREF(a)
    cnp.PyArray_SetBaseObject(view, a)      # steals the reference to a
    return view


cdef inline bint _fast_copy(cnp.ndarray buf, Py_ssize_t idx, object v):
    """Copy ``v`` into ``buf[idx]`` with memmove when that is exactly right:
    an ndarray of buf's dtype and row shape, C-contiguous, buf C-contiguous."""
    cdef cnp.ndarray a
    cdef int k, nd
    if type(v) is not np.ndarray:
        return False
    a = <cnp.ndarray>v
    nd = cnp.PyArray_NDIM(buf) - 1
    if cnp.PyArray_NDIM(a) != nd or cnp.PyArray_TYPE(a) != cnp.PyArray_TYPE(buf):
        return False
    if not cnp.PyArray_IS_C_CONTIGUOUS(a) or not cnp.PyArray_IS_C_CONTIGUOUS(buf):
        return False
    for k in range(nd):
        if cnp.PyArray_DIMS(a)[k] != cnp.PyArray_DIMS(buf)[k + 1]:
            return False
    if not cnp.PyArray_ISNOTSWAPPED(a):
        return False
    # memmove: an output may be the very row it is copied to (an identity step)
    memmove(cnp.PyArray_BYTES(buf) + idx * cnp.PyArray_STRIDES(buf)[0],
            cnp.PyArray_BYTES(a), cnp.PyArray_NBYTES(a))
    return True


cdef list _failed_inputs(VM vm, Frame *f):
    """(shape, dtype) of the failing instruction's inputs, read from the
    registers before they are cleared."""
    cdef Py_ssize_t pc = f.failed_pc
    cdef int k
    cdef PyObject *r
    out = []
    if 0 <= pc < vm.n_instr:
        for k in range(vm.instrs[pc].n_in):
            r = f.regs[vm.instrs[pc].ins[k]]
            v = <object>r if r != NULL else None
            out.append((np.shape(v), getattr(v, "dtype", type(v).__name__)))
    return out


cdef class _Layout:
    """What one call's loop needs, unpacked once from the thunk and LoopState."""
    cdef VM vm
    cdef object thunk, state
    cdef Py_ssize_t n_seqs, n_rec, n_nit, n_carry, n_in, n_out, n_taps, carry_base
    cdef bint until, reverse     # reverse: steps run from n - 1 down to 0
    cdef list seq_used, lags, sizes, traces, rings, carries
    cdef Py_ssize_t *taps        # (input position, output k, tap) per output tap
    cdef PyObject **argv         # the step's inputs (borrowed from the args list)

    def __cinit__(self, thunk, state, Py_ssize_t n_in):
        info = thunk.info
        self.vm, self.thunk, self.state = thunk.vm, thunk, state
        self.n_seqs, self.n_rec, self.n_nit = info.n_seqs, info.n_rec, info.n_nit
        self.n_carry, self.n_in, self.n_out = info.n_carry, n_in, self.vm.n_outputs
        self.until, self.reverse = info.until, info.reverse
        self.seq_used, self.lags = list(thunk.seq_used), list(thunk.lags)
        self.sizes, self.traces = state.sizes, state.traces
        self.rings, self.carries = state.rings, state.carries
        flat = []
        p = self.n_seqs
        for k, ks in enumerate(info.rec_taps):
            for tap in ks:
                flat += [p, k, tap]
                p += 1
        self.carry_base = p
        self.n_taps = len(flat) // 3
        self.taps = <Py_ssize_t*>PyMem_Malloc((len(flat) + 1) * sizeof(Py_ssize_t))
        self.argv = <PyObject**>PyMem_Malloc((n_in + 1) * sizeof(PyObject*))
        if self.taps == NULL or self.argv == NULL:
            raise MemoryError()
        for j in range(len(flat)):
            self.taps[j] = flat[j]

    def __dealloc__(self):
        PyMem_Free(self.taps)
        PyMem_Free(self.argv)


cdef int _set_inputs(_Layout L, list seqs, list args, Py_ssize_t i) except -1:
    """Step ``i``'s inputs into ``args`` (and their pointers into ``L.argv``)."""
    cdef Py_ssize_t j, k, lag
    for j in range(L.n_seqs):
        if L.seq_used[j]:
            args[j] = _row(<cnp.ndarray>seqs[j], i)
    for j in range(L.n_taps):
        k = L.taps[3 * j + 1]
        lag = <Py_ssize_t>L.lags[k]
        # tap >= -lag, and C's % of a negative number is negative
        args[L.taps[3 * j]] = (<list>L.rings[k])[(i + L.taps[3 * j + 2] + lag) % lag]
    for j in range(L.n_carry):
        args[L.carry_base + j] = L.carries[j]
    for j in range(L.n_in):
        L.argv[j] = <PyObject*>args[j]
    return 0


cdef inline object _output(VM vm, Frame *f, Py_ssize_t k):
    cdef PyObject *r = f.regs[vm.output_regs[k]]
    return <object>r if r != NULL else None


cdef int _store_outputs(_Layout L, Frame *f, Py_ssize_t i) except -1:
    """Copy step ``i``'s traced outputs into their traces, update the rings
    and carries; 1 when ``until`` says stop, else 0."""
    cdef VM vm = L.vm
    cdef Py_ssize_t k, lag, slot
    cdef int stop = 0
    cdef PyObject *r
    cdef cnp.ndarray buf
    for k in range(L.n_rec):
        v = _output(vm, f, k)
        lag = <Py_ssize_t>L.lags[k]
        buf = <cnp.ndarray>L.traces[k]
        slot = (i + lag) % <Py_ssize_t>L.sizes[k]
        if not _fast_copy(buf, slot, v):
            L.state.write_rec(k, i, v)
        (<list>L.rings[k])[i % lag] = _row(buf, slot)
    for k in range(L.n_rec, L.n_rec + L.n_nit):
        v = _output(vm, f, k)
        if L.traces[k] is None or not _fast_copy(<cnp.ndarray>L.traces[k],
                                                 i % <Py_ssize_t>L.sizes[k], v):
            L.state.write_nit(k - L.n_rec, i, v)
    for k in range(L.n_carry):
        L.carries[k] = _output(vm, f, L.n_rec + L.n_nit + k)
    if L.until:
        r = f.regs[vm.output_regs[L.n_out - 1]]
        if r != NULL:
            stop = _is_true(r)
            if stop < 0:
                _reraise()
    # Release the outputs' registers: a thunk may then reuse a buffer that
    # only it still holds.
    for k in range(L.n_out):
        r = f.regs[vm.output_regs[k]]
        f.regs[vm.output_regs[k]] = NULL
        _xdecref(r)
    return stop


def run_loop(thunk, state, list seqs, list args, Py_ssize_t n):
    """Run up to ``n`` steps; return the number run (fewer after ``until``).
    The steps run on a frame of the body's VM taken for this loop, so loops
    of one scan running at once in several threads do not meet."""
    cdef _Layout L = _Layout(thunk, state, len(args))
    cdef VM vm = L.vm
    cdef Py_ssize_t s, i
    cdef Frame *f = vm._take_frame()
    try:
        for s in range(n):
            i = n - 1 - s if L.reverse else s      # step i reads and writes entry i
            _set_inputs(L, seqs, args, i)
            f.failed_pc = -1
            vm._load_args(f, L.argv, False)     # cannot fail without checks
            if vm._execute(f) < 0:
                try:
                    _reraise()
                except Exception as exc:
                    vm.failed_pc = f.failed_pc
                    raise thunk._step_error(exc, i, _failed_inputs(vm, f)) from None
            if _store_outputs(L, f, i):
                return i + 1
        return n
    finally:
        vm._clear_regs(f)
        vm._give_frame(f)
        for s in range(len(args)):
            args[s] = None
