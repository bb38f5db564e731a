"""Forward mode: ``Rop`` (Jacobian times a vector) and ``Lop`` (a vector times
the Jacobian), under Theano's names; ``vmc.gradient`` exports both.

``Rop`` walks the graph from ``wrt`` to ``f`` in topological order and pushes
a tangent through each node: with the op's own forward rule,
``pushforward(inputs, outputs, tangents)`` (tangents are None where zero; a
user op's ``R_op`` is read as one), else with the double-Lop transformation on
that node alone: the pullback ``J^T u`` is linear in ``u``, so
``J t = d/du <J^T u, t>``. ``u`` only carries the output's shape there, and is
replaced by the output itself afterwards.
"""
from __future__ import annotations

from vmc.graph.basic import Variable, fixed_trace, user_line
from vmc.graph.grad import NullGradient, ZeroGradient, connected_nodes, grad
from vmc.graph.traversal import clone_replace, gc_paused

__all__ = ["Rop", "Lop"]


def _float(v):
    return v.type.dtype.startswith(("float", "complex"))


def _listify(x):
    return (x, False) if isinstance(x, (list, tuple)) else ([x], True)


def Rop(f, wrt, eval_points, disconnected_outputs="raise", return_disconnected="zero"):
    """``J v``: the directional derivative of ``f`` at ``wrt`` along
    ``eval_points`` (one per ``wrt``, of the same shape). ``f`` may be a
    variable or a list; the result has the same structure. An ``f`` that does
    not depend on ``wrt`` raises, unless ``disconnected_outputs="ignore"``
    (then zeros, or None with ``return_disconnected="none"``)."""
    import vmc.tensor as vt
    fs, single = _listify(f)
    wrts, _ = _listify(wrt)
    evs, _ = _listify(eval_points)
    if len(wrts) != len(evs):
        raise ValueError(f"Rop: {len(wrts)} wrt but {len(evs)} eval_points")
    fs = [vt.as_tensor_variable(v) for v in fs]
    tangents = {}
    for w, e in zip(wrts, evs):
        if not isinstance(w, Variable):
            raise TypeError(f"Rop: wrt must be variables, got {type(w).__name__}")
        e = vt.as_tensor_variable(e)
        if e.type.ndim != w.type.ndim:
            raise TypeError(f"Rop: the eval point for {w!r} has type {e.type}, expected "
                            f"the rank of {w.type}")
        tangents[w] = e if e.type.dtype == w.type.dtype else e.astype(w.type.dtype)
    with gc_paused(), fixed_trace(user_line()):
        path, _ = connected_nodes(fs, wrts, set())
        for node in path:
            ins = [tangents.get(v) if _float(v) else None for v in node.inputs]
            if all(t is None for t in ins):
                continue
            outs = _push(node, ins)
            for o, t in zip(node.outputs, outs):
                if t is not None and _float(o):
                    tangents[o] = _cast_like(t, o)
    result = []
    for v in fs:
        t = tangents.get(v)
        if t is None:
            if disconnected_outputs == "raise":
                raise ValueError(f"Rop: {v!r} does not depend on the wrt variables; pass "
                                 f"disconnected_outputs='ignore' to get zeros")
            t = v.zeros_like() if return_disconnected == "zero" else None
        result.append(t)
    return result[0] if single else result


def _cast_like(t, o):
    return t if t.type.dtype == o.type.dtype else t.astype(o.type.dtype)


def _push(node, tangents):
    rule = getattr(node.op, "pushforward", None)
    if rule is not None:
        outs = rule(list(node.inputs), list(node.outputs), tangents)
        if outs is not NotImplemented:
            if len(outs) != len(node.outputs):
                raise ValueError(f"{node.op}.pushforward returned {len(outs)} tangents for "
                                 f"{len(node.outputs)} outputs")
            return list(outs)
    return _double_lop(node, tangents)


def _double_lop(node, tangents):
    """``J t`` of one node as ``d/du <J^T u, t>`` (the pullback is linear in u)."""
    import vmc.tensor as vt
    us = [o.type.make_variable() if _float(o) else o.zeros_like() for o in node.outputs]
    grads = node.op.pullback(list(node.inputs), list(node.outputs), us)
    terms = []
    for g, t in zip(grads, tangents):
        if t is None or g is None or isinstance(g, (NullGradient, ZeroGradient)):
            continue
        terms.append(vt.sum(g * t))
    if not terms:
        return [None] * len(node.outputs)
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    live = [(k, u) for k, (u, o) in enumerate(zip(us, node.outputs)) if _float(o)]
    jt = grad(total, [u for _, u in live], disconnected_inputs="ignore",
              return_disconnected="none")
    out = [None] * len(node.outputs)
    found = [(k, g) for (k, _), g in zip(live, jt) if g is not None]
    if found:
        # ``u`` only fixes shapes now: any value of the output's shape will do.
        swap = {u: node.outputs[k] for k, u in live}
        for (k, _), g in zip(found, clone_replace([g for _, g in found], swap)):
            out[k] = g
    return out


def Lop(f, wrt, eval_points, consider_constant=None, disconnected_inputs="raise"):
    """``v^T J``: the pullback of ``eval_points`` (one per ``f``) to ``wrt``."""
    import vmc.tensor as vt
    fs, _ = _listify(f)
    evs, _ = _listify(eval_points)
    if len(fs) != len(evs):
        raise ValueError(f"Lop: {len(fs)} f but {len(evs)} eval_points")
    known = {vt.as_tensor_variable(v): vt.as_tensor_variable(e) for v, e in zip(fs, evs)}
    return grad(None, wrt, consider_constant=consider_constant,
                disconnected_inputs=disconnected_inputs, known_grads=known)
