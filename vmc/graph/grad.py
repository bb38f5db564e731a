"""Reverse-mode differentiation through each op's ``pullback``.

The graph layer knows no tensor ops, so gradient terms are combined with the
variables' own operators (``+``) and methods (``zeros_like``, ``ones_like``,
``astype``), which the tensor vocabulary provides.
"""
from __future__ import annotations

import warnings

from .basic import Variable, fixed_trace, user_line
from .traversal import _as_variable_like, gc_paused, toposort


class DisconnectedInputError(ValueError):
    pass


class NullGradientError(TypeError):
    pass


def _is_float(v):
    return v.type.dtype.startswith(("float", "complex"))


def _connected_nodes(outputs, wrt, blockers):
    """Nodes on a path from some ``wrt`` to some output, in topological order."""
    order = toposort(outputs, blockers=blockers)
    reached = set(wrt)
    path = []
    for node in order:
        if any(v in reached for v in node.inputs):
            reached.update(node.outputs)
            path.append(node)
    return path, reached


connected_nodes = _connected_nodes     # public for forward mode (vmc/rop.py)


def grad(cost, wrt, consider_constant=None, disconnected_inputs="raise",
         known_grads=None, return_disconnected="zero", null_gradients="raise"):
    """Gradient of the scalar ``cost`` w.r.t. ``wrt`` (a variable or a list).

    ``known_grads`` maps variables to their (given) gradients; with it ``cost``
    may be None. ``consider_constant`` lists variables treated as constants.
    ``disconnected_inputs``: "raise", "warn" or "ignore" when a ``wrt`` does
    not influence the cost; ``return_disconnected``: "zero", "none".
    """
    single = isinstance(wrt, Variable)
    wrt_list = [wrt] if single else list(wrt)
    for w in wrt_list:
        if not isinstance(w, Variable):
            raise TypeError(f"grad: wrt must be variables, got {type(w).__name__}")
    seeds = {}
    if cost is not None:
        if not isinstance(cost, Variable):
            raise TypeError(f"grad: cost must be a variable, got {type(cost).__name__}")
        if cost.type.ndim != 0:
            raise TypeError(f"grad: cost must be a scalar (0-d), got {cost.type}; "
                            f"take a sum or mean first, or use vmc.gradient.jacobian")
        seeds[cost] = cost.ones_like()
    for v, g in (known_grads or {}).items():
        if not isinstance(g, Variable):
            g = _as_variable_like(v, g)     # a value: a constant of v's kind
        if g.type.ndim != v.type.ndim:
            raise TypeError(f"grad: known_grads[{v!r}] has type {g.type}, expected the "
                            f"rank of {v.type}")
        seeds[v] = g if g.type.dtype == v.type.dtype else g.astype(v.type.dtype)
    if not seeds:
        raise ValueError("grad: give a cost or known_grads")
    blockers = set(consider_constant or ())
    with gc_paused(), fixed_trace(user_line()):
        grads, zero = _backprop(list(seeds), seeds, wrt_list, blockers, null_gradients)
    result = []
    for w in wrt_list:
        g = grads.get(w)
        if g is None and w in zero:
            g = w.zeros_like()
        elif g is None:
            msg = (f"grad: the cost does not depend on {w!r} ({w.type}); pass "
                   f"disconnected_inputs='ignore' to get zeros")
            if disconnected_inputs == "raise":
                raise DisconnectedInputError(msg)
            if disconnected_inputs == "warn":
                warnings.warn(msg, stacklevel=2)
            g = w.zeros_like() if return_disconnected == "zero" else None
        result.append(g)
    return result[0] if single else result


def _backprop(outputs, seeds, wrt, blockers, null_gradients):
    """({variable: gradient} for the ``wrt`` that got a term, and the set of
    variables reached only through ``ZeroGradient``: connected, gradient zero)."""
    path, reached = _connected_nodes(outputs, wrt, blockers)
    wrt = set(wrt)
    terms = {v: [g] for v, g in seeds.items()}
    zero = set()
    for node in reversed(path):
        out_grads = []
        any_grad = False
        for o in node.outputs:
            gs = terms.get(o)
            if gs:
                any_grad = True
                total = _sum(gs)
                terms[o] = [total]      # summed once, also for the result below
                out_grads.append(total)
            else:
                out_grads.append(None)
        if not any_grad:
            # only zero terms came back to these outputs: the inputs stay connected
            if any(o in zero for o in node.outputs):
                zero.update(i for i in node.inputs if i not in blockers and _is_float(i))
            continue
        out_grads = [o.zeros_like() if g is None else g
                     for o, g in zip(node.outputs, out_grads)]
        in_grads = node.op.pullback(list(node.inputs), list(node.outputs), out_grads)
        if len(in_grads) != len(node.inputs):
            raise ValueError(f"{node.op}.pullback returned {len(in_grads)} gradients "
                             f"for {len(node.inputs)} inputs")
        for inp, g in zip(node.inputs, in_grads):
            if g is None or inp in blockers or not _is_float(inp):
                continue
            if inp not in reached and inp not in wrt:
                continue
            if isinstance(g, NullGradient):
                if null_gradients == "raise":
                    raise NullGradientError(
                        f"grad: the gradient of {node.op} w.r.t. input {inp!r} is undefined: "
                        f"{g.why}")
                continue
            if isinstance(g, ZeroGradient):
                zero.add(inp)       # no term: nothing is built for a product with zero
                continue
            if g.type.dtype != inp.type.dtype:
                g = g.astype(inp.type.dtype)
            terms.setdefault(inp, []).append(g)
    return {v: _sum(terms[v]) for v in wrt if terms.get(v)}, zero


class ZeroGradient:
    """Returned by a pullback for an input whose gradient is zero everywhere
    (floor, sign, ``//``): the input is connected, but no term is built, so a
    cost such as ``sum(J ** 2) // n`` costs no backward pass through ``J``
    (Theano built ``0 * ...`` and folded it away with ``x * 0 -> 0``)."""


ZERO_GRADIENT = ZeroGradient()


class NullGradient:
    """Returned by a pullback for an input whose gradient is undefined."""

    def __init__(self, why):
        self.why = why


def _sum(terms):
    if len(terms) == 1:
        return terms[0]
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total
