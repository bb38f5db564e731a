# Construction of the VM's C arrays from a Program, and their release.
# Included by vmc/_vm.pyx (a textual include: it shares that module's
# declarations); split out to keep the VM file one room.

cdef int *_copy_ints(object values, Py_ssize_t *n, Py_ssize_t lo, Py_ssize_t hi,
                     str what) except NULL:
    """A PyMem copy of an int array, each entry checked to lie in [lo, hi)."""
    cdef int[::1] src = np.ascontiguousarray(np.asarray(values).reshape(-1), np.intc)
    cdef Py_ssize_t i, m = src.shape[0]
    cdef int *dst = <int*>PyMem_Malloc((m + 1) * sizeof(int))
    if dst == NULL:
        raise MemoryError()
    for i in range(m):
        if src[i] < lo or src[i] >= hi:
            PyMem_Free(dst)
            raise ValueError(f"Program.{what}[{i}] = {src[i]} is outside [{lo}, {hi})")
        dst[i] = src[i]
    n[0] = m
    return dst


cdef int _set_thunk(Instr *ins, object thunk, Py_ssize_t pc) except -1:
    """Point an instruction at a C thunk's entry point or a Python callable."""
    fn = getattr(thunk, "fn", None)
    if fn is not None and PyCapsule_IsValid(fn, "vmc_thunk"):
        ins.cfn = <vmc_thunk_fn>PyCapsule_GetPointer(fn, "vmc_thunk")
        ctx = getattr(thunk, "ctx", None)
        if ctx is None:
            ins.ctx = NULL
        elif PyCapsule_IsValid(ctx, "vmc_ctx"):
            ins.ctx = PyCapsule_GetPointer(ctx, "vmc_ctx")
        else:
            raise TypeError(f"instruction {pc}: C thunk ctx must be None or a "
                            f"capsule named 'vmc_ctx', got {ctx!r}")
    elif callable(thunk):
        ins.pyfn = <PyObject*>thunk
    else:
        raise TypeError(f"instruction {pc}: thunk {thunk!r} is neither callable "
                        f"nor a CThunk")
    return 0


cdef Py_ssize_t _slice(Py_ssize_t pc, str what, Py_ssize_t start, Py_ssize_t count,
                       Py_ssize_t size) except -1:
    if start < 0 or count < 0 or start + count > size:
        raise ValueError(f"instruction {pc}: {what}[{start}:{start + count}] is "
                         f"outside the {size} entries of Program.{what}")
    return start


cdef int _build_instrs(VM vm, p, Py_ssize_t n_regs) except -1:
    """Copy the instruction arrays into vm.instrs and vm.index_buf, validating
    every index so that the loop and C thunks never read out of bounds."""
    cdef Py_ssize_t n_ins, n_outs, n_frees, total, pc, n, max_in = 0
    cdef int *buf
    cdef Instr *ins
    cdef int[::1] kind, thunk, in_start, n_in, out_start, n_out
    cdef int[::1] free_start, n_free, target
    arrays = [np.ascontiguousarray(np.asarray(getattr(p, name)).reshape(-1), np.intc)
              for name in ("kind", "thunk", "in_start", "n_in", "out_start", "n_out",
                           "free_start", "n_free", "target")]
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(f"Program instruction arrays differ in length ({n} kinds)")
    kind, thunk, in_start, n_in, out_start, n_out, free_start, n_free, target = arrays
    flat = np.concatenate([np.asarray(p.ins).reshape(-1), np.asarray(p.outs).reshape(-1),
                           np.asarray(p.frees).reshape(-1)])
    n_ins, n_outs, n_frees = len(p.ins), len(p.outs), len(p.frees)
    vm.index_buf = buf = _copy_ints(flat, &total, 0, n_regs, "ins/outs/frees")
    vm.instrs = <Instr*>PyMem_Calloc(n + 1, sizeof(Instr))
    if vm.instrs == NULL:
        raise MemoryError()
    vm.n_instr = n
    thunks = vm._thunks
    for pc in range(n):
        ins = &vm.instrs[pc]
        ins.kind, ins.n_in, ins.n_out, ins.n_free = kind[pc], n_in[pc], n_out[pc], n_free[pc]
        ins.target = target[pc]
        ins.ins = buf + _slice(pc, "ins", in_start[pc], n_in[pc], n_ins)
        ins.outs = buf + n_ins + _slice(pc, "outs", out_start[pc], n_out[pc], n_outs)
        ins.frees = (buf + n_ins + n_outs
                     + _slice(pc, "frees", free_start[pc], n_free[pc], n_frees))
        max_in = max(max_in, ins.n_in)
        if ins.kind == THUNK:
            if not 0 <= thunk[pc] < len(thunks):
                raise ValueError(f"instruction {pc}: thunk {thunk[pc]} is not in "
                                 f"the table of {len(thunks)}")
            _set_thunk(ins, thunks[thunk[pc]], pc)
        elif ins.kind in (JUMP_IF_FALSE, JUMP):
            if not 0 <= ins.target <= n:
                raise ValueError(f"instruction {pc}: jump target {ins.target} "
                                 f"is outside [0, {n}]")
            if ins.kind == JUMP_IF_FALSE and ins.n_in < 1:
                raise ValueError(f"instruction {pc}: jump_if_false needs a condition")
        elif ins.kind == MOVE:
            if ins.n_in < 1 or ins.n_out < 1:
                raise ValueError(f"instruction {pc}: move needs an input and an output")
        else:
            raise ValueError(f"instruction {pc}: unknown kind {ins.kind}")
    vm.max_in = max_in
    return 0


