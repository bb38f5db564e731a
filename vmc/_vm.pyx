"""The Cython VM: executes a ``vmc.program.Program``.

It means exactly what ``vmc.compile.pyvm.PyVM`` means (that file is the
definition); this one is fast. The instruction arrays are copied into C
structs at construction; the hot loop touches only those structs, the
register file (a C array of ``PyObject*``) and the thunks' entry points.
C thunks are called through their function pointer, Python thunks through
``PyObject_Vectorcall`` on a stack of borrowed register pointers.

Nothing from vmc is imported: the Program is read through its attributes.
``__call__`` is the whole call path of a compiled function (argument checks,
run, updates, outputs); ``vmc.compile`` subclasses VM in Python and overrides
``_bind`` (keyword and default arguments) and ``_handle_error`` (messages).
"""
cimport cython
from cpython.mem cimport PyMem_Calloc, PyMem_Free, PyMem_Malloc
from cpython.pycapsule cimport PyCapsule_GetPointer, PyCapsule_IsValid
from cpython.ref cimport PyObject, PyTypeObject
from libc.stdint cimport int64_t
from libc.string cimport memset
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

import numpy as np

# Raw C-API declarations: the noexcept helpers below check results themselves,
# so nothing here may carry a Cython exception clause.
cdef extern from "Python.h":
    size_t PY_VECTORCALL_ARGUMENTS_OFFSET
    PyObject *_vectorcall "PyObject_Vectorcall"(
        PyObject *fn, PyObject **args, size_t nargsf, PyObject *kwnames) noexcept
    void _incref "Py_INCREF"(PyObject *o) noexcept
    void _decref "Py_DECREF"(PyObject *o) noexcept
    void _xincref "Py_XINCREF"(PyObject *o) noexcept
    void _xdecref "Py_XDECREF"(PyObject *o) noexcept
    int _is_true_slow "PyObject_IsTrue"(PyObject *o) noexcept
    PyObject *_err_occurred "PyErr_Occurred"() noexcept
    void _err_set "PyErr_SetString"(PyObject *exc, const char *msg) noexcept
    PyObject *_err_format "PyErr_Format"(PyObject *exc, const char *fmt, ...) noexcept
    PyTypeObject *_type_of "Py_TYPE"(PyObject *o) noexcept
    PyObject *_tuple_item "PyTuple_GET_ITEM"(PyObject *t, Py_ssize_t i) noexcept
    Py_ssize_t _tuple_size "PyTuple_GET_SIZE"(PyObject *t) noexcept
    PyObject *_list_new "PyList_New"(Py_ssize_t n) noexcept
    PyObject *_list_item "PyList_GET_ITEM"(PyObject *l, Py_ssize_t i) noexcept
    void _list_set "PyList_SET_ITEM"(PyObject *l, Py_ssize_t i, PyObject *v) noexcept
    Py_ssize_t _list_size "PyList_GET_SIZE"(PyObject *l) noexcept
    PyObject *_seq_fast "PySequence_Fast"(PyObject *o, const char *msg) noexcept
    Py_ssize_t _seq_fast_size "PySequence_Fast_GET_SIZE"(PyObject *o) noexcept
    PyObject **_seq_fast_items "PySequence_Fast_ITEMS"(PyObject *o) noexcept
    Py_ssize_t _vectorcall_nargs "PyVectorcall_NARGS"(size_t nargsf) noexcept
    unsigned long Py_TPFLAGS_HAVE_VECTORCALL
    ctypedef struct _TypeSlots "PyTypeObject":
        Py_ssize_t tp_vectorcall_offset
        unsigned long tp_flags
        void *tp_call

# Just enough of numpy's C API for the argument fast path.
cdef extern from "numpy/arrayobject.h":
    ctypedef Py_ssize_t npy_intp
    ctypedef struct PyArrayObject:
        pass
    ctypedef struct PyArray_Descr:
        char byteorder
        int type_num
    PyTypeObject PyArray_Type
    int NPY_CLONGDOUBLE
    int NPY_ARRAY_OWNDATA
    int _np_ndim "PyArray_NDIM"(PyArrayObject *a) noexcept
    npy_intp *_np_dims "PyArray_DIMS"(PyArrayObject *a) noexcept
    int _np_flags "PyArray_FLAGS"(PyArrayObject *a) noexcept
    npy_intp _np_nbytes "PyArray_NBYTES"(PyArrayObject *a) noexcept
    bint _np_check "PyArray_Check"(PyObject *o) noexcept
    PyArray_Descr *_np_descr "PyArray_DESCR"(PyArrayObject *a) noexcept
    bint _np_native "PyArray_ISNBO"(char byteorder) noexcept
    int _import_array() except -1

_import_array()

cdef extern from "pythread.h":
    unsigned long PyThread_get_thread_ident() noexcept nogil

_DTYPES = {np.dtype(c).num: str(np.dtype(c)) for c in np.typecodes["All"]}

# The fields of TraceEvent (_vm.pxd), all int64: VM.trace reads the buffer as this.
TRACE_EVENT = np.dtype([("pc", np.int64), ("t0", np.int64), ("t1", np.int64),
                        ("nbytes", np.int64), ("live", np.int64), ("type_num", np.int64),
                        ("ndim", np.int64), ("dims", np.int64, (4,))])


def now_ns():
    """The VM's clock (CLOCK_MONOTONIC, ns): the trace's timestamps."""
    return _now_ns()

