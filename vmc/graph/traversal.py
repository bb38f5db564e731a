"""Graph walks. All iterative (no recursion limit) and deterministic (no set order)."""
from __future__ import annotations

from .basic import Constant, SharedVariable, Variable


def toposort(outputs, blockers=()):
    """Apply nodes needed for ``outputs``, each after its inputs' owners.

    The walk stops at variables in ``blockers`` (treated as inputs).
    """
    blockers = blockers if isinstance(blockers, (set, frozenset, dict)) else set(blockers)
    order, done = [], set()
    stack = [(o.owner, False) for o in reversed(outputs)
             if o.owner is not None and o not in blockers]
    while stack:
        node, expanded = stack.pop()
        if node in done:
            continue
        if expanded:
            done.add(node)
            order.append(node)
            continue
        stack.append((node, True))
        for inp in reversed(node.inputs):
            if inp.owner is not None and inp.owner not in done and inp not in blockers:
                stack.append((inp.owner, False))
    return order


def ancestors(outputs, blockers=()):
    """Every variable ``outputs`` depend on (themselves included), in a
    deterministic order."""
    blockers = set(blockers)
    seen, order = set(), []
    stack = list(reversed(outputs))
    while stack:
        v = stack.pop()
        if v in seen:
            continue
        seen.add(v)
        order.append(v)
        if v.owner is not None and v not in blockers:
            stack.extend(reversed(v.owner.inputs))
    return order


def graph_inputs(outputs, blockers=()):
    """The ownerless variables (inputs, constants, shared) ``outputs`` depend on."""
    blockers = set(blockers)
    return [v for v in ancestors(outputs, blockers) if v.owner is None or v in blockers]


def free_inputs(outputs):
    """Graph inputs that need a value at call time: not constants, not shared."""
    return [v for v in graph_inputs(outputs)
            if not isinstance(v, (Constant, SharedVariable))]


def clone_get_equiv(inputs, outputs, copy_inputs=True, memo=None):
    """Clone the graph between ``inputs`` and ``outputs``; return the map
    old variable -> new variable (and old node -> new node)."""
    memo = {} if memo is None else memo
    for v in inputs:
        if v not in memo:
            memo[v] = v.clone() if copy_inputs else v
    for node in toposort(outputs, blockers=inputs):
        new_inputs = []
        for v in node.inputs:
            if v not in memo:
                memo[v] = v.clone() if (copy_inputs and v.owner is None
                                        and not isinstance(v, (Constant, SharedVariable))) else v
            new_inputs.append(memo[v])
        new_node = node.clone_with_new_inputs(new_inputs)
        memo[node] = new_node
        for old, new in zip(node.outputs, new_node.outputs):
            memo.setdefault(old, new)
    for v in outputs:
        memo.setdefault(v, v)
    return memo


def clone(inputs, outputs, copy_inputs=True):
    """Copy of the graph from ``inputs`` to ``outputs``: ``(new_inputs, new_outputs)``."""
    memo = clone_get_equiv(inputs, outputs, copy_inputs)
    return [memo[v] for v in inputs], [memo[v] for v in outputs]


def clone_replace(outputs, replace=None):
    """Copy ``outputs``' graph with each key of ``replace`` swapped for its value.

    ``replace`` maps variables to variables (or a list of pairs). The new value
    must have a compatible type (same dtype and rank).
    """
    single = isinstance(outputs, Variable)
    outs = [outputs] if single else list(outputs)
    pairs = list(replace.items()) if isinstance(replace, dict) else list(replace or ())
    memo = {}
    for old, new in pairs:
        new = _as_variable_like(old, new)
        if old.type.dtype != new.type.dtype or old.type.ndim != new.type.ndim:
            raise TypeError(f"clone_replace: cannot replace {old!r} of type {old.type} "
                            f"by {new!r} of type {new.type}")
        memo[old] = new
    memo = clone_get_equiv(list(memo), outs, copy_inputs=False, memo=memo)
    new_outs = [memo[o] for o in outs]
    return new_outs[0] if single else new_outs


def _as_variable_like(old, new):
    if isinstance(new, Variable):
        return new
    if hasattr(old, "_as_like"):   # tensor variables know how to wrap a value
        return old._as_like(new)
    raise TypeError(f"clone_replace: the replacement of {old!r} must be a Variable, "
                    f"got {type(new).__name__}")


def io_toposort(inputs, outputs):
    return toposort(outputs, blockers=inputs)