cdef int _build_cells(VM vm, p, Py_ssize_t n_regs) except -1:
    """Shared cells (read before each run) and update cells (written after)."""
    cdef Py_ssize_t i
    shared, updates = list(p.shared_cells), list(p.update_cells)
    for what, cells in (("shared_cells", shared), ("update_cells", updates)):
        for i, cell in enumerate(cells):
            if type(cell) is not list or len(cell) != 1:
                raise TypeError(f"Program.{what}[{i}] must be a one-element list, "
                                f"got {cell!r}")
    vm._cells = shared + updates
    vm.shared_regs = _copy_ints(p.shared_regs, &vm.n_shared, 0, n_regs, "shared_regs")
    vm.update_regs = _copy_ints(p.update_regs, &vm.n_updates, 0, n_regs, "update_regs")
    if vm.n_shared != len(shared) or vm.n_updates != len(updates):
        raise ValueError("Program: shared_regs/update_regs and their cells differ in length")
    vm.shared_cells = <PyObject**>PyMem_Calloc(vm.n_shared + 1, sizeof(PyObject*))
    vm.update_cells = <PyObject**>PyMem_Calloc(vm.n_updates + 1, sizeof(PyObject*))
    if vm.shared_cells == NULL or vm.update_cells == NULL:
        raise MemoryError()
    for i in range(vm.n_shared):
        vm.shared_cells[i] = <PyObject*>shared[i]
    for i in range(vm.n_updates):
        vm.update_cells[i] = <PyObject*>updates[i]
    return _build_locks(vm, p)


cdef int _build_locks(VM vm, p) except -1:
    """The CellLocks of the updated cells (Program.update_locks, one per update
    cell, or none: no locking), sorted into the one global taking order."""
    cdef Py_ssize_t i
    locks = list(getattr(p, "update_locks", None) or [])
    if locks and len(locks) != vm.n_updates:
        raise ValueError(f"Program: {len(locks)} update_locks for {vm.n_updates} update cells")
    for i, lock in enumerate(locks):
        if not isinstance(lock, CellLock):
            raise TypeError(f"Program.update_locks[{i}] must be a vmc._vm.CellLock, "
                            f"got {lock!r}")
    locks = sorted({id(k): k for k in locks}.values(), key=lambda k: k.order)
    vm._locks = locks
    vm.locks = <PyObject**>PyMem_Calloc(len(locks) + 1, sizeof(PyObject*))
    if vm.locks == NULL:
        raise MemoryError()
    for i in range(len(locks)):
        vm.locks[i] = <PyObject*>locks[i]
    vm.n_locks = len(locks)
    return 0