# Instruction kinds, as in vmc/program.py (not imported: see module doc).
cdef enum:
    THUNK = 0
    JUMP_IF_FALSE = 1
    JUMP = 2
    MOVE = 3


# What profiling notes per register (see _note_outputs): the numpy type number
# (-1: not an array), the most bytes a thunk newly allocated for it, the rank,
# and the first REG_DIMS sizes of the last value written.
cdef enum:
    REG_DIMS = 8
    REG_INFO = 3 + REG_DIMS


# ---------------------------------------------------------------- hot helpers

cdef inline int64_t _now_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec


cdef inline void _setreg(PyObject **regs, int r, PyObject *v) noexcept:
    """Store the new reference ``v`` into ``regs[r]``, releasing the old value."""
    cdef PyObject *old = regs[r]
    regs[r] = v
    _xdecref(old)


cdef inline int _truth(PyObject *v) noexcept:
    """1, 0, or -1 with an exception set; an empty register reads as None."""
    if v == NULL or v == <PyObject*>None or v == <PyObject*>False:
        return 0
    if v == <PyObject*>True:
        return 1
    return _is_true_slow(v)


cdef int _unpack(const Instr *ins, PyObject **regs, PyObject *res) noexcept:
    """Store the values of a multi-output Python thunk's result (stolen)."""
    cdef PyObject *seq = _seq_fast(res, "a thunk with several outputs must return a tuple")
    cdef PyObject **items
    cdef Py_ssize_t k, n
    _decref(res)
    if seq == NULL:
        return -1
    n = _seq_fast_size(seq)
    if n != ins.n_out:
        _decref(seq)
        _err_format(<PyObject*>ValueError,
                    "thunk returned %zd values for %d outputs", n, ins.n_out)
        return -1
    items = _seq_fast_items(seq)
    for k in range(n):
        _incref(items[k])
        _setreg(regs, ins.outs[k], items[k])
    _decref(seq)
    return 0


cdef inline int _call_python(const Instr *ins, PyObject **regs,
                             PyObject **argbuf) noexcept:
    """Call a Python thunk on borrowed register values (slot 0 of argbuf is
    left free so that callees may use PY_VECTORCALL_ARGUMENTS_OFFSET)."""
    cdef int k
    cdef PyObject *v
    for k in range(ins.n_in):
        v = regs[ins.ins[k]]
        argbuf[k + 1] = v if v != NULL else <PyObject*>None
    v = _vectorcall(ins.pyfn, argbuf + 1,
                    <size_t>ins.n_in | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL)
    if v == NULL:
        return -1
    if ins.n_out == 1:
        _setreg(regs, ins.outs[0], v)
        return 0
    if ins.n_out == 0:
        _decref(v)
        return 0
    return _unpack(ins, regs, v)


cdef int64_t _note_outputs(VM vm, Frame *f, PyObject **regs, const Instr *ins,
                           bint trace) noexcept:
    """While profiling: note type, shape and newly allocated bytes of what a
    thunk wrote (a view or an input written in place allocated nothing);
    return the bytes it allocated. While tracing, also keep the bytes of each
    register and the run's live total (``f.reg_bytes``, ``f.reg_bytes[n_regs]``)."""
    cdef PyObject *v
    cdef PyArrayObject *a
    cdef int64_t *info
    cdef int64_t nbytes, total = 0
    cdef int k, j, d, nd, r
    for k in range(ins.n_out):
        r = ins.outs[k]
        v = regs[r]
        info = vm.reg_info_ptr + <Py_ssize_t>r * REG_INFO
        nbytes = 0
        if v == NULL or not _np_check(v):
            info[0] = -1
        else:
            a = <PyArrayObject*>v
            info[0] = _np_descr(a).type_num
            nbytes = _np_nbytes(a) if _np_flags(a) & NPY_ARRAY_OWNDATA else 0
            for j in range(ins.n_in):
                if regs[ins.ins[j]] == v:
                    nbytes = 0
            if nbytes > info[1]:
                info[1] = nbytes
            nd = _np_ndim(a)
            info[2] = nd
            for d in range(min(nd, REG_DIMS)):
                info[3 + d] = _np_dims(a)[d]
        total += nbytes
        if trace:
            f.reg_bytes[vm.n_regs] += nbytes - f.reg_bytes[r]
            f.reg_bytes[r] = nbytes
    return total


# ------------------------------------------------------------------- the trace

cdef TraceRun *_trace_begin(VM vm, Frame *f, int64_t t) noexcept:
    """Claim the slot of the oldest traced run for a new one (the GIL is held:
    runs claim slots one at a time)."""
    cdef TraceRun *run = &vm.trace_runs[vm.trace_seq % vm.trace_slots]
    run.seq = -1
    run.t_begin = run.t_end = t
    run.thread = <int64_t>PyThread_get_thread_ident()
    run.n_events = 0
    vm.trace_seq += 1
    memset(f.reg_bytes, 0, (vm.n_regs + 1) * sizeof(int64_t))
    return run


