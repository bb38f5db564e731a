"""The pure-Python reference VM: the definition of what a Program means.

``vmc._vm.VM`` runs the same Program from Cython; tests run functions on
both and compare. Keep this small and obvious.
"""
from __future__ import annotations

import time

import numpy as np

from .program import JUMP, JUMP_IF_FALSE, MOVE, THUNK, CThunk, Program


class PyVM:
    def __init__(self, program: Program):
        self.program = program
        self.regs = [None] * program.n_regs
        for r, v in zip(program.const_regs, program.const_values):
            self.regs[r] = v
        self.profile = False
        self.times = np.zeros(program.n_instr, np.int64)
        self.counts = np.zeros(program.n_instr, np.int64)
        self.failed_pc = -1
        self.failed_inputs = []
        for t in program.thunks:
            if isinstance(t, CThunk):
                raise TypeError("the Python VM runs Python thunks only; "
                                "compile with linker='cvm' for C thunks")

    def run(self, args):
        """Run once on ``args``; return the list of outputs; commit updates."""
        p, regs = self.program, self.regs
        for r, v in zip(p.input_regs, args):
            regs[r] = v
        for r, cell in zip(p.shared_regs, p.shared_cells):
            regs[r] = cell[0]
        pc, n = 0, p.n_instr
        self._last = -1
        try:
            while pc < n:
                t0 = time.perf_counter_ns() if self.profile else 0
                pc = self._step(pc)
                if self.profile:
                    self.times[self._last] += time.perf_counter_ns() - t0
                    self.counts[self._last] += 1
        except BaseException:
            self.failed_pc = self._last
            self.failed_inputs = self._describe_inputs(self._last)
            self._clear()
            raise
        outputs = [regs[r] for r in p.output_regs]
        new_values = [regs[r] for r in p.update_regs]
        for cell, v in zip(p.update_cells, new_values):
            cell[0] = v
        self._clear()
        return outputs

    def _step(self, pc: int) -> int:
        p, regs = self.program, self.regs
        self._last = pc
        kind = p.kind[pc]
        ins = p.ins[p.in_start[pc]: p.in_start[pc] + p.n_in[pc]]
        outs = p.outs[p.out_start[pc]: p.out_start[pc] + p.n_out[pc]]
        frees = p.frees[p.free_start[pc]: p.free_start[pc] + p.n_free[pc]]
        nxt = pc + 1
        if kind == THUNK:
            result = p.thunks[p.thunk[pc]](*[regs[i] for i in ins])
            if len(outs) == 1:
                regs[outs[0]] = result
            else:
                for o, v in zip(outs, result):
                    regs[o] = v
        elif kind == MOVE:
            regs[outs[0]] = regs[ins[0]]
        elif kind == JUMP_IF_FALSE:
            if regs[ins[0]]:
                return nxt
            nxt = p.target[pc]
        elif kind == JUMP:
            nxt = p.target[pc]
        for r in frees:
            regs[r] = None
        return nxt

    def _describe_inputs(self, pc):
        """(shape, dtype) of the failing instruction's inputs, for the message."""
        p = self.program
        if pc < 0:
            return []
        ins = p.ins[p.in_start[pc]: p.in_start[pc] + p.n_in[pc]]
        return [(np.shape(self.regs[i]), getattr(self.regs[i], "dtype", type(self.regs[i])))
                for i in ins]

    def _clear(self):
        p, regs = self.program, self.regs
        keep = set(int(r) for r in p.const_regs)
        for i in range(len(regs)):
            if i not in keep:
                regs[i] = None


class PyCallVM(PyVM):
    """The call path of a compiled function, in Python, over ``PyVM``.

    Mirrors ``vmc._vm.VM.__call__``: bind, check, run, unpack, report errors.
    """

    def __init__(self, program):
        super().__init__(program)
        self.trust_input = False
        self.unpack_single = False
        self._n_inputs = len(program.input_regs)
        self._specs = None

    def set_input_specs(self, dtypes, ndims, shapes, filters):
        self._specs = list(zip(dtypes, ndims, shapes, filters))

    def set_profiling(self, on):
        self.profile = bool(on)

    def clear_registers(self):
        self._clear()

    def _bind(self, args, kwargs):
        raise TypeError(f"expected {self._n_inputs} positional arguments, got {len(args)}")

    def _handle_error(self, exc):
        raise exc

    def __call__(self, *args, **kwargs):
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
            self._handle_error(exc)
            raise
        return outs[0] if self.unpack_single else outs
