"""The Program: what the scheduler hands to a VM.

A Program is flat data: integer arrays that describe the instructions, a table
of thunks, and the register numbers of inputs, outputs, constants and shared
storage. Both VMs (``vmc._vm.VM`` in Cython, ``vmc.compile.pyvm.PyVM`` in
Python) execute exactly this structure, and neither knows about graphs or ops.

Instructions (index ``pc``)
---------------------------
``kind[pc]``
    ``THUNK``: call ``thunks[thunk[pc]]`` on the registers
    ``ins[in_start[pc]: in_start[pc] + n_in[pc]]`` writing
    ``outs[out_start[pc]: out_start[pc] + n_out[pc]]``; then release the
    registers ``frees[free_start[pc]: free_start[pc] + n_free[pc]]``.

    ``JUMP_IF_FALSE``: the condition is the register ``ins[in_start[pc]]``
    (a 0-d array or a Python/numpy scalar); when it is false, release the
    frees of this instruction (what the skipped block would have released)
    and continue at ``target[pc]``; when it is true, continue at ``pc + 1``
    and release nothing.

    ``JUMP``: release its frees and continue at ``target[pc]``.

    ``MOVE``: ``regs[outs[out_start[pc]]] = regs[ins[in_start[pc]]]`` (the
    join of an ifelse: both branches write the same output register), then
    release frees.

Thunks
------
``thunks[i]`` is either a Python callable, ``fn(*inputs)`` returning the
single output when the instruction has one output and a tuple otherwise, or a
``CThunk`` holding a capsule ``fn`` (a pointer to
``int thunk(void *ctx, PyObject **regs, const int *ins, const int *outs)``)
and a capsule (or None) ``ctx``. A C thunk reads ``regs[ins[k]]`` (borrowed)
and stores a new reference into ``regs[outs[k]]``, releasing what was there;
it returns 0, or -1 with a Python exception set.

Storage
-------
``input_regs``: the registers the arguments are written to, in order.
``output_regs``: the registers read back as results.
``const_regs`` / ``const_values``: loaded once, never released.
``shared_regs`` / ``shared_cells``: each cell is a one-element list holding a
shared variable's current value, loaded before each run.
``update_regs`` / ``update_cells``: after a successful run,
``cell[0] = regs[reg]`` for each pair, all together.
``update_locks``: empty, or one lock per update cell (``vmc._vm.CellLock`` for the
Cython VM): a run holds them all, taken in their ``order``, from loading the shared
values to the commit, so that runs updating one cell take turns (see ``vmc._vm.VM``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

THUNK, JUMP_IF_FALSE, JUMP, MOVE = 0, 1, 2, 3
KIND_NAMES = {THUNK: "thunk", JUMP_IF_FALSE: "jump_if_false", JUMP: "jump", MOVE: "move"}


@dataclass
class CThunk:
    """A thunk implemented in C behind the VM's one function-pointer ABI."""
    fn: Any           # PyCapsule named "vmc_thunk" holding the function pointer
    ctx: Any = None   # PyCapsule named "vmc_ctx" (or None): the thunk's private data
    keepalive: Any = None  # objects the ctx points into (shared library, arrays)


@dataclass
class Program:
    n_regs: int
    kind: np.ndarray        # int32[n_instr]
    thunk: np.ndarray       # int32[n_instr], -1 for jumps and moves
    in_start: np.ndarray    # int32[n_instr]
    n_in: np.ndarray        # int32[n_instr]
    out_start: np.ndarray   # int32[n_instr]
    n_out: np.ndarray       # int32[n_instr]
    free_start: np.ndarray  # int32[n_instr]
    n_free: np.ndarray      # int32[n_instr]
    target: np.ndarray      # int32[n_instr], -1 unless a jump
    ins: np.ndarray         # int32, flat
    outs: np.ndarray        # int32, flat
    frees: np.ndarray       # int32, flat
    thunks: list
    input_regs: np.ndarray
    output_regs: np.ndarray
    const_regs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    const_values: list = field(default_factory=list)
    shared_regs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    shared_cells: list = field(default_factory=list)
    update_regs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    update_cells: list = field(default_factory=list)
    update_locks: list = field(default_factory=list)
    # For messages and profiles only; the VMs never read these.
    labels: list = field(default_factory=list)   # one string per instruction

    @property
    def n_instr(self) -> int:
        return len(self.kind)

    def __str__(self) -> str:
        lines = []
        for pc in range(self.n_instr):
            a, b = self.in_start[pc], self.in_start[pc] + self.n_in[pc]
            c, d = self.out_start[pc], self.out_start[pc] + self.n_out[pc]
            e, f = self.free_start[pc], self.free_start[pc] + self.n_free[pc]
            label = self.labels[pc] if pc < len(self.labels) else ""
            tgt = f" -> {self.target[pc]}" if self.target[pc] >= 0 else ""
            lines.append(
                f"{pc:4d} {KIND_NAMES[int(self.kind[pc])]:<13} {label:<28} "
                f"in={[int(i) for i in self.ins[a:b]]} out={[int(i) for i in self.outs[c:d]]}"
                f"{tgt} free={[int(i) for i in self.frees[e:f]]}")
        return "\n".join(lines)


def int_array(values) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(values, dtype=np.int32).reshape(-1))
