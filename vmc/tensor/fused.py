"""``FusedElemwise``: a group of elementwise ops (and at most one reduction of
their result) as one op, which the fusion pass (``vmc.opt.fusion``) makes and
which runs as one generated C loop or as numpy calls (``vmc.thunks.fused``)."""
from __future__ import annotations

import numpy as np

from vmc.graph.basic import Apply, Op
from vmc.graph.type import TensorType

from .basic import as_tensor_variable
from .elemwise import _broadcast_shape


class FusedElemwise(Op):
    """A DAG of scalar ops applied elementwise over broadcast inputs.

    Value indices: ``0..n_in-1`` are the inputs, then the ``consts`` (each
    ``(dtype, value bytes)``, broadcast everywhere), then one per entry of
    ``ops`` (each ``(ScalarOp, argument indices, dtype)``, in order).
    ``outputs`` lists the value indices returned; ``reduce`` holds, per output,
    None or ``(scalar name, axes, dtype)`` of a reduction applied to it.
    """
    __props__ = ("n_in", "consts", "ops", "outputs", "reduce")

    def __init__(self, n_in, consts, ops, outputs, reduce=None):
        self.n_in = int(n_in)
        self.consts = tuple(consts)
        self.ops = tuple((s, tuple(a), str(d)) for s, a, d in ops)
        self.outputs = tuple(outputs)
        self.reduce = tuple(reduce) if reduce is not None else (None,) * len(self.outputs)

    def const_values(self):
        return [np.frombuffer(b, dtype=d)[0] for d, b in self.consts]

    def value_dtype(self, k, input_dtypes):
        if k < self.n_in:
            return input_dtypes[k]
        k -= self.n_in
        if k < len(self.consts):
            return self.consts[k][0]
        return self.ops[k - len(self.consts)][2]

    def make_node(self, *inputs):
        inputs = [as_tensor_variable(v) for v in inputs]
        if len(inputs) != self.n_in:
            raise TypeError(f"{self} takes {self.n_in} inputs, got {len(inputs)}")
        ndim = inputs[0].type.ndim
        if any(v.type.ndim != ndim for v in inputs):
            raise TypeError(f"{self}: inputs must have one rank, got "
                            f"{[str(v.type) for v in inputs]}")
        loop = _broadcast_shape([v.type for v in inputs], str(self))
        dtypes = [v.type.dtype for v in inputs]
        outs = []
        for k, red in zip(self.outputs, self.reduce):
            if red is None:
                outs.append(TensorType(self.value_dtype(k, dtypes), loop).make_variable())
            else:
                name, axes, dtype = red
                shape = tuple(s for d, s in enumerate(loop) if d not in axes)
                outs.append(TensorType(dtype, shape).make_variable())
        return Apply(self, inputs, outs)

    def infer_shape(self, node, shapes):
        loop = []
        for d in range(node.inputs[0].type.ndim):
            cands = [s[d] for s, v in zip(shapes, node.inputs) if v.type.shape[d] != 1]
            loop.append(cands[0] if cands else 1)
        out = []
        for red in self.reduce:
            out.append(tuple(loop) if red is None else
                       tuple(s for d, s in enumerate(loop) if d not in red[1]))
        return out

    def pullback(self, inputs, outputs, grads):
        raise NotImplementedError("FusedElemwise is made after gradients are taken; "
                                  "take gradients of the unfused graph")

    def expression(self, k):
        """Output ``k`` as text: ``tanh(add(i0, 0.5))``."""
        vals = self.const_values()

        def text(i, depth=0):
            if i < self.n_in:
                return f"i{i}"
            if i < self.n_in + len(vals):
                return repr(vals[i - self.n_in].item())
            sop, args, _ = self.ops[i - self.n_in - len(vals)]
            if depth > 6:
                return f"{sop}(...)"
            return f"{sop}({', '.join(text(a, depth + 1) for a in args)})"
        s = text(self.outputs[k])
        red = self.reduce[k]
        return s if red is None else f"{red[0]}{{{red[1]}}}({s})"

    def __str__(self):
        s = "; ".join(self.expression(k) for k in range(len(self.outputs)))
        return f"Fused{{{s if len(s) <= 80 else s[:77] + '...'}}}"
