"""Graph walks. All iterative (no recursion limit) and deterministic (no set order)."""
from __future__ import annotations

import contextlib
import gc

from .basic import Constant, SharedVariable, Variable


def toposort(outputs, blockers=()):
    """Apply nodes needed for ``outputs``, each after its inputs' owners.

    The walk stops at variables in ``blockers`` (treated as inputs).
    """
    if isinstance(blockers, (set, frozenset, dict)):
        check = bool(blockers)
    else:
        blockers = set(blockers)
        # Blockers without owners (the usual graph inputs) can only be met as
        # ownerless inputs, which the walk never enters anyway: skip the
        # (Python-level) hashing of every edge's variable.
        check = any(b.owner is not None for b in blockers)
    order, done, opened = [], set(), set()
    # The stack holds nodes only (no per-node tuples): on big graphs every
    # allocation of a container makes CPython's cyclic GC rescan the graph.
    # A node is opened (its inputs' owners pushed) once, and placed in
    # ``order`` when it comes back to the top of the stack.
    stack = [o.owner for o in reversed(outputs) if o.owner is not None and o not in blockers]
    push, pop = stack.append, stack.pop
    while stack:
        node = stack[-1]
        if node in done:
            pop()
        elif node in opened:
            pop()
            done.add(node)
            order.append(node)
        else:
            opened.add(node)
            for inp in reversed(node.inputs):
                owner = inp.owner
                if owner is not None and owner not in done and not (check and inp in blockers):
                    push(owner)
    return order


def ancestors(outputs, blockers=()):
    """Every variable ``outputs`` depend on (themselves included), in a
    deterministic order."""
    blockers = set(blockers)
    check = bool(blockers)
    seen, order = set(), []
    stack = list(reversed(outputs))
    while stack:
        v = stack.pop()
        n = len(seen)
        seen.add(v)             # one hash per visit: membership is the size change
        if len(seen) == n:
            continue
        order.append(v)
        if v.owner is not None and not (check and v in blockers):
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
    return clone_along(toposort(outputs, blockers=inputs), inputs, outputs, copy_inputs, memo)


def clone_along(order, inputs, outputs, copy_inputs=True, memo=None):
    """``clone_get_equiv`` for the nodes ``order`` (topologically sorted)."""
    memo = {} if memo is None else memo
    for v in inputs:
        if v not in memo:
            memo[v] = v.clone() if copy_inputs else v
    with gc_paused():
        _clone_nodes(order, memo, copy_inputs)
    for v in outputs:
        if v not in memo:
            memo[v] = v
    return memo


def _clone_nodes(order, memo, copy_inputs):
    for node in order:
        new_inputs = []
        for v in node.inputs:
            new = memo.get(v)
            if new is None:
                new = v
                if copy_inputs and v.owner is None and not isinstance(v, _STORAGE):
                    new = v.clone()
                memo[v] = new
            new_inputs.append(new)
        new_node = node.clone_with_new_inputs(new_inputs)
        memo[node] = new_node
        for old, new in zip(node.outputs, new_node.outputs):
            if old not in memo:
                memo[old] = new


_STORAGE = (Constant, SharedVariable)


def clone(inputs, outputs, copy_inputs=True):
    """Copy of the graph from ``inputs`` to ``outputs``: ``(new_inputs, new_outputs)``."""
    memo = clone_get_equiv(inputs, outputs, copy_inputs)
    return [memo[v] for v in inputs], [memo[v] for v in outputs]


def clone_replace(outputs, replace=None, strict=True, share_inputs=True):
    """Copy ``outputs``' graph with each key of ``replace`` swapped for its value.

    ``replace`` maps variables to variables (or a list of pairs). The new value
    must have a compatible type (same rank; the same dtype unless ``strict``
    is False, which casts it). With ``share_inputs=False`` the copy also gets
    new inputs: fresh variables, and shared variables that alias the old ones'
    storage (Theano's ``clone``).
    """
    single = isinstance(outputs, Variable)
    outs = [outputs] if single else list(outputs)
    pairs = list(replace.items()) if isinstance(replace, dict) else list(replace or ())
    memo = {}
    for old, new in pairs:
        new = _as_variable_like(old, new)
        if not strict and getattr(new.type, "dtype", None) not in (None, old.type.dtype):
            new = new.astype(old.type.dtype)
        if not _compatible(old.type, new.type):
            raise TypeError(f"clone_replace: cannot replace {old!r} of type {old.type} "
                            f"by {new!r} of type {new.type}")
        memo[old] = new
    if not share_inputs:
        for v in graph_inputs(outs, blockers=list(memo)):
            if v not in memo and not isinstance(v, Constant):
                memo[v] = v.alias() if isinstance(v, SharedVariable) else v.clone()
    memo = clone_get_equiv(list(memo), outs, copy_inputs=False, memo=memo)
    new_outs = [memo[o] for o in outs]
    return new_outs[0] if single else new_outs


def _compatible(a, b):
    """Same dtype and rank for tensors; the same type for anything else (a
    random generator's type has neither)."""
    if getattr(a, "dtype", None) is None or getattr(b, "dtype", None) is None:
        return a == b
    return a.dtype == b.dtype and a.ndim == b.ndim


def _as_variable_like(old, new):
    if isinstance(new, Variable):
        return new
    if hasattr(old, "_as_like"):   # tensor variables know how to wrap a value
        return old._as_like(new)
    raise TypeError(f"clone_replace: the replacement of {old!r} must be a Variable, "
                    f"got {type(new).__name__}")


@contextlib.contextmanager
def gc_paused():
    """Pause CPython's cyclic garbage collector for a block that builds or
    walks a big graph. Every allocation of many containers triggers
    collections that rescan all live graph objects; on a 100,000-node graph
    that is a third of the time. Nested uses are fine; the collector's
    state is restored on exit."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
