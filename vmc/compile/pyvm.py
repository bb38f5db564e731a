"""The pure-Python reference VM: the definition of what a Program means.

``vmc._vm.VM`` runs the same Program from Cython; tests run functions on
both and compare. Keep this small and obvious.

``PyVM.run`` and ``PyVM._step`` are the whole definition. The subclass
``ProfilingPyVM`` adds profiling: ``profile`` holds anything (a compiled
function keeps its ``ProfileStats`` there); while it is true, or after ``set_profiling(True)``,
the flag ``profiling`` is on and each run adds to ``times`` (ns) and
``counts`` per instruction, to ``vm_ns`` (the whole run: loading shared
values, the loop, the commit), and records the shapes and dtypes each
instruction produced in ``out_shapes``. The Cython VM has the same names.

Each run works on registers of its own (a copy of ``regs``, which holds the
constants), so runs may overlap (threads, re-entrant calls); runs that update
shared variables hold the program's ``update_locks`` from loading to commit,
as the Cython VM does.
"""
from __future__ import annotations

import collections
import threading
import time

import numpy as np

from vmc.program import JUMP, JUMP_IF_FALSE, MOVE, THUNK, CThunk, Program

# The fields of one traced instruction, as the Cython VM's (vmc._vm.TRACE_EVENT).
TRACE_EVENT = np.dtype([("pc", np.int64), ("t0", np.int64), ("t1", np.int64),
                        ("nbytes", np.int64), ("live", np.int64), ("type_num", np.int64),
                        ("ndim", np.int64), ("dims", np.int64, (4,))])


class PyVM:
    """Runs a Program: the definition of what each instruction means."""

    def __init__(self, program: Program):
        self.program = program
        self.regs = [None] * program.n_regs      # the constants; each run copies it
        for r, v in zip(program.const_regs, program.const_values):
            self.regs[r] = v
        # Per instruction, as Python lists (slicing the flat arrays at every
        # step would cost more than most thunks).
        p = program
        self._ins = _split(p.ins, p.in_start, p.n_in)
        self._outs = _split(p.outs, p.out_start, p.n_out)
        self._frees = _split(p.frees, p.free_start, p.n_free)
        self._kind = np.asarray(p.kind).tolist()
        self._thunk = [p.thunks[t] if t >= 0 else None for t in np.asarray(p.thunk).tolist()]
        self._target = np.asarray(p.target).tolist()
        self._locks = sorted({id(k): k for k in program.update_locks}.values(),
                             key=lambda k: getattr(k, "order", 0))
        self.failed_pc = -1
        self.failed_inputs = []
        for t in program.thunks:
            if isinstance(t, CThunk):
                raise TypeError("the Python VM runs Python thunks only; "
                                "compile with linker='cvm' for C thunks")

    def run(self, args):
        """Run once on ``args``; return the list of outputs; commit updates."""
        p, regs = self.program, list(self.regs)
        for r, v in zip(p.input_regs, args):
            regs[r] = v
        pc, taken = -1, []
        try:
            for lock in self._locks:
                lock.acquire()
                taken.append(lock)
            for r, cell in zip(p.shared_regs, p.shared_cells):
                regs[r] = cell[0]
            pc = 0
            while pc < p.n_instr:
                pc = self._step(pc, regs)
            # Commit all updates together, after everything that can fail.
            for cell, r in zip(p.update_cells, p.update_regs):
                cell[0] = regs[r]
        except BaseException:
            self.failed_pc = pc if pc < p.n_instr else -1
            self.failed_inputs = self._describe_inputs(self.failed_pc, regs)
            raise
        finally:
            for lock in reversed(taken):
                lock.release()
        self.failed_pc, self.failed_inputs = -1, []
        return [regs[r] for r in p.output_regs]

    def _step(self, pc: int, regs) -> int:
        """Execute instruction ``pc`` on ``regs``; return the next pc."""
        kind = self._kind[pc]
        ins, outs, frees = self._ins[pc], self._outs[pc], self._frees[pc]
        nxt = pc + 1
        if kind == THUNK:
            result = self._thunk[pc](*[regs[i] for i in ins])
            if len(outs) == 1:
                regs[outs[0]] = result
            else:
                for o, v in zip(outs, result):
                    regs[o] = v
        elif kind == MOVE:
            regs[outs[0]] = regs[ins[0]]
        elif kind == JUMP_IF_FALSE:
            if regs[ins[0]]:
                return nxt          # the block runs and frees its own registers
            nxt = self._target[pc]
        elif kind == JUMP:
            nxt = self._target[pc]
        for r in frees:
            regs[r] = None
        return nxt

    def _describe_inputs(self, pc, regs):
        """(shape, dtype) of the failing instruction's inputs, for the message."""
        if pc < 0:
            return []
        return [(np.shape(regs[i]), getattr(regs[i], "dtype", type(regs[i])))
                for i in self._ins[pc]]

    def clear_registers(self):
        """Nothing to release: each run's registers die with it."""


