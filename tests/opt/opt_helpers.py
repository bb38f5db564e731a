"""Helpers for the optimizer tests: compile under a mode, look at the graph.

(A plain module, imported as ``opt_helpers``: the test folders are not packages.)
"""
from __future__ import annotations

import vmc
from vmc.opt import Mode
from vmc.tensor.fused import FusedElemwise
from vmc.tensor.elemwise import Elemwise, OutputCopy
from vmc.tensor.math import CAReduce
from vmc.tensor.shape import ShapeI


def compile_fn(inputs, outputs, mode="fast_run", **kw):
    kw.setdefault("on_unused_input", "ignore")
    return vmc.function(inputs, outputs, mode=mode, **kw)


def nodes(f):
    """The nodes of the optimized graph, without the copies that keep the
    results apart from the arguments (not a rewrite's doing)."""
    return [n for n in f.fgraph.toposort() if not isinstance(n.op, OutputCopy)]


def op_names(f):
    """One name per node: the scalar op of elementwise nodes, the printed name
    of reductions and Shape_i (Sum, Max, Shape_i), else the op class's name.
    To assert that something is absent, use ``absent``, which refuses names
    this function can never return."""
    out = []
    for n in nodes(f):
        if isinstance(n.op, Elemwise):
            out.append(n.op.scalar_op.name)
        elif isinstance(n.op, (CAReduce, ShapeI)):
            out.append(str(n.op).split("{")[0])          # Sum, Max, ..., Shape_i
        else:
            out.append(type(n.op).__name__)
    return out


def possible_names():
    """Every name ``op_names`` can return for some graph."""
    import importlib
    import inspect
    import pkgutil
    from vmc.graph.basic import Op
    from vmc.tensor.math import REDUCTIONS
    from vmc.tensor.scalar import SCALAR_OPS
    names = set(SCALAR_OPS) | {r.label for r in REDUCTIONS.values()} | {"Shape_i", "cast"}
    for info in pkgutil.walk_packages(vmc.__path__, "vmc."):
        if info.name.endswith(("__main__", "demo", "_stock_kernels")):
            continue
        mod = importlib.import_module(info.name)
        names |= {c.__name__ for _, c in inspect.getmembers(mod, inspect.isclass)
                  if issubclass(c, Op)}
    return names


def absent(f, *names):
    """Assert that no node of ``f`` has any of ``names`` (as ``op_names`` gives
    them); a name that ``op_names`` can never return is an error, so the
    assertion can fail."""
    unknown = set(names) - possible_names()
    assert not unknown, f"op_names never returns {sorted(unknown)}: the check could not fail"
    present = set(names) & set(op_names(f))
    assert not present, f"{sorted(present)} still in the graph: {op_names(f)}"


def fused_ops(f):
    """Scalar-op names inside every FusedElemwise node, flattened."""
    out = []
    for n in nodes(f):
        if isinstance(n.op, FusedElemwise):
            out += [sop.name for sop, _, _ in n.op.ops]
    return out


def all_scalar_ops(f):
    """Scalar ops in elementwise and fused nodes."""
    out = []
    for n in nodes(f):
        if isinstance(n.op, Elemwise):
            out.append(n.op.scalar_op.name)
        elif isinstance(n.op, FusedElemwise):
            out += [sop.name for sop, _, _ in n.op.ops]
    return out


NOFUSE = Mode("fast_run").excluding("fusion")
