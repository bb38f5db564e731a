"""Canonical add and mul chains.

``a + (b - c) - -d`` is one chain: terms ``+a +b -c +d``. The canonical form
folds the constant terms into one, cancels a term against its negation
(``x - x``) and rebuilds a left-deep tree, positive terms first::

    ((a + b) + d + const) - c

Mul chains do the same with factors and divisors: ``x * 2 / y * 3 / x`` is
``6 / y``; a ``-1`` factor becomes a ``neg`` on top.

The rewrite fires only at the root of a chain (a node whose single reader is
not a node of the same chain), and only when the rebuilt tree differs from the
present one: each chain is looked at once per change, so reaching a fixed
point stays linear in the size of the graph.

Terms keep the order they come in (constants go last): sorting them would
rebuild most products of a graph for nothing; the driver merges ``a * b`` with
``b * a`` instead.
"""
from __future__ import annotations

import numpy as np

from vmc.graph.basic import Constant
from vmc.tensor import elemwise as E
from vmc.tensor.basic import constant
from vmc.tensor.elemwise import Elemwise, const_data

from .rewriting import node_rewriter, scalar_name

ADD_OPS = frozenset(["add", "sub", "neg"])
MUL_OPS = frozenset(["mul", "true_div", "neg"])


# -- constants -------------------------------------------------------------------
# -- flattening ------------------------------------------------------------------
def _single_client(fgraph, var):
    cl = fgraph.clients.get(var, ())
    return len(cl) == 1 and cl[0][0] != "output"


def _is_chain_root(fgraph, node, readers):
    """False when ``node`` is an inner node of a larger chain (its reader will
    canonicalize the whole chain)."""
    out = node.outputs[0]
    while True:
        if not _single_client(fgraph, out):
            return True
        reader = fgraph.clients[out][0][0]
        if not (isinstance(reader.op, Elemwise)
                and reader.outputs[0].type.dtype == out.type.dtype):
            return True
        name = reader.op.scalar_op.name
        if name in readers:
            return False
        if name != "neg":
            return True
        # A mul under a neg under a mul is still inside the outer mul's chain
        # (flatten walks through negs): rebuilding it here too would make
        # canonicalizing a long product quadratic.
        out = reader.outputs[0]


def flatten(fgraph, root, ops, inverse):
    """The leaves of the chain at ``root`` as ``(leaf, positive)`` pairs, or
    None when a non-constant leaf has another dtype (reassociating would
    change where rounding or overflow happens). ``inverse`` is the op whose
    second operand flips the sign (``sub`` or ``true_div``)."""
    leaves = flatten_single(fgraph, root, ops, inverse)
    if leaves is None:
        return None
    return _expand_for_cancel(fgraph, leaves, ops, inverse, root.type.dtype)


MAX_LEAVES = 64


def _expand_for_cancel(fgraph, leaves, ops, inverse, dtype):
    """Look into leaves that are chain nodes read elsewhere too, when that
    cancels something: ``(a / p) * p`` with ``a / p`` shared is ``a``. (Only
    then: expanding every shared node would turn the DAG into a tree.)"""
    changed = True
    while changed and len(leaves) < MAX_LEAVES:
        changed = False
        for k, (v, pos) in enumerate(leaves):
            if v is _MINUS_ONE or scalar_name(v) not in ops or v.type.dtype != dtype \
                    or scalar_name(v) == "neg":
                continue
            sub = flatten_single(fgraph, v, ops, inverse)
            if sub is None:
                continue
            sub = [(w, p if pos else not p) for w, p in sub]
            others = leaves[:k] + leaves[k + 1:]
            if any(w is not _MINUS_ONE and (w, not p) in others for w, p in sub):
                leaves = others + sub
                changed = True
                break
    return leaves


def flatten_single(fgraph, root, ops, inverse):
    """``flatten`` without looking into shared nodes."""
    dtype = root.type.dtype
    leaves, stack = [], [(root, True)]
    while stack:
        var, pos = stack.pop()
        name = scalar_name(var)
        # A shared neg is looked through too: it costs nothing to redo, and
        # ``a + -b`` must read as ``a - b`` wherever ``-b`` is also used.
        inner = (name in ops and var.type.dtype == dtype
                 and (var is root or name == "neg" or _single_client(fgraph, var)))
        if inner and name == "neg":
            if inverse == "true_div":
                leaves.append((_MINUS_ONE, pos))
            stack.append((var.owner.inputs[0], pos if inverse == "true_div" else not pos))
        elif inner:
            a, b = var.owner.inputs
            stack.append((b, pos if name != inverse else not pos))
            stack.append((a, pos))
        else:
            if var.type.dtype != dtype and const_data(var) is None:
                return None
            leaves.append((var, pos))
    return leaves


