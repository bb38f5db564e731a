"""Runtime errors of compiled functions, told in the user's terms."""
from __future__ import annotations


def enrich(f, exc):
    """``exc`` re-made with the failing op, its input shapes and dtypes, and the
    line of user code that created the node."""
    pc = getattr(f, "failed_pc", -1)
    node = f.node_of_pc.get(pc) if pc is not None and pc >= 0 else None
    if node is None:
        return exc
    described = getattr(f, "failed_inputs", None) or []
    shapes = ", ".join(f"{tuple(s)} {d}" for s, d in described) or "unknown"
    fname, line = node.trace
    msg = (f"{exc}\n  while running {node.op} (instruction {pc})"
           f"\n  input shapes and dtypes: {shapes}"
           f"\n  the node was created at {fname}:{line}")
    try:
        new = type(exc)(msg)
    except Exception:
        exc.add_note(msg)
        return exc
    new.__cause__ = None
    new.__traceback__ = exc.__traceback__
    return new
