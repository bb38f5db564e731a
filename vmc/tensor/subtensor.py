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
    # A small dummy array with x's rank tells the output's rank (and raises
    # numpy's own IndexError for an index that does not fit).
    dims = [2 if s is None else min(s, 2) for s in x.type.shape]
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
    shape = index_shape(x, template, inputs, symbolic=False)
    assert len(shape) == ndim, (shape, ndim)
    return TensorType(x.type.dtype, shape)


def _walk(ndim, template, inputs):
    """The index as a list of ``(kind, dim of x, payload)`` with the Ellipsis
    expanded and the dims it leaves unindexed added as whole slices. kinds:
    "slice" (payload: start, stop, step, each a variable or None), "int",
    "none", "array" (payload: the index variable; a boolean one spans its
    ndim dims)."""
    it = iter(inputs)
    items, used = [], 0
    for e in template:
        if e[0] == "slice":
            items.append(["slice", None, tuple(next(it) if has else None for has in e[1:])])
            used += 1
        elif e[0] in ("int", "array"):
            v = next(it)
            items.append([e[0], None, v])
            used += v.type.ndim if v.type.dtype == "bool" else 1
        else:
            items.append([e[0], None, None])
    out, d = [], 0
    for kind, _, payload in items:
        if kind == "ellipsis":
            for _ in range(ndim - used):
                out.append(("slice", d, (None, None, None)))
                d += 1
            continue
        out.append((kind, d, payload))
        if kind in ("slice", "int"):
            d += 1
        elif kind == "array":
            d += payload.type.ndim if payload.type.dtype == "bool" else 1
    out += [("slice", k, (None, None, None)) for k in range(d, ndim)]
    return out


def _static_slice_len(n, parts):
    if all(p is None for p in parts):
        return n
    if n is None or not all(p is None or isinstance(p, Constant) for p in parts):
        return None
    vals = [None if p is None else int(p.data) for p in parts]
    if vals[2] == 0:
        return None
    return len(range(*slice(*vals).indices(n)))


def _slice_len(n, start, stop, step):
    """``len(range(*slice(start, stop, step).indices(n)))``, symbolically."""
    from .elemwise import clip, lt, maximum, switch
    if start is None and stop is None and step is None:
        return n

    def norm(v, default, lo, hi):
        if v is None:
            return default
        return clip(switch(lt(v, 0), v + n, v), lo, hi)

    def forward(s):
        b, e = norm(start, 0, 0, n), norm(stop, n, 0, n)
        return maximum((e - b + s - 1) // s, 0)

    def backward(s):
        b, e = norm(start, n - 1, -1, n - 1), norm(stop, -1, -1, n - 1)
        return maximum((b - e - s - 1) // (-s), 0)

    if step is None:
        return forward(1)
    if isinstance(step, Constant):
        return forward(step) if int(step.data) > 0 else backward(step)
    return switch(lt(step, 0), backward(step), forward(step))


def index_shape(x, template, inputs, symbolic=True, xshape=None):
    """The shape of ``x[index]``: static ints/None (``symbolic=False``) or
    symbolic lengths given ``xshape`` (``x``'s symbolic shape)."""
    from .shape import shape_i
    from .elemwise import neq
    from .math import sum as vsum
    shape = x.type.shape if not symbolic else xshape
    parts, advanced = [], _is_advanced(template)
    for kind, d, payload in _walk(x.type.ndim, template, inputs):
        if kind == "slice":
            n = (_slice_len(shape[d], *payload) if symbolic
                 else _static_slice_len(shape[d], payload))
            parts.append(("dim", n))
        elif kind == "none":
            parts.append(("dim", 1))
        elif kind == "int":
            if advanced:
                parts.append(("adv", []))
        elif payload.type.dtype == "bool":
            count = vsum(neq(payload, 0), dtype="int64") if symbolic else None
            parts.append(("adv", [(None, count)]))
        else:
            st = payload.type.shape
            parts.append(("adv", [(s, shape_i(payload, k) if symbolic else s)
                                  for k, s in enumerate(st)]))
    if not advanced:
        return tuple(n for _, n in parts)
    adv_pos = [i for i, (k, _) in enumerate(parts) if k == "adv"]
    bshape = _broadcast_index_shapes([p for k, p in parts if k == "adv"], symbolic)
    dims = [n for k, n in parts if k == "dim"]
    if adv_pos == list(range(adv_pos[0], adv_pos[-1] + 1)):
        at = sum(1 for k, _ in parts[:adv_pos[0]] if k == "dim")
        return tuple(dims[:at]) + bshape + tuple(dims[at:])
    return bshape + tuple(dims)


def _broadcast_index_shapes(shapes, symbolic):
    """Broadcast the index arrays' shapes (lists of (static, length) pairs)."""
    nd = max((len(s) for s in shapes), default=0)
    out = []
    for d in range(nd):
        cands = [s[len(s) - nd + d] for s in shapes if len(s) - nd + d >= 0]
        real = [c for c in cands if c[0] != 1]
        if not real:
            out.append(1)
        elif symbolic:
            out.append(real[0][1])
        else:
            known = {c[0] for c in real if c[0] is not None}
            out.append(known.pop() if len(known) == 1 else None)
    return tuple(out)


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
        x, idx = node.inputs[0], node.inputs[1:]
        return [index_shape(x, self.template, idx, symbolic=True, xshape=shapes[0])]

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
        for a, b in zip(reversed(y.type.shape), reversed(sub_type.shape)):
            if a not in (None, 1) and b is not None and a != b:
                raise TypeError(f"{self}: value {y.type} does not broadcast to x[index] "
                                f"({sub_type}) of {x.type}")
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
        if self.set and any(e[0] == "array" for e in self.template) \
                and any(i.type.dtype != "bool" for i in idx):
            gy = gy * self._last_writes(x, idx)
        if gy.type.ndim > y.type.ndim:
            from .math import sum as vsum
            gy = vsum(gy, axis=tuple(range(gy.type.ndim - y.type.ndim)))
        return [gx, _unbroadcast(gy, y)] + [None] * len(idx)

    def _last_writes(self, x, idx):
        """A mask over x[index]: true where the write lands last (a repeated
        integer index keeps the last value, as in numpy, so only that
        occurrence of ``y`` reaches the output)."""
        from .creation import arange
        from .elemwise import eq
        from .shape import full, reshape, shape
        region = Subtensor(self.template)(x, *idx)
        n = region.size
        order = reshape(arange(n), shape(region), ndim=region.type.ndim)
        tags = IncSubtensor(self.template, True)(full(shape(x), -1, dtype="int64"), order, *idx)
        return eq(Subtensor(self.template)(tags, *idx), order)

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
