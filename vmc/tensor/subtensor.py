"""Indexing: basic (slices, ints, None) and advanced (integer and boolean arrays),
and writing through an index (``set_subtensor``, ``inc_subtensor``).

One op class reads and one writes. Each holds an index *template*: a tuple of
entries ``("slice", has_start, has_stop, has_step)``, ``("int",)``,
``("none",)``, ``("ellipsis",)`` or ``("array",)``; the symbolic parts
(starts, stops, steps, int indices, index arrays) are the op's inputs after
the tensor, in order.
"""
from __future__ import annotations

import numpy as np

from vmc.graph.basic import Apply, Constant, Op, Variable
from vmc.graph.type import TensorType

from .basic import as_tensor_variable


def parse_index(x, idx):
    """Split a Python index into ``(template, symbolic inputs)``."""
    if not isinstance(idx, tuple):
        idx = (idx,)
    template, inputs = [], []
    for e in idx:
        if e is None:
            template.append(("none",))
        elif e is Ellipsis:
            template.append(("ellipsis",))
        elif isinstance(e, slice):
            parts = (e.start, e.stop, e.step)
            template.append(("slice",) + tuple(p is not None for p in parts))
            inputs += [as_tensor_variable(p) for p in parts if p is not None]
        else:
            v = as_tensor_variable(e)
            if v.type.ndim == 0 and v.type.dtype != "bool":
                if not v.type.dtype.startswith(("int", "uint")):
                    raise TypeError(f"index must be an integer, got {v.type}")
                template.append(("int",))
            else:
                if not v.type.dtype.startswith(("int", "uint", "bool")):
                    raise TypeError(f"index arrays must be integer or boolean, got {v.type}")
                template.append(("array",))
            inputs.append(v)
    return tuple(template), inputs


def build_index(template, values):
    """The numpy index for ``template`` with its symbolic parts' ``values``."""
    it = iter(values)
    out = []
    for e in template:
        k = e[0]
        if k == "slice":
            out.append(slice(*(int(next(it)) if has else None for has in e[1:])))
        elif k == "int":
            out.append(int(next(it)))
        elif k == "none":
            out.append(None)
        elif k == "ellipsis":
            out.append(Ellipsis)
        else:
            out.append(next(it))
    return tuple(out)


def _is_advanced(template):
    return any(e[0] == "array" for e in template)


def _out_type(x, template, inputs):
    """Output type, by indexing a dummy array shaped like ``x``."""
    dims = [s if s is not None else 2 for s in x.type.shape]
    it = iter(inputs)
    entries = []                 # (template entry, dummy index value, dims consumed)
    for e in template:
        if e[0] == "slice":
            for _ in range(sum(e[1:])):
                next(it)
            entries.append((e, slice(None), 1))
        elif e[0] == "int":
            next(it)
            entries.append((e, 0, 1))
        elif e[0] == "array":
            inp = next(it)
            if inp.type.dtype == "bool":
                entries.append((e, inp, inp.type.ndim))
            else:
                entries.append((e, np.zeros([s or 1 for s in inp.type.shape], int), 1))
        else:
            entries.append((e, None if e[0] == "none" else Ellipsis, 0))
    used = sum(n for _, _, n in entries)
    idx, pos = [], 0
    for e, val, n in entries:
        if e[0] == "ellipsis":
            pos += len(dims) - used
        elif isinstance(val, Variable):     # a boolean mask over the next n dims
            idx.append(np.ones(dims[pos: pos + n], bool))
        else:
            idx.append(val)
        if e[0] == "ellipsis":
            idx.append(Ellipsis)
        pos += n
    try:
        ndim = np.empty(dims)[tuple(idx)].ndim
    except IndexError as err:
        raise IndexError(f"invalid index for {x.type}: {err}") from None
    shape = [None] * ndim
    if not _is_advanced(template) and all(e[0] != "ellipsis" for e in template):
        # Keep static lengths of the dims taken whole by a bare ':'.
        d_in, d_out = 0, 0
        for e in template:
            if e[0] == "none":
                shape[d_out] = 1
                d_out += 1
            elif e[0] == "int":
                d_in += 1
            else:
                if not any(e[1:]):
                    shape[d_out] = x.type.shape[d_in]
                d_in += 1
                d_out += 1
        for k in range(d_out, ndim):
            shape[k] = x.type.shape[d_in + k - d_out]
    return TensorType(x.type.dtype, tuple(shape))


