# Declarations of the Cython VM (vmc/_vm.pyx). See vmc/program.py for
# the Program it executes and vmc/compile/pyvm.py for the reference semantics.
from cpython.ref cimport PyObject
from libc.stdint cimport int64_t

cdef extern from "Python.h":
    ctypedef PyObject *(*vectorcallfunc)(PyObject *callable, PyObject **args,
                                         size_t nargsf, PyObject *kwnames)

cdef extern from "vmc_thunk.h":
    # The one C thunk ABI: 0 on success, -1 with a Python exception set.
    ctypedef int (*vmc_thunk_fn)(void *ctx, PyObject **regs,
                                 const int *ins, const int *outs) noexcept


# One instruction, flattened so that the hot loop reads a single struct.
ctypedef struct Instr:
    int kind            # THUNK, JUMP_IF_FALSE, JUMP or MOVE (program.py)
    int n_in            # number of input registers
    int n_out           # number of output registers
    int n_free          # number of registers released after the instruction
    Py_ssize_t target   # jump target (pc), -1 unless a jump
    const int *ins      # -> VM.index_buf: the input register numbers
    const int *outs     # -> VM.index_buf: the output register numbers
    const int *frees    # -> VM.index_buf: the registers to release
    vmc_thunk_fn cfn    # C thunk entry point, NULL for a Python thunk
    void *ctx           # C thunk private data (may be NULL)
    PyObject *pyfn      # Python thunk (borrowed: VM._thunks holds it), else NULL


# What __call__ checks one argument against (set_input_specs).
ctypedef struct InputSpec:
    PyObject *descr       # expected numpy dtype (borrowed: VM._spec_keep holds it)
    int type_num          # descr.num, for dtypes equal to descr but not identical
    int ndim              # expected number of dimensions
    const Py_ssize_t *shape  # ndim entries, -1 where the size is not static
    PyObject *filter      # filter(value) -> checked value (borrowed, as descr)


# The trace of profiled runs (VM.set_trace): per run, where its events are and
# who ran it, and one event per executed instruction. Every field is an int64,
# so that numpy reads the buffers with a plain dtype (VM.trace).
ctypedef struct TraceRun:
    int64_t seq           # the run's number since the trace began; -1 while written
    int64_t t_begin       # ns (CLOCK_MONOTONIC) when the run began
    int64_t t_end         # ... and ended
    int64_t thread        # PyThread ident of the thread that ran it
    int64_t n_events      # events recorded (instructions executed)

ctypedef struct TraceEvent:
    int64_t pc            # the instruction
    int64_t t0            # ns (CLOCK_MONOTONIC) when it began
    int64_t t1            # ... and ended (its frees included)
    int64_t nbytes        # bytes its outputs newly allocated
    int64_t live          # bytes the run's own allocations hold after it
    int64_t type_num      # numpy type number of output 0, -1 when none or not an array
    int64_t ndim          # rank of output 0
    int64_t dims[4]       # its first sizes


# The registers and scratch of one call. A VM keeps one frame of its own for
# the common case and takes more from a pool only while calls overlap (threads,
# or a thunk calling its own function again): see VM's docstring.
ctypedef struct Frame:
    PyObject **regs                 # register file: owned references or NULL (= None)
    PyObject **argbuf               # 1 + max n_in slots: vectorcall stack for Python thunks
    PyObject **update_old           # n_updates slots: old cell values, released after the commit
    Py_ssize_t failed_pc            # the instruction that raised in this call, else -1
    int64_t *reg_bytes              # n_regs: bytes this run allocated per register (tracing)
    Frame *next                     # the pool's free list


# A lock of one shared variable: calls that update it run one at a time.
cdef class CellLock:
    cdef unsigned long owner        # the lock word: the holder's thread ident, 0 when free
    cdef readonly Py_ssize_t order  # creation number: several are taken in this order
    cdef int take(self) noexcept
    cdef void give(self) noexcept