cdef void _trace_event(VM vm, Frame *f, TraceRun *run, Py_ssize_t pc, int64_t t0,
                       int64_t t1, int64_t nbytes) noexcept:
    """Record instruction pc of the run (its output 0 as _note_outputs saw it)."""
    cdef TraceEvent *ev
    cdef const Instr *ins = &vm.instrs[pc]
    cdef int64_t *info
    cdef int d
    if run.n_events >= vm.n_instr:
        return                      # cannot happen: jumps go forward only
    ev = vm.trace_events + (run - vm.trace_runs) * vm.n_instr + run.n_events
    ev.pc, ev.t0, ev.t1, ev.nbytes = pc, t0, t1, nbytes
    ev.live = f.reg_bytes[vm.n_regs]
    ev.type_num, ev.ndim = -1, 0
    if ins.kind == THUNK and ins.n_out > 0:
        info = vm.reg_info_ptr + <Py_ssize_t>ins.outs[0] * REG_INFO
        ev.type_num, ev.ndim = info[0], info[2]
        for d in range(4):
            ev.dims[d] = info[3 + d] if d < info[2] else 0
    run.n_events += 1


cdef inline void _trace_free(VM vm, Frame *f, int r) noexcept:
    f.reg_bytes[vm.n_regs] -= f.reg_bytes[r]
    f.reg_bytes[r] = 0


cdef inline void _trace_move(VM vm, Frame *f, const Instr *ins) noexcept:
    """A move hands its buffer on: the bytes follow it."""
    _trace_free(vm, f, ins.outs[0])
    f.reg_bytes[ins.outs[0]] = f.reg_bytes[ins.ins[0]]
    f.reg_bytes[ins.ins[0]] = 0


cdef int _failed(Frame *f, Py_ssize_t pc) noexcept:
    f.failed_pc = pc
    if _err_occurred() == NULL:
        _err_set(<PyObject*>SystemError,
                 "a C thunk returned an error without setting an exception")
    return -1


cdef int _run_loop(VM vm, Frame *f) noexcept:
    """Execute the instructions on frame f's registers; 0, or -1 with an
    exception set and ``f.failed_pc`` naming the instruction. While profiling,
    time each instruction; while tracing too, record the run (``set_trace``)."""
    cdef PyObject **regs = f.regs
    cdef const Instr *ins
    cdef Py_ssize_t pc = 0, nxt, n = vm.n_instr
    cdef bint prof = vm.profiling, release
    cdef bint trace = prof and vm.trace_slots > 0
    cdef TraceRun *run = NULL
    cdef int64_t t0 = 0, t1, nbytes = 0, seq = vm.trace_seq
    cdef int k, rc = 0
    cdef PyObject *v
    if prof:
        t0 = _now_ns()
        if trace:
            run = _trace_begin(vm, f, t0)
    while pc < n:
        ins = &vm.instrs[pc]
        nxt = pc + 1
        release = True
        if ins.kind == THUNK:
            if ins.cfn != NULL:
                rc = ins.cfn(ins.ctx, regs, ins.ins, ins.outs)
            else:
                rc = _call_python(ins, regs, f.argbuf)
            if rc != 0:
                break
            if prof:
                nbytes = _note_outputs(vm, f, regs, ins, trace)
        elif ins.kind == JUMP_IF_FALSE:
            rc = _truth(regs[ins.ins[0]])
            if rc < 0:
                break
            if rc:
                release = False     # the block runs and frees its own registers
            else:
                nxt = ins.target
            rc = 0
        elif ins.kind == JUMP:
            nxt = ins.target
        else:  # MOVE
            v = regs[ins.ins[0]]
            _xincref(v)
            _setreg(regs, ins.outs[0], v)
            if trace:
                _trace_move(vm, f, ins)
        if release:
            for k in range(ins.n_free):
                v = regs[ins.frees[k]]
                if v != NULL:
                    regs[ins.frees[k]] = NULL
                    _decref(v)
                if trace:
                    _trace_free(vm, f, ins.frees[k])
        if prof:
            t1 = _now_ns()
            vm.times_ptr[pc] += t1 - t0
            vm.counts_ptr[pc] += 1
            if trace:
                _trace_event(vm, f, run, pc, t0, t1, nbytes)
                nbytes = 0
            t0 = t1
        pc = nxt
    if trace:                   # a failed run is kept too, up to where it failed
        run.t_end = _now_ns() if rc != 0 else t0
        run.seq = seq
    if rc != 0:
        return _failed(f, pc)
    return 0


cdef inline bint _fast_ok(PyObject *v, const InputSpec *spec) noexcept:
    """An exact ndarray of the spec's dtype and rank whose static dims match."""
    cdef PyArrayObject *a
    cdef PyArray_Descr *d
    cdef npy_intp *dims
    cdef int k
    if _type_of(v) != &PyArray_Type:
        return False
    a = <PyArrayObject*>v
    d = _np_descr(a)
    if <PyObject*>d != spec.descr:
        # An equal dtype need not be the same object; builtin numeric types
        # are equal when their number and (native) byte order are.
        if (d.type_num != spec.type_num or spec.type_num > NPY_CLONGDOUBLE
                or not _np_native(d.byteorder)):
            return False
    if _np_ndim(a) != spec.ndim:
        return False
    dims = _np_dims(a)
    for k in range(spec.ndim):
        if spec.shape[k] >= 0 and dims[k] != spec.shape[k]:
            return False
    return True


cdef int _reraise() except -1:
    """Propagate the exception already set by a noexcept helper."""
    return -1


# ------------------------------------------------------------ cell locks

