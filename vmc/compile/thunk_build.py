"""Choosing a thunk for every THUNK instruction of a schedule, from the thunk
registry (``vmc.thunks.registry``): batch builders and c factories when the C
VM runs the program, else (and for what they leave) the py factories."""
from __future__ import annotations

from vmc.program import THUNK, CThunk
from vmc.thunks.registry import build_thunks as _from_registry


def build_thunks(code, destroy, linker, generate_c=True, profile_key=None):
    """``(thunk_index, thunks, node_of_pc)`` for the instructions ``code``;
    ``generate_c``: whether builders may run the C compiler. Each node's thunk
    comes from the registry of the device it runs on (``node_device``).
    ``profile_key``: a profiled function's key; its GPU thunks book their kernel
    times under ``(profile_key, pc)`` (``vmc.gpu.profile``)."""
    items = [(pc, ins.node, destroy.get(pc, frozenset()))
             for pc, ins in enumerate(code) if ins.kind == THUNK]
    by_device = {}
    for it in items:
        by_device.setdefault(node_device(it[1]), []).append(it)
    built = {}
    for device, mine in by_device.items():
        built.update(_from_registry(mine, device, use_c=linker == "cvm" or device != "cpu",
                                    generate_c=generate_c or device != "cpu"))
    thunk_index, thunks = {}, []
    for pc, node, _ in items:
        t = built[pc]
        device = _device_name(node)
        if device is not None:
            if profile_key is not None:
                from vmc.gpu.profile import profiled
                t = profiled(t, (profile_key, pc), device)
            elif linker == "py" and isinstance(t, CThunk):
                t = t.keepalive          # a GPU C thunk is also callable from Python
        thunk_index[pc] = len(thunks)
        thunks.append(t)
    return thunk_index, thunks, {pc: ins.node for pc, ins in enumerate(code)}


def _device_name(node):
    for v in list(node.outputs) + list(node.inputs):
        d = getattr(v.type, "device", None)
        if d is not None:
            return d
    return None


def node_device(node):
    """The thunk registry a node's thunk comes from: "cpu", or the GPU driver
    ("cuda", "opencl") of its device-typed variables (``vmc.gpu.types``)."""
    for v in node.outputs:
        d = getattr(v.type, "device", None)
        if d is not None:
            return d.split(":")[0]
    for v in node.inputs:
        d = getattr(v.type, "device", None)
        if d is not None:
            return d.split(":")[0]
    return "cpu"