_MINUS_ONE = object()   # the -1 factor a neg contributes to a mul chain


def _leaf_key(v):
    if v is _MINUS_ONE:
        return ("c", -1)
    d = const_data(v)
    if d is not None:
        return ("c", d.dtype.str, d.shape, d.tobytes())
    return ("v", v.id)


def _fold_tree(root, expand, combine):
    """Post-order fold of a tree without recursion (chains can be thousands
    deep): ``expand(item)`` is ``(head, children)`` for an inner item or None
    for a leaf, whose value is then ``combine(item, None)``; an inner item's
    value is ``combine(head, [values of its children])``."""
    stack, values = [(root, False)], []
    while stack:
        item, ready = stack.pop()
        if ready:
            head, n = item
            args = values[len(values) - n:] if n else []
            del values[len(values) - n:]
            values.append(combine(head, args))
            continue
        parts = expand(item)
        if parts is None:
            values.append(combine(item, None))
            continue
        head, children = parts
        stack.append(((head, len(children)), True))
        stack.extend((c, False) for c in reversed(children))
    return values[0]


def _flat_key(root, expand, leaf):
    """The tree as a flat pre-order tuple of ``(head, arity)`` and leaf keys:
    nested tuples thousands deep would overflow the C stack when compared."""
    out, stack = [], [root]
    while stack:
        item = stack.pop()
        parts = expand(item)
        if parts is None:
            out.append(leaf(item))
            continue
        head, children = parts
        out.append((head, len(children)))
        stack.extend(reversed(children))
    return tuple(out)


def present_key(fgraph, var, ops, dtype, root=True):
    """A key of the existing tree, comparable with ``plan_key`` of a plan."""
    def expand(item):
        v, is_root = item
        name = scalar_name(v)
        if name in ops and v.type.dtype == dtype and (is_root or name == "neg"
                                                      or _single_client(fgraph, v)):
            return name, [(w, False) for w in v.owner.inputs]
        return None
    return _flat_key((var, root), expand, lambda item: _leaf_key(item[0]))


def plan_key(plan):
    return _flat_key(plan, _expand_plan, _leaf_key)


def _expand_plan(plan):
    return (plan[0], list(plan[1:])) if isinstance(plan, tuple) else None


_BUILD = {"add": E.add, "sub": E.sub, "mul": E.mul, "true_div": E.true_div, "neg": E.neg}


def build(plan):
    return _fold_tree(plan, _expand_plan,
                      lambda head, args: _BUILD[head](*args) if args is not None else head)


# -- the canonical forms ---------------------------------------------------------
def _fold_constants(consts, dtype, combine, invert):
    """``(variable or None, value)`` of the constant the ``(var, data, positive)``
    entries fold into; ``(None, None)`` without any. A lone positive constant
    of the right dtype is kept as it is (no new constant per visit)."""
    if not consts:
        return None, None
    if len(consts) == 1:
        v, d, pos = consts[0]
        if pos and isinstance(v, Constant) and v.type.dtype == dtype:
            return v, d
    acc = None
    with np.errstate(all="ignore"):
        for _, d, pos in consts:
            d = np.asarray(d).astype(dtype)
            if not pos:
                d = invert(d)
            acc = d if acc is None else combine(acc, d)
    return None, np.asarray(acc, dtype=dtype)


def _cancel(pos_terms, neg_terms):
    """Remove pairs of the same variable on both sides."""
    neg_left = list(neg_terms)
    kept = []
    for v in pos_terms:
        if v in neg_left:
            neg_left.remove(v)
        else:
            kept.append(v)
    return kept, neg_left


def _all_one_shape(d, ndim):
    return d.ndim == ndim and all(s == 1 for s in d.shape)


def _split(leaves, dtype):
    consts, pos, neg = [], [], []
    for v, p in leaves:
        if v is _MINUS_ONE:
            consts.append((v, np.array(-1), p))
            continue
        d = const_data(v)
        if d is not None:
            consts.append((v, d, p))
        else:
            (pos if p else neg).append(v)
    return consts, pos, neg


def add_plan(leaves, root):
    dtype, ndim = root.type.dtype, root.type.ndim
    consts, pos, neg = _split(leaves, dtype)
    cvar, c = _fold_constants(consts, dtype, np.add, np.negative)
    pos, neg = _cancel(pos, neg)
    if c is not None and not np.any(c) and _all_one_shape(c, ndim) and (pos or neg):
        c = None
    if c is not None:
        pos.append(cvar if cvar is not None else constant(c, dtype=dtype))
    if not pos and not neg:
        return None                       # everything cancelled: see zero_like_plan
    if not pos:
        return ("neg", _left_deep("add", neg))
    plan = _left_deep("add", pos)
    for v in neg:
        plan = ("sub", plan, v)
    return plan