class ProfilingPyVM(PyVM):
    """``PyVM`` with the Cython VM's profiling names (module docstring): while
    ``profiling`` is on, each instruction is timed and its outputs described."""

    def __init__(self, program: Program):
        super().__init__(program)
        self._profile = None
        self.profiling = False
        self.times = np.zeros(program.n_instr, np.int64)
        self.counts = np.zeros(program.n_instr, np.int64)
        self.vm_ns = 0
        # pc -> {((shape, dtype), ...) per output: count}; filled while profiling
        self.out_shapes = {}
        self._overhead = 0         # ns the timers themselves cost in the current run
        self._traced = None        # deque of the last traced runs (set_trace), or None
        self._trace_seq = 0
        self._tracing = _Tracing()

    @property
    def profile(self):
        """Profiling is on while this is true; any object may be stored here."""
        return self._profile

    @profile.setter
    def profile(self, value):
        self._profile = value
        self.profiling = bool(value)

    def set_profiling(self, on):
        """Record per-instruction times and counts while ``on``."""
        self.profiling = bool(on)

    def set_trace(self, n_runs):
        """While profiling, keep every instruction's start and end of the last
        ``n_runs`` runs (``trace``, as the Cython VM's)."""
        if n_runs < 0:
            raise ValueError(f"set_trace: n_runs must be >= 0, got {n_runs}")
        self._traced = collections.deque(maxlen=n_runs) if n_runs else None
        self._trace_seq = 0

    @property
    def trace(self):
        """The traced runs, oldest first: ``[(run, events)]`` (see ``vmc._vm.VM.trace``)."""
        return [(dict(r.head), np.array(r.events, TRACE_EVENT)) for r in list(self._traced or ())]

    def run(self, args):
        if not self.profiling:
            return super().run(args)
        self._overhead = 0
        outer = self._tracing.run
        t0 = time.perf_counter_ns()
        if self._traced is not None:
            self._tracing.run = _TracedRun(self._trace_seq, t0)
            self._trace_seq += 1
        try:
            outputs = super().run(args)
        finally:
            traced, self._tracing.run = self._tracing.run, outer
            if traced is not outer:
                traced.head["t_end"] = time.perf_counter_ns()
                self._traced.append(traced)
        # what profiling itself costs stays out of the VM's time
        self.vm_ns += time.perf_counter_ns() - t0 - self._overhead
        return outputs

    def _step(self, pc, regs):
        if not self.profiling:
            return super()._step(pc, regs)
        t_rec = time.perf_counter_ns()
        before = [regs[i] for i in self._ins[pc]]
        t0 = time.perf_counter_ns()
        nxt = super()._step(pc, regs)
        t1 = time.perf_counter_ns()
        self.times[pc] += t1 - t0
        self.counts[pc] += 1
        self._record_shapes(pc, before, regs)
        if self._tracing.run is not None:
            self._tracing.run.record(self, pc, nxt, t0, t1, before, regs)
        self._overhead += (t0 - t_rec) + (time.perf_counter_ns() - t1)
        return nxt

    def _record_shapes(self, pc, ins, regs):
        """Note the shapes, dtypes and newly allocated bytes of what ``pc``
        wrote, given the values ``ins`` it read."""
        if self._kind[pc] != THUNK:
            return
        key = []
        for r in self._outs[pc]:
            v = regs[r]
            shape = tuple(np.shape(v)) if v is not None else None
            dtype = str(getattr(v, "dtype", type(v).__name__))
            key.append((shape, dtype, _new_bytes(v, ins)))
        seen = self.out_shapes.setdefault(pc, {})
        key = tuple(key)
        seen[key] = seen.get(key, 0) + 1

    def reset_profile(self):
        """Zero the recorded times, counts and shapes."""
        self.times[:] = 0
        self.counts[:] = 0
        self.vm_ns = 0
        self.out_shapes.clear()
        if self._traced is not None:
            self._traced.clear()
        self._trace_seq = 0


