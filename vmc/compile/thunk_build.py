"""Choosing a thunk for every THUNK instruction of a schedule, from the thunk
registry (``vmc.thunks.registry``): batch builders and c factories when the C
VM runs the program, else (and for what they leave) the py factories."""
from __future__ import annotations

from vmc.program import THUNK
from vmc.thunks.registry import build_thunks as _from_registry


def build_thunks(code, destroy, linker, generate_c=True):
    """``(thunk_index, thunks, node_of_pc)`` for the instructions ``code``;
    ``generate_c``: whether builders may run the C compiler."""
    items = [(pc, ins.node, destroy.get(pc, frozenset()))
             for pc, ins in enumerate(code) if ins.kind == THUNK]
    built = _from_registry(items, "cpu", use_c=linker == "cvm", generate_c=generate_c)
    thunk_index, thunks = {}, []
    for pc, _, _ in items:
        thunk_index[pc] = len(thunks)
        thunks.append(built[pc])
    return thunk_index, thunks, {pc: ins.node for pc, ins in enumerate(code)}
