"""Choosing a thunk for every THUNK instruction of a schedule.

The order of preference: a C thunk from a registered C factory (generated
elementwise kernels, Cython BLAS) when the C VM runs the program, else the
op's numpy/scipy thunk from ``vmc.thunks``.
"""
from __future__ import annotations

from vmc.thunks import py_thunk
from vmc.thunks.registry import c_thunks_for

from .program import THUNK


def build_thunks(code, destroy, linker, generate_c=True):
    """``(thunk_index, thunks, node_of_pc)`` for the instructions ``code``;
    ``generate_c``: whether builders may run the C compiler."""
    thunk_index, thunks, node_of_pc = {}, [], {}
    c_built = c_thunks_for(code, destroy, generate_c) if linker == "cvm" else {}
    for pc, instr in enumerate(code):
        node_of_pc[pc] = instr.node
        if instr.kind != THUNK:
            continue
        t = c_built.get(pc)
        if t is None:
            t = py_thunk(instr.node, destroy.get(pc, frozenset()))
        thunk_index[pc] = len(thunks)
        thunks.append(t)
    return thunk_index, thunks, node_of_pc