# The lock word of a CellLock: 0 when free, else the holder's thread ident. A
# compare-and-swap takes it (about 5 ns uncontended, where PyThread's lock costs
# tens); a waiter yields, then sleeps in short naps, with the GIL released.
cdef extern from *:
    """
    #include <sched.h>
    #include <time.h>
    static inline int vmc_try_lock(unsigned long *word, unsigned long me) {
        unsigned long free_ = 0;
        return __atomic_compare_exchange_n(word, &free_, me, 0, __ATOMIC_ACQUIRE,
                                           __ATOMIC_RELAXED);
    }
    static inline void vmc_unlock(unsigned long *word) {
        __atomic_store_n(word, 0UL, __ATOMIC_RELEASE);
    }
    static inline unsigned long vmc_lock_owner(unsigned long *word) {
        return __atomic_load_n(word, __ATOMIC_RELAXED);
    }
    static void vmc_wait_lock(unsigned long *word, unsigned long me) {
        struct timespec nap = {0, 20000};
        for (int tries = 0; !vmc_try_lock(word, me); tries++) {
            if (tries < 64) sched_yield();
            else nanosleep(&nap, NULL);
        }
    }
    """
    int vmc_try_lock(unsigned long *word, unsigned long me) noexcept nogil
    void vmc_unlock(unsigned long *word) noexcept nogil
    unsigned long vmc_lock_owner(unsigned long *word) noexcept nogil
    void vmc_wait_lock(unsigned long *word, unsigned long me) noexcept nogil

cdef Py_ssize_t _n_cell_locks = 0


cdef class CellLock:
    """The lock of one shared variable's cell: compiled functions that update
    the variable hold it from reading its value to committing their updates
    (see VM). Taken without releasing the GIL when free, else with the GIL
    released while waiting; taking it again from the thread that holds it
    raises RuntimeError (a call re-entering a function that updates the same
    variable would otherwise wait for itself forever)."""

    def __cinit__(self):
        global _n_cell_locks
        _n_cell_locks += 1
        self.order = _n_cell_locks

    cdef int take(self) noexcept:
        """0, or -1 with RuntimeError set when this thread holds the lock."""
        cdef unsigned long me = PyThread_get_thread_ident()
        if vmc_try_lock(&self.owner, me):
            return 0
        if vmc_lock_owner(&self.owner) == me:
            _err_set(<PyObject*>RuntimeError,
                     "a compiled function that updates a shared variable was called again "
                     "from inside a call that updates the same variable (from one of its "
                     "thunks); that call would wait for itself forever")
            return -1
        with nogil:
            vmc_wait_lock(&self.owner, me)
        return 0

    cdef void give(self) noexcept:
        vmc_unlock(&self.owner)

    def acquire(self):
        """Take the lock (for the Python VM and tests)."""
        if self.take() < 0:
            _reraise()

    def release(self):
        if vmc_lock_owner(&self.owner) != PyThread_get_thread_ident():
            raise RuntimeError("CellLock.release: this thread does not hold the lock")
        self.give()

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.give()


# ------------------------------------------------------------- construction

include "_vm_build.pxi"


# ------------------------------------------------------------------ the VM