class _Tracing(threading.local):
    run = None          # the run this thread is tracing, if any


class _TracedRun:
    """One traced run of the Python VM: the rows of ``TRACE_EVENT``, and the
    bytes this run allocated per register (for the live total)."""

    def __init__(self, seq, t_begin):
        self.head = {"seq": seq, "t_begin": t_begin, "t_end": t_begin,
                     "thread": threading.get_ident()}
        self.events, self.reg_bytes, self.live = [], {}, 0

    def record(self, vm, pc, nxt, t0, t1, before, regs):
        kind, outs, nbytes = vm._kind[pc], vm._outs[pc], 0
        if kind == THUNK:
            for r in outs:
                b = _new_bytes(regs[r], before)
                self.live += b - self.reg_bytes.get(r, 0)
                self.reg_bytes[r] = b
                nbytes += b
        elif kind == MOVE:
            self.live -= self.reg_bytes.pop(outs[0], 0)
            self.reg_bytes[outs[0]] = self.reg_bytes.pop(vm._ins[pc][0], 0)
        if not (kind == JUMP_IF_FALSE and nxt == pc + 1):      # frees were released
            for r in vm._frees[pc]:
                self.live -= self.reg_bytes.pop(r, 0)
        v = regs[outs[0]] if kind == THUNK and outs else None
        shape = np.shape(v) if isinstance(v, (np.ndarray, np.generic)) else ()
        dims = (list(shape[:4]) + [0, 0, 0, 0])[:4]
        type_num = v.dtype.num if isinstance(v, (np.ndarray, np.generic)) else -1
        self.events.append((pc, t0, t1, nbytes, self.live, type_num, len(shape), dims))


def _split(flat, starts, counts):
    flat = np.asarray(flat).tolist()
    return [flat[a: a + n] for a, n in zip(np.asarray(starts).tolist(),
                                           np.asarray(counts).tolist())]


def _new_bytes(v, inputs):
    """Bytes an instruction allocated for output ``v``: none for a view or an
    input written in place."""
    if not isinstance(v, np.ndarray) or not v.flags.owndata:
        return 0
    if any(v is a for a in inputs):
        return 0
    return int(v.nbytes)


class PyCallVM(ProfilingPyVM):
    """The call path of a compiled function, in Python, over ``ProfilingPyVM``.

    Mirrors ``vmc._vm.VM.__call__``: bind, check, run, unpack, report errors.
    While profiling, the whole call (argument checks included) is timed and
    handed to ``profile.record_call(ns)`` when the profile object has it.
    """

    def __init__(self, program):
        super().__init__(program)
        self.trust_input = False
        self.unpack_single = False
        self._n_inputs = len(program.input_regs)
        self._specs = None

    def set_input_specs(self, dtypes, ndims, shapes, filters):
        self._specs = list(zip(dtypes, ndims, shapes, filters))

    def _bind(self, args, kwargs):
        raise TypeError(f"expected {self._n_inputs} positional arguments, got {len(args)}")

    def _handle_error(self, exc):
        raise exc

    def __call__(self, *args, **kwargs):
        if not self.profiling:
            return self._call(args, kwargs)
        t0 = time.perf_counter_ns()
        try:
            return self._call(args, kwargs)
        finally:
            record = getattr(self._profile, "record_call", None)
            if record is not None:
                record(time.perf_counter_ns() - t0)

    def _call(self, args, kwargs):
        if kwargs or len(args) != self._n_inputs:
            args = self._bind(args, kwargs)
        if not self.trust_input and self._specs is not None:
            checked = []
            for a, (dt, nd, shape, filt) in zip(args, self._specs):
                if type(a) is np.ndarray and a.dtype == dt and a.ndim == nd and all(
                        s < 0 or s == d for s, d in zip(shape, a.shape)):
                    checked.append(a)
                else:
                    checked.append(filt(a))
            args = checked
        try:
            outs = self.run(args)
        except Exception as exc:
            return self._handle_error(exc)
        return outs[0] if self.unpack_single else outs