class Subtensor(Op):
    """``x[index]``; a view of ``x`` unless the index has arrays."""
    __props__ = ("template",)

    def __init__(self, template):
        self.template = tuple(template)
        self.view_map = {} if _is_advanced(self.template) else {0: [0]}

    def make_node(self, x, *inputs):
        x = as_tensor_variable(x)
        inputs = [as_tensor_variable(i) for i in inputs]
        return Apply(self, [x] + inputs, [_out_type(x, self.template, inputs).make_variable()])

    def pullback(self, inputs, outputs, grads):
        x, idx = inputs[0], inputs[1:]
        gx = IncSubtensor(self.template, False)(x.zeros_like(), grads[0], *idx)
        return [gx] + [None] * len(idx)

    def infer_shape(self, node, shapes):
        raise NotImplementedError

    def __str__(self):
        return "AdvancedSubtensor" if _is_advanced(self.template) else "Subtensor"


class IncSubtensor(Op):
    """A copy of ``x`` with ``x[index] = y`` (``set``) or ``x[index] += y``; a
    repeated integer index accumulates, as ``np.add.at``."""
    __props__ = ("template", "set")

    def __init__(self, template, set):
        self.template = tuple(template)
        self.set = bool(set)

    def make_node(self, x, y, *inputs):
        x, y = as_tensor_variable(x), as_tensor_variable(y)
        inputs = [as_tensor_variable(i) for i in inputs]
        sub_type = _out_type(x, self.template, inputs)
        if y.type.ndim > sub_type.ndim:
            raise TypeError(f"{self}: value {y.type} has more dims than x[index] ({sub_type})")
        if not np.can_cast(y.type.dtype, x.type.dtype, "same_kind"):
            raise TypeError(f"{self}: cannot write {y.type.dtype} values into {x.type}")
        return Apply(self, [x, y] + inputs, [x.type.make_variable()])

    def infer_shape(self, node, shapes):
        return [shapes[0]]

    def pullback(self, inputs, outputs, grads):
        from .elemwise import _unbroadcast
        x, y, idx = inputs[0], inputs[1], inputs[2:]
        (g,) = grads
        gx = g if not self.set else IncSubtensor(self.template, True)(g, 0, *idx)
        gy = Subtensor(self.template)(g, *idx)
        if gy.type.ndim > y.type.ndim:
            from .math import sum as vsum
            gy = vsum(gy, axis=tuple(range(gy.type.ndim - y.type.ndim)))
        return [gx, _unbroadcast(gy, y)] + [None] * len(idx)

    def __str__(self):
        kind = "Set" if self.set else "Inc"
        adv = "Advanced" if _is_advanced(self.template) else ""
        return f"{adv}{kind}Subtensor"


def getitem(x, idx):
    x = as_tensor_variable(x)
    template, inputs = parse_index(x, idx)
    if template == (("ellipsis",),):
        return x
    return Subtensor(template)(x, *inputs)


def _write(target, y, set_):
    node = target.owner
    if node is None or not isinstance(node.op, Subtensor):
        raise TypeError("set_subtensor/inc_subtensor take an indexed tensor, e.g. "
                        "vt.set_subtensor(x[1:3], y)")
    x, idx = node.inputs[0], node.inputs[1:]
    return IncSubtensor(node.op.template, set_)(x, y, *idx)


def set_subtensor(target, y):
    """A copy of the indexed tensor with ``x[index] = y``."""
    return _write(target, y, True)


def inc_subtensor(target, y):
    """A copy of the indexed tensor with ``y`` added at the index (repeats accumulate)."""
    return _write(target, y, False)


def is_constant_index(v: Variable) -> bool:
    return isinstance(v, Constant)
