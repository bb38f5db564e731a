"""Expression-template rewrites written as data.

A rule is ``(name, pattern, build)`` with the algebra in a trailing comment::

    ("log1p", ("log", ("add", 1, "x")), lambda x: log1p(x)),   # log(1 + x) -> log1p(x)

Patterns:
- ``("log", p)``: an elementwise node applying the scalar op ``log`` to what
  ``p`` matches; ``add``, ``mul``, ``maximum``, ``minimum`` and the other
  commutative ops match their two operands in either order.
- ``(OpClass, p, ...)``: a node whose op is an instance of ``OpClass``.
- ``"x"``: any variable, bound to the name; a name used twice must match the
  same variable both times.
- a number: a constant (possibly broadcast by DimShuffles) whose elements all
  equal it.

``build(*bound)`` gets the bound variables in the order their names first
appear in the pattern and returns the replacement, or None to decline. The driver
casts it to the original's dtype and checks the types agree.
"""
from __future__ import annotations

import sys

from vmc.graph.basic import Variable
from vmc.tensor.elemwise import Elemwise, const_value

from .rewriting import REGISTRY, Rewrite

COMMUTATIVE = frozenset(["add", "mul", "maximum", "minimum", "eq", "neq", "and", "or", "xor"])


def match(pattern, var, bindings):
    """Match ``pattern`` against ``var``; extend ``bindings``. True on success
    (``bindings`` may hold partial results on failure: pass a copy)."""
    if isinstance(pattern, str):
        bound = bindings.get(pattern)
        if bound is None:
            bindings[pattern] = var
            return True
        return bound is var
    if isinstance(pattern, (int, float)) and not isinstance(pattern, bool):
        v = const_value(var)
        return v is not None and v == pattern
    head, args = pattern[0], pattern[1:]
    node = var.owner
    if node is None or len(node.inputs) != len(args):
        return False
    if isinstance(head, str):
        if not isinstance(node.op, Elemwise) or node.op.scalar_op.name != head:
            return False
    elif not isinstance(node.op, head):
        return False
    if len(node.outputs) != 1:
        return False
    orders = [node.inputs]
    if isinstance(head, str) and head in COMMUTATIVE and len(args) == 2:
        orders.append(node.inputs[::-1])
    for inputs in orders:
        trial = dict(bindings)
        if all(match(p, v, trial) for p, v in zip(args, inputs)):
            bindings.clear()
            bindings.update(trial)
            return True
    return False


def _names(pattern, out):
    if isinstance(pattern, str):
        if pattern not in out:
            out.append(pattern)
    elif isinstance(pattern, tuple):
        for p in pattern[1:]:
            _names(p, out)
    return out


def pattern_rewrite(name, pattern, build):
    """The node rewrite function of one template rule."""
    names = _names(pattern, [])

    def fn(fgraph, node):
        out = node.outputs[0]
        bindings = {}
        if not match(pattern, out, bindings):
            return None
        new = build(*[bindings[n] for n in names])
        if new is None:
            return None
        if not isinstance(new, Variable):
            raise TypeError(f"pattern {name} built {type(new).__name__}, not a variable")
        return [new]
    fn.__name__ = name
    fn.pattern = pattern
    return fn


def register_patterns(sets, rules, tags=(), default=True):
    """Register each ``(name, pattern, build)`` rule of ``rules`` in ``sets``."""
    sets = (sets,) if isinstance(sets, str) else tuple(sets)
    origin = sys._getframe(1).f_globals.get("__name__", "")    # who wrote the rules
    for name, pattern, build in rules:
        REGISTRY.add(Rewrite(name, pattern_rewrite(name, pattern, build), sets, (pattern[0],),
                             frozenset(tags) | {"pattern"}, default, origin=origin))