# The instructions hold borrowed pointers into _thunks: the GC must never clear
# those fields while the VM is still reachable from a finalizer. Pickling is the
# subclass's business (__reduce__, or __getstate__/__setstate__ that re-run
# VM.__init__), so Cython's automatic pickling is off.
@cython.no_gc_clear
@cython.auto_pickle(False)
cdef class VM:
    """Runs a Program. ``run(args)`` is PyVM's API; calling the VM is the
    checked call path of a compiled function (see ``__call__``).

    Concurrent calls. Every call runs on a frame: a register file and the
    scratch of one call. The VM's own frame (``main``) serves every call that
    overlaps no other, so a single-threaded caller pays one flag test. A call
    that finds it taken (another thread is inside this VM, its GIL released by
    a thunk, or a thunk calls its own function again) takes a frame from
    ``pool``, allocating one (constants loaded) when the pool is empty; frames
    go back to the pool and are reused, so N overlapping calls cost N frames
    once. Frames are taken and given back with the GIL held, so no atomic
    operation is needed.

    Shared-variable updates. A call that updates shared variables holds the
    ``CellLock`` of each of them from before it reads their values until its
    updates are committed (``_execute``). Calls that update the same variable,
    of one function or of several, therefore run one at a time, as if in some
    order: ``counter <- counter + 1`` from 4 threads x 500 calls ends at 2000,
    and an in-place update (a gemm writing into W's own buffer with the GIL
    released) never overlaps another call's read or write of W through an
    update. Holding the lock only around the commit would not do: two calls
    could both read 5 and commit 6, or two gemms could write W at once. The
    locks are taken in one global order (their creation numbers), so two
    functions that update {a, b} and {b, a} cannot deadlock; a thread waiting
    for a lock releases the GIL. A call that finds a lock held by its own
    thread (a re-entrant call from a thunk of a function updating the same
    variable) raises RuntimeError instead of deadlocking. A call that only
    reads a shared variable takes no lock: it may see another call's in-place
    update in progress (the price of letting calls that only read run in
    parallel). Old values are released after the locks, since releasing one
    may run arbitrary Python code.

    ``failed_pc`` and ``failed_inputs`` describe the last call that failed;
    with overlapping calls, the one that failed last.
    """

    def __cinit__(self, *args, **kwargs):
        self.failed_pc = -1
        self.failed_inputs = []
        self._profile = False
        self.vectorcall = <vectorcallfunc><void*>_vm_vectorcall

    def __init__(self, program):
        cdef int64_t[::1] t, c, r
        if self.n_active:
            raise RuntimeError("cannot re-initialise a VM while it runs")
        _release(self)
        _enable_vectorcall(type(self))
        self.program = program
        self._thunks = list(program.thunks)
        n_regs = int(program.n_regs)
        if n_regs < 0:
            raise ValueError(f"Program.n_regs = {n_regs} is negative")
        try:
            _build_instrs(self, program, n_regs)
            _build_storage(self, program, n_regs)
        except BaseException:
            _release(self)          # never leave a half-built program behind
            raise
        self._times = np.zeros(self.n_instr, np.int64)
        self._counts = np.zeros(self.n_instr, np.int64)
        self._reg_info = np.zeros((self.n_regs + 1) * REG_INFO, np.int64)
        t, c, r = self._times, self._counts, self._reg_info
        self.reg_info_ptr = &r[0]
        self.times_ptr = &t[0] if self.n_instr else NULL
        self.counts_ptr = &c[0] if self.n_instr else NULL
        self.failed_pc = -1
        self.failed_inputs = []

    def __dealloc__(self):
        _release(self)

    @property
    def profile(self):
        """Profiling is on while this is true. Any object may be stored here
        (a subclass keeps its profile report in it); ``set_profiling`` turns
        the timers on and off without replacing it."""
        return self._profile

    @profile.setter
    def profile(self, value):
        self._profile = value
        self.profiling = bool(value)

    def set_profiling(self, on):
        """Record per-instruction times and counts while ``on``."""
        self.profiling = bool(on)

    def clear_registers(self):
        """Release every non-constant register (a run already does this)."""
        if self.n_active:
            raise RuntimeError("cannot clear the registers of a running VM")
        self._clear_regs(&self.main)

    def reset_profile(self):
        """Zero the recorded times, counts, shapes and sizes; forget the trace."""
        cdef Py_ssize_t i
        self._times[:] = 0
        self._counts[:] = 0
        self._reg_info[:] = 0
        for i in range(self.trace_slots):
            self.trace_runs[i].seq = -1
            self.trace_runs[i].n_events = 0
        self.trace_seq = 0

    def set_trace(self, Py_ssize_t n_runs):
        """While profiling, keep the start and end of every instruction of the
        last ``n_runs`` runs (0: none), in a buffer of n_runs x n_instr events
        written from the loop (``trace``)."""
        if self.n_active:
            raise RuntimeError("cannot change the trace of a running VM")
        if n_runs < 0:
            raise ValueError(f"set_trace: n_runs must be >= 0, got {n_runs}")
        PyMem_Free(self.trace_runs)
        PyMem_Free(self.trace_events)
        self.trace_runs, self.trace_events = NULL, NULL
        self.trace_slots = self.trace_seq = 0
        if n_runs == 0 or self.n_instr == 0:
            return
        self.trace_runs = <TraceRun*>PyMem_Calloc(n_runs, sizeof(TraceRun))
        self.trace_events = <TraceEvent*>PyMem_Calloc(n_runs * self.n_instr,
                                                      sizeof(TraceEvent))
        if self.trace_runs == NULL or self.trace_events == NULL:
            PyMem_Free(self.trace_runs)
            PyMem_Free(self.trace_events)
            self.trace_runs, self.trace_events = NULL, NULL
            raise MemoryError(f"set_trace: no memory for {n_runs} runs")
        for i in range(n_runs):
            self.trace_runs[i].seq = -1
        self.trace_slots = n_runs

    @property
    def trace(self):
        """The traced runs, oldest first: a list of ``(run, events)``, ``run`` a
        dict (seq, t_begin, t_end in ns of the monotonic clock, thread: the
        PyThread ident) and ``events`` a structured array with the fields of
        ``TRACE_EVENT`` (one row per executed instruction, in order). Runs still
        being written are left out."""
        cdef Py_ssize_t i, n = self.trace_slots
        cdef TraceRun *r
        if n == 0:
            return []
        size = n * self.n_instr * sizeof(TraceEvent)
        events = np.frombuffer((<char*>self.trace_events)[:size], TRACE_EVENT)
        runs = []
        for i in range(n):
            r = &self.trace_runs[i]
            if r.seq < 0:
                continue
            runs.append(({"seq": r.seq, "t_begin": r.t_begin, "t_end": r.t_end,
                          "thread": <unsigned long>r.thread},
                         events[i * self.n_instr: i * self.n_instr + r.n_events]))
        runs.sort(key=lambda item: item[0]["seq"])
        return runs

    @property
    def out_shapes(self):
        """``{pc: {((shape, dtype, bytes allocated), ...): 1}}`` for the thunks
        that ran while profiling: the last shape written to each output and
        the most bytes newly allocated for it (PyVM's attribute, from the
        notes the loop keeps in C)."""
        info = self._reg_info.reshape(-1, REG_INFO)
        seen = {}
        for pc in range(self.n_instr):
            if self._counts[pc] == 0 or self.instrs[pc].kind != THUNK:
                continue
            key = []
            for k in range(self.instrs[pc].n_out):
                row = info[self.instrs[pc].outs[k]]
                if row[0] < 0:
                    key.append((None, "object", 0))
                    continue
                nd = int(row[2])
                shape = tuple(int(d) for d in row[3:3 + min(nd, REG_DIMS)])
                if nd > REG_DIMS:
                    shape += (-1,) * (nd - REG_DIMS)
                key.append((shape, _DTYPES.get(int(row[0]), "?"), int(row[1])))
            seen[pc] = {tuple(key): int(self._counts[pc])}
        return seen

    @property
    def times(self):
        """int64[n_instr]: ns spent per instruction while ``profile`` was on."""
        return self._times

    @property
    def counts(self):
        """int64[n_instr]: executions per instruction while ``profile`` was on."""
        return self._counts

    def set_input_specs(self, dtypes, ndims, shapes, filters):
        """What ``__call__`` checks argument i against: an exact ndarray of
        ``dtypes[i]`` with ``ndims[i]`` dimensions whose sizes match
        ``shapes[i]`` (-1 or None: any) is used as is; any other value goes
        through ``filters[i](value)``, which returns the checked value or
        raises TypeError."""
        cdef Py_ssize_t i, k, total = 0
        n = self.n_inputs
        dtypes = [np.dtype(d) for d in dtypes]
        ndims, shapes, filters = [int(d) for d in ndims], list(shapes), list(filters)
        if not len(dtypes) == len(ndims) == len(shapes) == len(filters) == n:
            raise ValueError(f"set_input_specs: need {n} entries in each list, got "
                             f"{len(dtypes)}, {len(ndims)}, {len(shapes)}, {len(filters)}")
        shapes = [tuple(-1 if s is None else int(s) for s in shape) for shape in shapes]
        for i in range(n):
            if len(shapes[i]) != ndims[i]:
                raise ValueError(f"input {i}: shape {shapes[i]} has not {ndims[i]} dims")
            if not callable(filters[i]):
                raise TypeError(f"input {i}: filter {filters[i]!r} is not callable")
            total += ndims[i]
        specs = <InputSpec*>PyMem_Calloc(n + 1, sizeof(InputSpec))
        shape_buf = <Py_ssize_t*>PyMem_Calloc(total + 1, sizeof(Py_ssize_t))
        if specs == NULL or shape_buf == NULL:
            PyMem_Free(specs)
            PyMem_Free(shape_buf)
            raise MemoryError()
        total = 0
        for i in range(n):
            specs[i].descr = <PyObject*>dtypes[i]
            specs[i].type_num = dtypes[i].num
            specs[i].ndim = ndims[i]
            specs[i].shape = shape_buf + total
            specs[i].filter = <PyObject*>filters[i]
            for k in range(ndims[i]):
                shape_buf[total + k] = shapes[i][k]
            total += ndims[i]
        PyMem_Free(self.specs)
        PyMem_Free(self.spec_shapes)
        self.specs, self.spec_shapes = specs, shape_buf
        self._spec_keep = dtypes + filters

    def _bind(self, args, kwargs):
        """Turn ``f(*args, **kwargs)`` into the full positional argument tuple
        when the call is not exactly ``n_inputs`` positionals; a subclass adds
        keywords and defaults."""
        if kwargs:
            raise TypeError(f"unexpected keyword argument(s) {', '.join(sorted(kwargs))}")
        raise TypeError(f"expected {self.n_inputs} argument(s), got {len(args)}")

    def _handle_error(self, exc):
        """Called with the exception a thunk raised (``failed_pc`` and
        ``failed_inputs`` say where); its return value is the call's result.
        The base re-raises unchanged."""
        raise exc

    def __call__(self, *args, **kwargs):
        """Check the arguments (unless ``trust_input``), run, commit updates,
        return the outputs (``outputs[0]`` when ``unpack_single``).

        Calls normally arrive through ``_vm_vectorcall`` below, which does the
        same without building the argument tuple and keyword dict."""
        cdef object a = args
        if kwargs or _tuple_size(<PyObject*>args) != self.n_inputs:
            a = _arg_tuple(self, self._bind(args, kwargs))
        return _call(self, _seq_fast_items(<PyObject*>a))

    def run(self, args):
        """Run once on ``args`` (already checked); return the list of outputs."""
        args = _arg_tuple(self, args)
        cdef Frame *f = _begin(self, False)
        self._load_args(f, _seq_fast_items(<PyObject*>args), False)  # cannot fail unchecked
        if self._execute(f) < 0:
            self._fail(f, False)
        return self._collect(f, False)

    # ------------------------------------------------ pieces of the call path

    cdef Frame *_take_frame(self) except NULL:
        """A frame for a new call: ``main`` when free, else one from the pool
        (allocated when the pool is empty)."""
        cdef Frame *f
        if not self.main_busy:
            self.main_busy = True
            self.n_active += 1
            return &self.main
        f = self.pool
        if f != NULL:
            self.pool = f.next
        else:
            f = <Frame*>PyMem_Calloc(1, sizeof(Frame))
            if f == NULL:
                raise MemoryError()
            try:
                _frame_alloc(self, f)
            except BaseException:
                PyMem_Free(f)
                raise
        f.next = NULL
        self.n_active += 1
        return f

    cdef void _give_frame(self, Frame *f) noexcept:
        """Return a frame taken by ``_take_frame`` (its registers cleared)."""
        self.n_active -= 1
        if f == &self.main:
            self.main_busy = False
        else:
            f.next = self.pool
            self.pool = f

    cdef int _load_args(self, Frame *f, PyObject **args, bint check) noexcept:
        """Store args[i] (borrowed, n_inputs of them) into its register, through
        the filter of its spec unless ``check`` is off or the fast path fits."""
        cdef Py_ssize_t i
        cdef PyObject *v
        for i in range(self.n_inputs):
            v = args[i]
            if check and not _fast_ok(v, &self.specs[i]):
                v = _vectorcall(self.specs[i].filter, &v, 1, NULL)
                if v == NULL:
                    return -1
            else:
                _incref(v)
            _setreg(f.regs, self.input_regs[i], v)
        return 0

    cdef int _execute(self, Frame *f) noexcept:
        """Take the update locks, load shared values, run the program, commit
        the updates, give the locks back (see the class docstring): 0, or -1
        with an exception set (registers not yet cleared)."""
        cdef Py_ssize_t i, n_taken = 0
        cdef int rc = 0
        for i in range(self.n_updates):
            if _list_size(self.update_cells[i]) != 1:
                _err_set(<PyObject*>ValueError, "a shared cell is no longer a one-element list")
                return -1
        while n_taken < self.n_locks:
            if (<CellLock>self.locks[n_taken]).take() < 0:
                rc = -1
                break
            n_taken += 1
        if rc == 0:
            rc = _run_and_commit(self, f)
        while n_taken > 0:
            n_taken -= 1
            (<CellLock>self.locks[n_taken]).give()
        if rc == 0:
            for i in range(self.n_updates):
                _xdecref(f.update_old[i])
                f.update_old[i] = NULL
        return rc

    cdef object _collect(self, Frame *f, bint unpack):
        """The outputs (a list, or the first one when ``unpack``); then clear
        the frame and give it back."""
        cdef PyObject *v
        cdef PyObject *res
        cdef Py_ssize_t i
        if unpack:
            res = f.regs[self.output_regs[0]] if self.n_outputs else NULL
            if res == NULL:
                res = <PyObject*>None
            _incref(res)
        else:
            res = _list_new(self.n_outputs)
            if res == NULL:
                self._clear_regs(f)
                self._give_frame(f)
                _reraise()
            for i in range(self.n_outputs):
                v = f.regs[self.output_regs[i]]
                if v == NULL:
                    v = <PyObject*>None
                _incref(v)
                _list_set(res, i, v)
        self._clear_regs(f)
        self._give_frame(f)
        result = <object>res        # takes a reference of its own
        _decref(res)
        return result

    cdef void _clear_regs(self, Frame *f) noexcept:
        """Release every non-constant register of frame f."""
        cdef Py_ssize_t i
        cdef int r
        cdef PyObject *v
        if f.regs == NULL:
            return
        for i in range(self.n_clear):
            r = self.clear_regs[i]
            v = f.regs[r]
            if v != NULL:
                f.regs[r] = NULL
                _decref(v)

    cdef object _fail(self, Frame *f, bint handle):
        """After ``_execute`` failed: describe the failing instruction's
        inputs, clear the frame and give it back, then re-raise, or hand the
        exception to ``_handle_error`` when ``handle``."""
        cdef Py_ssize_t pc = f.failed_pc
        try:
            _reraise()
        except BaseException as exc:
            # Caught first: describing the inputs runs Python code, which
            # must not run with the exception still pending.
            described = _describe_inputs(self, f.regs, pc)
            self._clear_regs(f)
            self._give_frame(f)
            self.failed_pc, self.failed_inputs = pc, described
            if handle:
                return self._handle_error(exc)
            raise