def mul_plan(leaves, root):
    dtype, ndim = root.type.dtype, root.type.ndim
    consts, num, den = _split(leaves, dtype)
    is_float = np.dtype(dtype).kind == "f"
    if not is_float and any(not p for _, _, p in consts):
        return "keep"
    cvar, c = _fold_constants(consts, dtype, np.multiply, lambda d: np.divide(1, d))
    num, den = _cancel(num, den)
    negate = False
    if c is not None and _all_one_shape(c, ndim) and (num or den):
        if np.all(c == 1):
            c = None
        elif np.all(c == -1):
            c, negate = None, True
    if c is not None:
        num.append(cvar if cvar is not None else constant(c, dtype=dtype))
    if not num and not den:
        return None
    if not num:
        plan = ("true_div", constant(np.ones((1,) * ndim, dtype), dtype=dtype),
                _left_deep("mul", den))
    else:
        plan = _left_deep("mul", num)
        if den:
            plan = ("true_div", plan, _left_deep("mul", den))
    return ("neg", plan) if negate else plan


def _left_deep(op, items):
    plan = items[0]
    for v in items[1:]:
        plan = (op, plan, v)
    return plan


def _everything_cancelled(leaves, root, value):
    """``x - x`` and ``x / x``: the constant ``value`` broadcast like a leaf
    whose broadcast pattern is the root's."""
    from vmc.tensor.shape import alloc_like
    for v, _ in leaves:
        if v is not _MINUS_ONE and v.type.broadcastable == root.type.broadcastable:
            return alloc_like(constant(value, dtype=root.type.dtype), v)
    return None


def _trivially_canonical(node, leaves):
    """The common case, decided without building a plan: one binary node over
    two distinct non-chain leaves, a constant (if any) last and not neutral."""
    if len(leaves) != 2 or len(node.inputs) != 2 or node.inputs[0] is node.inputs[1]:
        return False
    if any(v is _MINUS_ONE or v is not w for (v, _), w in zip(leaves, node.inputs)):
        return False
    first = const_data(leaves[0][0])
    if first is not None:
        return False
    c = const_data(leaves[1][0])
    if c is None:
        return True
    neutral = 0 if node.op.scalar_op.name in ("add", "sub") else 1
    return leaves[1][1] and not np.all(c == neutral) and not np.all(c == -neutral) \
        and c.dtype == node.outputs[0].type.dtype


def _canonical(fgraph, node, ops, readers, inverse, plan_fn, neutral):
    out = node.outputs[0]
    dtype = out.type.dtype
    if dtype == "bool" or np.dtype(dtype).kind not in "iuf":
        return None
    if inverse == "true_div" and np.dtype(dtype).kind != "f" and \
            node.op.scalar_op.name == "true_div":
        return None
    if not _is_chain_root(fgraph, node, readers):
        return None
    leaves = flatten(fgraph, out, ops, inverse)
    if leaves is None or _trivially_canonical(node, leaves):
        return None
    plan = plan_fn(leaves, out)
    if plan == "keep":
        return None
    if plan is None:
        new = _everything_cancelled(leaves, out, neutral)
        return None if new is None else [new]
    if plan_key(plan) == present_key(fgraph, out, ops, dtype):
        return None
    return [_keep_shape(build(plan), leaves, out)]


def _keep_shape(new, leaves, root):
    """``new`` broadcast back to ``root``'s shape where dropping terms made it
    broadcastable (``x - x + 1`` is ones of x's shape, not the constant 1);
    None when no remaining leaf can lend the shape."""
    if all(n or not r for n, r in zip(new.type.broadcastable, root.type.broadcastable)):
        return new
    from vmc.tensor.shape import alloc_like
    for v, _ in leaves:
        if v is not _MINUS_ONE and v.type.broadcastable == root.type.broadcastable:
            return alloc_like(new, v)
    return None


@node_rewriter("canonicalize", "add", "sub", "neg", tags=("algebra", "chains"))
def add_chain(fgraph, node):
    # x + 0 -> x;  x - x -> 0;  --x -> x;  (1 + x) + 2 -> x + 3
    return _canonical(fgraph, node, ADD_OPS, ADD_OPS, "sub", add_plan, 0)


@node_rewriter("canonicalize", "mul", "true_div", tags=("algebra", "chains"))
def mul_chain(fgraph, node):
    # x * 1 -> x;  x / x -> 1;  (2 * x) * 3 -> x * 6;  x * -1 -> -x
    return _canonical(fgraph, node, MUL_OPS, ("mul", "true_div"), "true_div", mul_plan, 1)
