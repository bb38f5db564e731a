"""``config.check_graph``: validate a FunctionGraph between passes."""
from __future__ import annotations

from collections import Counter

from vmc.graph.basic import fixed_trace
from vmc.graph.traversal import toposort


class GraphCheckError(AssertionError):
    pass


def check_fgraph(fgraph, after="?"):
    """Raise GraphCheckError when the bookkeeping of ``fgraph`` is inconsistent
    (clients that do not match the inputs of the nodes, nodes or variables not
    tracked, unreachable nodes, a cycle) or its types are (``check_types``)."""
    def fail(msg):
        raise GraphCheckError(f"after pass {after!r}: {msg}")

    _check_acyclic(fgraph, fail)
    order = toposort(fgraph.outputs, blockers=fgraph.inputs)
    if len(set(order)) != len(order):
        fail("a node appears twice in the topological order")
    pos = set(order)
    live = set(order)
    if live != fgraph.apply_nodes:
        extra = fgraph.apply_nodes - live
        missing = live - fgraph.apply_nodes
        fail(f"apply_nodes differs from the nodes the outputs need "
             f"(untracked: {list(missing)[:3]}, dead: {list(extra)[:3]})")
    expected = Counter()
    for node in order:
        for i, v in enumerate(node.inputs):
            if v not in fgraph.variables:
                fail(f"input {i} of {node.op} ({v!r}) is not a variable of the graph")
            if v.owner is not None and v not in fgraph.inputs and v.owner not in pos:
                fail(f"{node.op} reads {v!r}, whose node is not in the graph")
            expected[(v, node, i)] += 1
        for k, o in enumerate(node.outputs):
            if o.owner is not node or o.index != k:
                fail(f"output {k} of {node.op} does not point back to its node")
    for i, o in enumerate(fgraph.outputs):
        expected[(o, "output", i)] += 1
    actual = Counter()
    for v, cl in fgraph.clients.items():
        for node, i in cl:
            actual[(v, node, i)] += 1
    if expected != actual:
        diff = (expected - actual) + (actual - expected)
        fail(f"clients disagree with node inputs: {list(diff)[:3]}")
    check_types(order, fail)


def check_types(order, fail):
    """Each node's outputs have the dtype and rank its op gives them on its
    inputs now (``make_node`` again), and no static size that contradicts the
    op's: a rewrite that replaced an input by one of another dtype or rank, or
    built a node with a wrong output type, is caught here. A static size the
    op cannot infer again is fine (``reshape(x, (2, 2))`` knew its shape from
    the literal); so is an op whose ``make_node`` takes other arguments than
    its node's inputs (random variables take ``size=None``)."""
    for node in order:
        try:
            with fixed_trace(node.trace):
                fresh = node.op.make_node(*node.inputs)
        except Exception:             # noqa: BLE001 - cannot be rebuilt this way
            continue
        if len(fresh.outputs) != len(node.outputs):
            fail(f"{node.op} now makes {len(fresh.outputs)} outputs, the node has "
                 f"{len(node.outputs)} (created at {_where(node)})")
        for k, (o, f) in enumerate(zip(node.outputs, fresh.outputs)):
            if o.type != f.type and not _compatible(o.type, f.type):
                fail(f"output {k} of {node.op} has type {o.type}, but on its inputs "
                     f"({', '.join(str(v.type) for v in node.inputs)}) the op makes "
                     f"{f.type} (the node was created at {_where(node)})")


def _compatible(a, b):
    """Same kind of type, dtype and rank, and no static size that differs."""
    if type(a) is not type(b):
        return False
    shape_a, shape_b = getattr(a, "shape", None), getattr(b, "shape", None)
    if shape_a is None or shape_b is None:
        return a == b
    return (a.dtype == b.dtype and len(shape_a) == len(shape_b)
            and all(x is None or y is None or x == y for x, y in zip(shape_a, shape_b)))


def _where(node):
    fname, line = node.trace
    return f"{fname}:{line}"


def _check_acyclic(fgraph, fail):
    """Iterative depth-first search with colours (a cycle would hang toposort)."""
    inputs = set(fgraph.inputs)
    state = {}                       # node -> 1 (on the path) or 2 (done)
    for out in fgraph.outputs:
        if out.owner is None or out in inputs:
            continue
        stack = [(out.owner, iter(out.owner.inputs))]
        state[out.owner] = state.get(out.owner, 1)
        if state[out.owner] == 2:
            continue
        while stack:
            node, it = stack[-1]
            for v in it:
                child = v.owner
                if child is None or v in inputs:
                    continue
                s = state.get(child)
                if s == 1:
                    fail(f"cycle through {child.op}")
                if s is None:
                    state[child] = 1
                    stack.append((child, iter(child.inputs)))
                    break
            else:
                state[node] = 2
                stack.pop()