cdef int _run_and_commit(VM vm, Frame *f) noexcept:
    """Load shared values into frame f, run the program, commit all updates
    together (nothing after the loop can fail); the old cell values are left
    in ``f.update_old`` for the caller to release."""
    cdef Py_ssize_t i
    cdef PyObject *v
    cdef PyObject *cell
    for i in range(vm.n_shared):
        cell = vm.shared_cells[i]
        if _list_size(cell) != 1:
            _err_set(<PyObject*>ValueError, "a shared cell is no longer a one-element list")
            return -1
        v = _list_item(cell, 0)
        _incref(v)
        _setreg(f.regs, vm.shared_regs[i], v)
    if _run_loop(vm, f) < 0:
        return -1
    for i in range(vm.n_updates):
        v = f.regs[vm.update_regs[i]]
        if v == NULL:
            v = <PyObject*>None
        _incref(v)
        f.update_old[i] = _list_item(vm.update_cells[i], 0)
        _list_set(vm.update_cells[i], 0, v)
    return 0


cdef Frame *_begin(VM vm, bint check) except NULL:
    """Take a frame for a call. The last failure is forgotten only by a call
    that overlaps no other (one running beside a failing call must not wipe
    what that call's error handler is about to read)."""
    cdef Frame *f
    if check and vm.specs == NULL and vm.n_inputs:
        raise TypeError("no input specs: call set_input_specs() or set trust_input")
    f = vm._take_frame()
    f.failed_pc = -1
    if vm.failed_pc != -1 and vm.n_active == 1:
        vm.failed_pc = -1
        vm.failed_inputs = []
    return f