cdef int _frame_alloc(VM vm, Frame *f) except -1:
    """Registers (constants loaded), the Python-thunk stack and the commit
    scratch of one frame, in one block."""
    cdef Py_ssize_t i, n = (vm.n_regs + 1) + (vm.max_in + 2) + (vm.n_updates + 1)
    cdef PyObject **block = <PyObject**>PyMem_Calloc(n, sizeof(PyObject*))
    if block == NULL:
        raise MemoryError()
    f.regs = block
    f.argbuf = block + vm.n_regs + 1
    f.update_old = f.argbuf + vm.max_in + 2
    f.failed_pc = -1
    f.next = NULL
    # the trace's bytes per register, and the run's live total at [n_regs]
    f.reg_bytes = <int64_t*>PyMem_Calloc(vm.n_regs + 1, sizeof(int64_t))
    if f.reg_bytes == NULL:
        PyMem_Free(block)
        f.regs = NULL
        raise MemoryError()
    for i in range(vm.n_const):
        _incref(<PyObject*>vm._consts[i])
        f.regs[vm.const_regs[i]] = <PyObject*>vm._consts[i]
    return 0


cdef void _frame_free(VM vm, Frame *f) noexcept:
    """Release a frame's registers and its block."""
    cdef Py_ssize_t i
    if f.regs != NULL:
        for i in range(vm.n_regs):
            _setreg(f.regs, <int>i, NULL)
    PyMem_Free(f.regs)
    PyMem_Free(f.reg_bytes)
    f.regs = f.argbuf = f.update_old = NULL
    f.reg_bytes = NULL


cdef int _build_storage(VM vm, p, Py_ssize_t n_regs) except -1:
    """Constants, the register lists read at each run, and the main frame."""
    cdef Py_ssize_t i, r
    vm.n_regs = n_regs
    vm.input_regs = _copy_ints(p.input_regs, &vm.n_inputs, 0, n_regs, "input_regs")
    vm.output_regs = _copy_ints(p.output_regs, &vm.n_outputs, 0, n_regs, "output_regs")
    const_regs = [int(r) for r in np.asarray(p.const_regs).reshape(-1)]
    vm._consts = list(p.const_values)
    if len(const_regs) != len(vm._consts):
        raise ValueError("Program: const_regs and const_values differ in length")
    is_const = np.zeros(n_regs, bool)
    for i, r in enumerate(const_regs):
        if not 0 <= r < n_regs:
            raise ValueError(f"Program.const_regs[{i}] = {r} is outside [0, {n_regs})")
        is_const[r] = True
    vm.const_regs = _copy_ints(np.asarray(const_regs, np.intc), &vm.n_const, 0, n_regs,
                               "const_regs")
    vm.clear_regs = _copy_ints(np.flatnonzero(~is_const), &vm.n_clear, 0, n_regs,
                               "registers")
    _build_cells(vm, p, n_regs)
    return _frame_alloc(vm, &vm.main)


cdef void _release(VM vm) noexcept:
    """Free everything __init__ built (frames included; none is in use)."""
    cdef Frame *f
    _frame_free(vm, &vm.main)
    while vm.pool != NULL:
        f = vm.pool
        vm.pool = f.next
        _frame_free(vm, f)
        PyMem_Free(f)
    PyMem_Free(vm.instrs)
    PyMem_Free(vm.index_buf)
    PyMem_Free(vm.const_regs)
    PyMem_Free(vm.locks)
    PyMem_Free(vm.input_regs)
    PyMem_Free(vm.output_regs)
    PyMem_Free(vm.clear_regs)
    PyMem_Free(vm.shared_regs)
    PyMem_Free(vm.shared_cells)
    PyMem_Free(vm.update_regs)
    PyMem_Free(vm.update_cells)
    PyMem_Free(vm.specs)
    PyMem_Free(vm.spec_shapes)
    PyMem_Free(vm.trace_runs)
    PyMem_Free(vm.trace_events)
    vm.trace_runs, vm.trace_events = NULL, NULL
    vm.trace_slots = vm.trace_seq = 0
    vm.instrs = NULL
    vm.index_buf = NULL
    vm.const_regs = NULL
    vm.locks = NULL
    vm._locks = None
    vm.input_regs = vm.output_regs = vm.clear_regs = NULL
    vm.shared_regs = vm.update_regs = NULL
    vm.shared_cells = vm.update_cells = NULL
    vm.specs = NULL
    vm.spec_shapes = NULL
    vm.times_ptr = vm.counts_ptr = vm.reg_info_ptr = NULL
    vm.n_regs = vm.n_instr = vm.n_inputs = vm.n_outputs = 0
    vm.n_clear = vm.n_shared = vm.n_updates = vm.n_const = vm.n_locks = vm.max_in = 0