cdef class VM:
    cdef vectorcallfunc vectorcall  # PEP 590 entry of calls (the type's vectorcall offset)
    # --- the program, copied into C arrays at construction ---
    cdef readonly object program    # the Program this VM runs (never read in the loop)
    cdef Instr *instrs              # n_instr instructions
    cdef Py_ssize_t n_instr
    cdef int *index_buf             # ins, outs and frees of all instructions
    cdef object _thunks             # list: keeps Python thunks and CThunks alive
    cdef object _consts             # list: keeps constant values alive
    cdef object _cells              # list: keeps shared and update cells alive

    # --- storage ---
    cdef Frame main                 # the frame of a call that overlaps no other
    cdef bint main_busy             # main is in use
    cdef Frame *pool                # free frames made for overlapping calls
    cdef Py_ssize_t n_active        # calls in progress (frames taken)
    cdef Py_ssize_t n_regs
    cdef Py_ssize_t max_in          # the most inputs of one instruction
    cdef Py_ssize_t n_const
    cdef int *const_regs            # loaded into every new frame
    cdef readonly Py_ssize_t n_inputs
    cdef int *input_regs            # where argument i is stored
    cdef readonly Py_ssize_t n_outputs
    cdef int *output_regs           # registers read back as results
    cdef Py_ssize_t n_clear
    cdef int *clear_regs            # every non-constant register (cleared after a run)
    cdef Py_ssize_t n_shared
    cdef int *shared_regs           # loaded from shared_cells before each run
    cdef PyObject **shared_cells    # one-element lists (borrowed: _cells holds them)
    cdef Py_ssize_t n_updates
    cdef int *update_regs           # committed into update_cells after a successful run
    cdef PyObject **update_cells    # one-element lists (borrowed: _cells holds them)
    cdef Py_ssize_t n_locks
    cdef PyObject **locks           # CellLocks of the updated cells, in taking order
    cdef object _locks              # list: keeps them alive

    # --- argument checks (__call__) ---
    cdef InputSpec *specs           # n_inputs specs, NULL until set_input_specs
    cdef Py_ssize_t *spec_shapes    # the shape entries that specs[i].shape point into
    cdef object _spec_keep          # list: keeps spec dtypes and filters alive

    # --- profiling and state ---
    cdef object _times              # int64[n_instr] ns per instruction (numpy)
    cdef object _counts             # int64[n_instr] executions per instruction (numpy)
    cdef int64_t *times_ptr         # data of _times
    cdef int64_t *counts_ptr        # data of _counts
    cdef object _reg_info           # int64[n_regs, REG_INFO]: what profiled thunks wrote
    cdef int64_t *reg_info_ptr      # data of _reg_info
    cdef TraceRun *trace_runs       # trace_slots runs (NULL: not tracing)
    cdef TraceEvent *trace_events   # trace_slots * n_instr events, run k's from k * n_instr
    cdef Py_ssize_t trace_slots     # the last runs kept (0: not tracing)
    cdef int64_t trace_seq          # runs traced since the trace began
    cdef object _profile            # whatever was assigned to ``profile``
    cdef bint profiling             # record times and counts (read once per run)
    cdef public bint trust_input    # __call__ skips the argument checks
    cdef public bint unpack_single  # __call__ returns outputs[0] instead of the list
    cdef public Py_ssize_t failed_pc  # instruction that raised in the last failed call, else -1
    cdef readonly object failed_inputs  # [(shape, dtype)] of that instruction's inputs

    # --- internals, usable from Cython (e.g. a scan thunk driving an inner VM):
    # take a frame, load, execute (as often as needed), clear, give it back ---
    cdef Frame *_take_frame(self) except NULL
    cdef void _give_frame(self, Frame *f) noexcept
    cdef int _load_args(self, Frame *f, PyObject **args, bint check) noexcept
    cdef int _execute(self, Frame *f) noexcept
    cdef object _collect(self, Frame *f, bint unpack)
    cdef void _clear_regs(self, Frame *f) noexcept
    cdef object _fail(self, Frame *f, bint handle)
