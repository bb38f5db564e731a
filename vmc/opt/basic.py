"""Constant folding and dead-code removal."""
from __future__ import annotations

import numpy as np

from vmc.graph.basic import Constant, Op
from vmc.graph.type import TensorType
from vmc.tensor.creation import ARange, Eye
from vmc.tensor.shape import Alloc

from .rewriting import node_rewriter

# Outputs larger than this stay computed at run time: a folded constant lives
# in the compiled function for good.
MAX_FOLD_ELEMENTS = 1 << 14


def _too_big_to_try(node):
    """Ops whose output size is known from their constant inputs before running."""
    op = node.op
    try:
        if isinstance(op, Alloc):
            n = int(np.prod([int(d.data) for d in node.inputs[1:]]))
        elif isinstance(op, Eye):
            n = int(node.inputs[0].data) * int(node.inputs[1].data)
        elif isinstance(op, ARange):
            a, b, c = (float(v.data) for v in node.inputs)
            n = int(np.ceil((b - a) / c)) if c else 0
        else:
            return False
    except (TypeError, ValueError, OverflowError):
        return True
    return n > MAX_FOLD_ELEMENTS


def _foldable(node):
    for v in node.inputs:
        if not isinstance(v, Constant):
            return False
    op = node.op
    if getattr(op, "nondeterministic", False) or "Random" in type(op).__name__:
        return False
    return all(isinstance(o.type, TensorType) for o in node.outputs)


@node_rewriter("constant_folding", Op, tags=("basic",))
def constant_folding(fgraph, node):
    """A node whose inputs are all constants becomes its value, computed by
    ``fgraph.evaluate`` (``optimize``'s evaluator: rewrites never run ops
    themselves), unless the value is large. No evaluator, no folding."""
    evaluate = fgraph.evaluate
    if evaluate is None or not _foldable(node) or _too_big_to_try(node):
        return None
    try:
        with np.errstate(all="ignore"):
            results = evaluate(node, [v.data for v in node.inputs])
    except NotImplementedError:
        return None
    out = []
    for o, r in zip(node.outputs, results):
        r = np.asarray(r, dtype=o.type.dtype)
        if r.size > MAX_FOLD_ELEMENTS or r.ndim != o.type.ndim:
            return None
        out.append(o.type.constant_class(TensorType(o.type.dtype, r.shape), r))
    return out


def inline_pass(fgraph, mode=None):
    """Replace each application of an ``OpFromGraph(..., inline=True)`` by its
    inner graph, before the other rewrites see it (Theano's ``inline``)."""
    from vmc.tensor.userops import OpFromGraph
    fired = 0
    for node in fgraph.toposort():
        if isinstance(node.op, OpFromGraph) and node.op.inline:
            new = node.op.inner_graph(node.inputs)
            # An output nobody reads is not replaced: its inner graph would
            # join the graph as dead nodes.
            fgraph.replace_all([(o, n) for o, n in zip(node.outputs, new)
                                if fgraph.clients.get(o)], reason="inline")
            fired += 1
    return {"inline": fired} if fired else {}


def dead_code_pass(fgraph, mode=None):
    """Drop nodes that no output needs (rewrites prune as they go; this also
    catches nodes left unreachable by a pass that edited inputs directly)."""
    live = set(fgraph.toposort())
    dead = [n for n in fgraph.apply_nodes if n not in live]
    for node in dead:
        fgraph.detach(node)
    used = set(fgraph.inputs) | set(fgraph.outputs)
    for node in live:
        used.update(node.inputs)
        used.update(node.outputs)
    for v in list(fgraph.variables):
        if v not in used:
            fgraph.variables.discard(v)
            fgraph.clients.pop(v, None)
    return fgraph
