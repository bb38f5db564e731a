"""Lazy conditionals: ``ifelse(cond, then, else)`` runs only the chosen branch.

The scheduler (``vmc.compile.schedule``) places the nodes that only one branch
needs inside that branch's block, guarded by a jump on the condition; this op
never runs as a thunk. ``vt.switch`` is the eager, elementwise conditional.
"""
from __future__ import annotations

from vmc.graph.basic import Apply, Op, Variable
from vmc.tensor.basic import as_tensor_variable
from vmc.tensor.elemwise import cast
from vmc.thunks.registry import register


class IfElse(Op):
    """Inputs ``(cond, then_1..then_n, else_1..else_n)``; outputs ``n`` values."""
    __props__ = ("n_outs",)

    def __init__(self, n_outs):
        self.n_outs = int(n_outs)
        # Each output is one of its branch values, never a new buffer.
        self.view_map = {i: [1 + i, 1 + self.n_outs + i] for i in range(self.n_outs)}

    def make_node(self, cond, *branches):
        cond = as_tensor_variable(cond)
        if cond.type.ndim != 0:
            raise TypeError(f"ifelse: the condition must be a scalar, got {cond.type}")
        n = self.n_outs
        thens = [as_tensor_variable(v) for v in branches[:n]]
        elses = [as_tensor_variable(v) for v in branches[n:]]
        outs = []
        for i, (t, e) in enumerate(zip(thens, elses)):
            if t.type.ndim != e.type.ndim:
                raise TypeError(f"ifelse: branch {i} has a {t.type} then-value and a "
                                f"{e.type} else-value; their ranks must agree")
            if t.type.dtype != e.type.dtype:
                raise TypeError(f"ifelse: branch {i} has dtypes {t.type.dtype} and "
                                f"{e.type.dtype}; cast one of them")
            shape = tuple(a if a == b else None for a, b in zip(t.type.shape, e.type.shape))
            outs.append(t.type.clone(shape=shape).make_variable())
        return Apply(self, [cond] + thens + elses, outs)

    def branches(self, node):
        """The then-values, then the else-values: only one group is read
        per run (``vmc.graph.branches``)."""
        n = self.n_outs
        return (tuple(range(1, 1 + n)), tuple(range(1 + n, 1 + 2 * n)))

    def infer_shape(self, node, shapes):
        # Each dim is the chosen branch's: itself a lazy ifelse on the dims
        # (only the taken branch's shape is computed), or the dim both share.
        n = self.n_outs
        cond = node.inputs[0]
        result = []
        for then_shape, else_shape in zip(shapes[1:1 + n], shapes[1 + n:]):
            dims = []
            for a, b in zip(then_shape, else_shape):
                if a is b or (isinstance(a, int) and isinstance(b, int) and a == b):
                    dims.append(a)
                else:
                    dims.append(IfElse(1)(cond, cast(as_tensor_variable(a), "int64"),
                                          cast(as_tensor_variable(b), "int64")))
            result.append(tuple(dims))
        return result

    def pullback(self, inputs, outputs, grads):
        n = self.n_outs
        cond = inputs[0]
        thens, elses = inputs[1:1 + n], inputs[1 + n:]
        zeros_t = [t.zeros_like() for t in thens]
        zeros_e = [e.zeros_like() for e in elses]
        gt = IfElse(n)(cond, *[_like(g, t) for g, t in zip(grads, thens)], *zeros_t)
        ge = IfElse(n)(cond, *zeros_e, *[_like(g, e) for g, e in zip(grads, elses)])
        gt = gt if isinstance(gt, list) else [gt]
        ge = ge if isinstance(ge, list) else [ge]
        return [None] + gt + ge


    def pushforward(self, inputs, outputs, tangents):
        # The chosen branch's tangent (zeros where a branch has none): lazy too.
        n = self.n_outs
        ts = [t if t is not None else v.zeros_like()
              for t, v in zip(tangents[1:], inputs[1:])]
        if all(t is None for t in tangents[1:]):
            return [None] * n
        out = IfElse(n)(inputs[0], *[_like(t, v) for t, v in zip(ts, inputs[1:])])
        return out if isinstance(out, list) else [out]


@register(IfElse)
def _chosen_branch(node, destroyable):
    """The chosen branch's values, for evaluating an ifelse whose inputs are
    known (test values, constant folding); compiled functions jump instead."""
    n = node.op.n_outs

    def thunk(cond, *values):
        chosen = values[:n] if cond else values[n:]
        return chosen[0] if n == 1 else tuple(chosen)
    return thunk


def _like(g, v):
    from vmc.tensor.shape import specify_like
    g = cast(g, v.type.dtype)
    return g if g.type == v.type else specify_like(g, v)


def ifelse(condition, then_branch, else_branch, name=None):
    """``then_branch`` if ``condition`` else ``else_branch``, evaluating only one.

    The branches are variables or equal-length lists of variables.
    """
    single = isinstance(then_branch, Variable) or not isinstance(then_branch, (list, tuple))
    thens = [then_branch] if single else list(then_branch)
    elses = [else_branch] if single else list(else_branch)
    if len(thens) != len(elses):
        raise ValueError(f"ifelse: {len(thens)} then-values but {len(elses)} else-values")
    out = IfElse(len(thens))(condition, *thens, *elses)
    outs = out if isinstance(out, list) else [out]
    if name:
        for o in outs:
            o.name = name
    return outs[0] if single else outs
