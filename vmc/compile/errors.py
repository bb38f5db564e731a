"""Runtime errors of compiled functions, told in the user's terms."""
from __future__ import annotations

import numpy as np


def enrich(f, exc):
    """``exc`` re-made, with its type kept, naming the failing op, its input
    shapes and dtypes, and the line of user code that created the node.

    ``f`` is the compiled function: it holds ``failed_pc`` (the instruction
    that raised), ``failed_inputs`` (``(shape, dtype)`` of its inputs, as
    both VMs record them) and ``node_of_pc``.
    """
    pc = getattr(f, "failed_pc", -1)
    node = f.node_of_pc.get(pc) if pc is not None and pc >= 0 else None
    if node is None:
        return exc
    msg = f"{exc}\n{describe_failure(node, pc, getattr(f, 'failed_inputs', None))}"
    try:
        new = type(exc)(msg)
    except Exception:           # an exception type with a constructor of its own
        exc.add_note(msg)
        return exc
    if str(new) != msg and not isinstance(new, KeyError):
        exc.add_note(msg)       # a type that rewrites its message: keep the original
        return exc
    new.__traceback__ = exc.__traceback__
    return new


def describe_failure(node, pc, failed_inputs):
    """The lines added to a runtime error: op, inputs, where the node was made."""
    described = [_describe(d) for d in (failed_inputs or [])]
    lines = [f"  while running {node.op} (instruction {pc})"]
    if described:
        lines.append("  input shapes and dtypes: " + ", ".join(described))
        for k, (v, d) in enumerate(zip(node.inputs, described)):
            name = f" {v.name!r}" if getattr(v, "name", None) else ""
            lines.append(f"    input {k}{name}: {d}, declared {v.type}")
    fname, line = node.trace
    lines.append(f"  the node was created at {fname}:{line}")
    return "\n".join(lines)


def _describe(d):
    """``(shape, dtype)`` as recorded by the VMs, or a value: ``(3, 4) float64``."""
    if isinstance(d, tuple) and len(d) == 2 and isinstance(d[0], tuple):
        shape, dtype = d
    else:
        shape, dtype = np.shape(d), getattr(d, "dtype", type(d))
    if isinstance(dtype, type):
        dtype = dtype.__name__
    return f"{tuple(shape)} {dtype}"