cdef object _call(VM vm, PyObject **args):
    """The call path once the n_inputs positional arguments are known. While
    profiling, the whole call is timed and handed to ``profile.record_call``
    when the profile object has one (as PyCallVM does)."""
    cdef int64_t t0
    if not vm.profiling:
        return _call_checked(vm, args)
    t0 = _now_ns()
    try:
        return _call_checked(vm, args)
    finally:
        record = getattr(vm._profile, "record_call", None)
        if record is not None:
            record(_now_ns() - t0)


cdef object _call_checked(VM vm, PyObject **args):
    cdef bint check = not vm.trust_input
    cdef Frame *f = _begin(vm, check)
    if vm._load_args(f, args, check) < 0:
        vm._clear_regs(f)
        vm._give_frame(f)
        _reraise()
    if vm._execute(f) < 0:
        return vm._fail(f, True)
    return vm._collect(f, vm.unpack_single)


cdef object _vm_vectorcall(VM vm, PyObject **args, size_t nargsf, PyObject *kwnames):
    """PEP 590 entry point: ``f(x)`` arrives here with ``args`` on the
    caller's stack; no argument tuple or keyword dict is built."""
    cdef Py_ssize_t i, n = _vectorcall_nargs(nargsf)
    if (kwnames == NULL or _tuple_size(kwnames) == 0) and n == vm.n_inputs:
        return _call(vm, args)
    pos = tuple([<object>args[i] for i in range(n)])
    kw = {}
    if kwnames != NULL:
        for i in range(_tuple_size(kwnames)):
            kw[<object>_tuple_item(kwnames, i)] = <object>args[n + i]
    a = _arg_tuple(vm, vm._bind(pos, kw))
    return _call(vm, _seq_fast_items(<PyObject*>a))


cdef Py_ssize_t _vectorcall_offset = 0


cdef void _enable_vectorcall(object cls) noexcept:
    """Route calls of ``cls`` instances through ``_vm_vectorcall``. CPython 3.11
    does not pass the vectorcall flag on to Python subclasses, so VM.__init__
    sets it on theirs, unless they define ``__call__`` themselves."""
    cdef _TypeSlots *t = <_TypeSlots*>cls
    cdef _TypeSlots *base = <_TypeSlots*>VM
    if (t.tp_call == base.tp_call and _vectorcall_offset > 0
            and t.tp_vectorcall_offset == _vectorcall_offset):
        t.tp_flags |= Py_TPFLAGS_HAVE_VECTORCALL


cdef void _install_vectorcall():
    global _vectorcall_offset
    cdef VM probe = VM.__new__(VM)
    cdef _TypeSlots *t = <_TypeSlots*>VM
    _vectorcall_offset = <char*>&probe.vectorcall - <char*><PyObject*>probe
    t.tp_vectorcall_offset = _vectorcall_offset
    t.tp_flags |= Py_TPFLAGS_HAVE_VECTORCALL


_install_vectorcall()


cdef tuple _arg_tuple(VM vm, args):
    args = tuple(args)
    if len(args) != vm.n_inputs:
        raise TypeError(f"expected {vm.n_inputs} argument(s), got {len(args)}")
    return args


cdef list _describe_inputs(VM vm, PyObject **regs, Py_ssize_t pc):
    """(shape, dtype) of the inputs of instruction pc, as PyVM describes them:
    enough for a message, without keeping the values alive."""
    cdef PyObject *v
    cdef int k
    if not 0 <= pc < vm.n_instr:
        return []
    described = []
    for k in range(vm.instrs[pc].n_in):
        v = regs[vm.instrs[pc].ins[k]]
        value = <object>v if v != NULL else None
        try:
            shape = np.shape(value)
        except Exception:           # e.g. a ragged list
            shape = ()
        described.append((shape, getattr(value, "dtype", type(value))))
    return described


def call_thunk(thunk, args, Py_ssize_t n_out):
    """Run one thunk outside any program: ``thunk`` (a CThunk, or a Python
    callable) on the values ``args``; returns the tuple of its ``n_out``
    outputs. The checking modes (DebugMode, MonitorMode) run C thunks one at a
    time through this, on registers of their own."""
    cdef Instr ins
    cdef Py_ssize_t k, n_in = len(args)
    cdef PyObject **regs
    cdef int *idx
    cdef int rc
    args = tuple(args)
    n_in = len(args)
    fn = getattr(thunk, "fn", None)
    if fn is None or not PyCapsule_IsValid(fn, "vmc_thunk"):
        result = thunk(*args)
        return (result,) if n_out == 1 else tuple(result)
    ins.cfn, ins.ctx, ins.pyfn = NULL, NULL, NULL
    _set_thunk(&ins, thunk, 0)
    regs = <PyObject**>PyMem_Calloc(n_in + n_out + 1, sizeof(PyObject*))
    idx = <int*>PyMem_Malloc((n_in + n_out + 1) * sizeof(int))
    if regs == NULL or idx == NULL:
        PyMem_Free(regs)
        PyMem_Free(idx)
        raise MemoryError()
    try:
        for k in range(n_in + n_out):
            idx[k] = <int>k
        for k in range(n_in):
            _incref(<PyObject*>args[k])
            regs[k] = <PyObject*>args[k]
        rc = ins.cfn(ins.ctx, regs, idx, idx + n_in)
        if rc != 0:
            if _err_occurred() == NULL:
                raise SystemError("a C thunk returned an error without setting an exception")
            _reraise()
        return tuple([<object>regs[n_in + k] if regs[n_in + k] != NULL else None
                      for k in range(n_out)])
    finally:
        for k in range(n_in + n_out):
            _xdecref(regs[k])
        PyMem_Free(regs)
        PyMem_Free(idx)
