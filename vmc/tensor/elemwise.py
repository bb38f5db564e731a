"""Elementwise ops (one scalar op applied with broadcasting) and DimShuffle."""
from __future__ import annotations

import numpy as np

from vmc.config import config
from vmc.graph.basic import Apply, Constant, Op, Variable
from vmc.graph.grad import NullGradient, NullGradientError, ZeroGradient
from vmc.graph.type import TensorType

from .basic import as_tensor_variable, weak_operand
from .scalar import get_scalar_op


class DimShuffle(Op):
    """Reorder dims, insert broadcastable dims (``'x'``), drop dims known to be 1.

    ``DimShuffle(input_ndim, (1, 'x', 0))``. The output is a view of the input.
    """
    __props__ = ("input_ndim", "new_order")
    view_map = {0: [0]}

    def __init__(self, input_ndim, new_order):
        self.input_ndim = int(input_ndim)
        self.new_order = tuple(new_order)
        kept = [d for d in self.new_order if d != "x"]
        if len(set(kept)) != len(kept) or any(not 0 <= d < self.input_ndim for d in kept):
            raise ValueError(f"invalid dimshuffle pattern {self.new_order} "
                             f"for a {self.input_ndim}-d input")
        self.drop = tuple(d for d in range(self.input_ndim) if d not in kept)
        self.transposition = tuple(kept)
        # The transposition names dims of the input; once the dropped dims are
        # gone, they are numbered among the kept ones.
        kept_in_order = [d for d in range(self.input_ndim) if d not in self.drop]
        perm = tuple(kept_in_order.index(d) for d in kept)
        self._perm = None if perm == tuple(range(len(perm))) else perm

    def view_of(self, a):
        """The output for the array ``a``: a view (numpy semantics)."""
        a = np.asarray(a)
        if self.drop:
            a = a.reshape([s for d, s in enumerate(a.shape) if d not in self.drop])
        if self._perm is not None:
            a = a.transpose(self._perm)
        shape, k = [], 0
        for d in self.new_order:
            if d == "x":
                shape.append(1)
            else:
                shape.append(a.shape[k])
                k += 1
        return a.reshape(shape)

    def make_node(self, x):
        x = as_tensor_variable(x)
        if x.type.ndim != self.input_ndim:
            raise TypeError(f"DimShuffle{self.new_order} expects a {self.input_ndim}-d input, "
                            f"got {x.type}")
        for d in self.drop:
            if x.type.shape[d] != 1:
                raise ValueError(f"dimshuffle{self.new_order} drops dim {d} of {x.type}, "
                                 f"which is not known to have length 1")
        shape = tuple(1 if d == "x" else x.type.shape[d] for d in self.new_order)
        return Apply(self, [x], [TensorType(x.type.dtype, shape).make_variable()])

    def infer_shape(self, node, shapes):
        (s,) = shapes
        return [tuple(1 if d == "x" else s[d] for d in self.new_order)]

    def pullback(self, inputs, outputs, grads):
        (g,) = grads
        # Sum over the inserted dims, then put the kept dims back in order.
        added = tuple(i for i, d in enumerate(self.new_order) if d == "x")
        from .math import sum as vsum
        if added:
            g = vsum(g, axis=added)
        order = [None] * self.input_ndim
        for pos, d in enumerate(self.transposition):
            order[d] = pos
        pattern = tuple("x" if o is None else o for o in order)
        return [DimShuffle(g.type.ndim, pattern)(g)]

    def pushforward(self, inputs, outputs, tangents):
        return [self(tangents[0])]

    def __str__(self):
        return f"DimShuffle{{{','.join(map(str, self.new_order))}}}"


def insert_axes(x, axes, ndim):
    """``x`` with broadcastable dims inserted so that they sit at ``axes`` of
    the ``ndim``-dim result (the inverse of reducing over ``axes``)."""
    axes, k, pattern = set(axes), 0, []
    for d in range(ndim):
        if d in axes:
            pattern.append("x")
        else:
            pattern.append(k)
            k += 1
    return dimshuffle(x, pattern)


def dimshuffle(x, pattern):
    x = as_tensor_variable(x)
    pattern = tuple(pattern)
    if pattern == tuple(range(x.type.ndim)):
        return x
    return DimShuffle(x.type.ndim, pattern)(x)


def const_data(var):
    """The value of a constant, or of DimShuffles of a constant (a view of its
    data); else None."""
    ops = []
    while var.owner is not None and isinstance(var.owner.op, DimShuffle):
        ops.append(var.owner.op)
        var = var.owner.inputs[0]
    if not isinstance(var, Constant):
        return None
    a = var.data
    for op in reversed(ops):
        a = op.view_of(a)
    return a


def const_value(var, max_size=4096):
    """The single value of a constant whose elements are all equal (looking
    through DimShuffles), as a Python number; None for anything else."""
    d = const_data(var)
    if d is None or d.size == 0 or d.size > max_size or d.dtype.kind not in "iuf":
        return None
    first = d.flat[0]
    if d.size > 1 and not np.all(d == first):
        return None
    return first.item()


def _broadcast_shape(types, opname, given=None):
    """The static shape of ``types`` (of equal rank) broadcast together; the
    error names the operands as ``given`` (the types before padding)."""
    ndim = types[0].ndim
    shape = []
    for d in range(ndim):
        dims = [t.shape[d] for t in types]
        known = {s for s in dims if s is not None and s != 1}
        if len(known) > 1:
            raise TypeError(f"{opname}: incompatible static shapes "
                            f"{' and '.join(str(t) for t in (given or types))} "
                            f"(dim {d - ndim} has lengths {sorted(known)})")
        if known:
            shape.append(known.pop())
        elif all(s == 1 for s in dims):
            shape.append(1)
        else:
            shape.append(None)
    return tuple(shape)


class Elemwise(Op):
    """Apply ``scalar_op`` elementwise, broadcasting dims known to be 1."""
    __props__ = ("scalar_op",)

    def __init__(self, scalar_op):
        self.scalar_op = scalar_op

    def make_node(self, *inputs):
        if len(inputs) != self.scalar_op.nin:
            raise TypeError(f"{self} takes {self.scalar_op.nin} inputs, got {len(inputs)}")
        tensors = [as_tensor_variable(i) for i in inputs if isinstance(i, Variable)]
        dtypes = [t.type.dtype for t in tensors]
        # Python numbers become constants of the expression's rank directly.
        rank = max((t.type.ndim for t in tensors), default=0)
        inputs = [weak_operand(i, dtypes, rank) if not isinstance(i, Variable) else
                  as_tensor_variable(i) for i in inputs]
        given = [i.type for i in inputs]
        ndim = max(t.ndim for t in given)
        if all(t is given[0] for t in given):     # types are interned: one shape
            shape = given[0].shape
        else:
            inputs = [i if i.type.ndim == ndim else
                      DimShuffle(i.type.ndim, ("x",) * (ndim - i.type.ndim)
                                 + tuple(range(i.type.ndim)))(i) for i in inputs]
            shape = _broadcast_shape([i.type for i in inputs], str(self), given)
        dtype = self.scalar_op.output_dtype([t.dtype for t in given])
        return Apply(self, inputs, [TensorType(dtype, shape).make_variable()])

    def infer_shape(self, node, shapes):
        out = []
        for d in range(node.outputs[0].type.ndim):
            cands = [s[d] for s, i in zip(shapes, node.inputs) if i.type.shape[d] != 1]
            out.append(cands[0] if cands else 1)
        return [tuple(out)]

    def pullback(self, inputs, outputs, grads):
        if self.scalar_op.grad is None:
            return [None] * len(inputs)
        gs = self.scalar_op.grad(inputs, outputs[0], grads[0])
        # markers (undefined, zero) pass through: grad() reports or prunes them
        return [g if g is None or isinstance(g, (NullGradient, ZeroGradient))
                else _unbroadcast(g, x) for g, x in zip(gs, inputs)]

    def pushforward(self, inputs, outputs, tangents):
        # The derivative of an elementwise op is diagonal and each scalar
        # pullback is linear in its ``g``: input i's share of the tangent is
        # its pullback with g = that input's tangent.
        if self.scalar_op.grad is None:
            return [None]
        out, total, zero = outputs[0], None, False
        for i, t in enumerate(tangents):
            if t is None:
                continue
            g = self.scalar_op.grad(inputs, out, t)[i]
            if isinstance(g, NullGradient):
                raise NullGradientError(f"the derivative of {self} w.r.t. its input {i} "
                                        f"is undefined: {g.why}")
            zero = zero or isinstance(g, ZeroGradient)
            if g is None or isinstance(g, ZeroGradient):
                continue
            total = g if total is None else total + g
        if total is None and zero:
            return [out.zeros_like()]       # connected, derivative zero (floor, sign)
        if total is not None and total.type.broadcastable != out.type.broadcastable:
            total = total + out.zeros_like()        # a tangent of the output's shape
        return [total]

    def __str__(self):
        return str(self.scalar_op)


def _unbroadcast(g, x):
    """Sum ``g`` over the dims that ``x`` broadcast along, to ``x``'s shape."""
    if g.type.ndim > x.type.ndim:
        from .math import sum as vsum
        g = vsum(g, axis=tuple(range(g.type.ndim - x.type.ndim)))
    axes = tuple(d for d, (a, b) in enumerate(zip(x.type.shape, g.type.shape))
                 if a == 1 and b != 1)
    if axes:
        from .math import sum as vsum
        g = vsum(g, axis=axes, keepdims=True)
    if g.type.dtype != x.type.dtype and x.type.dtype.startswith("float"):
        g = cast(g, x.type.dtype)
    return g


def elemwise_fn(name):
    op = Elemwise(get_scalar_op(name))

    def fn(*args):
        return op(*args)
    fn.__name__ = name
    fn.__doc__ = f"Elementwise {name}, with NumPy broadcasting and dtype rules."
    return fn


add = elemwise_fn("add")
sub = elemwise_fn("sub")
mul = elemwise_fn("mul")
true_div = elemwise_fn("true_div")
int_div = elemwise_fn("int_div")
mod = elemwise_fn("mod")
pow = elemwise_fn("pow")
maximum = elemwise_fn("maximum")
minimum = elemwise_fn("minimum")
arctan2 = elemwise_fn("arctan2")
neg = elemwise_fn("neg")
abs = elemwise_fn("abs")
sign = elemwise_fn("sign")
exp = elemwise_fn("exp")
log = elemwise_fn("log")
log1p = elemwise_fn("log1p")
expm1 = elemwise_fn("expm1")
log2 = elemwise_fn("log2")
log10 = elemwise_fn("log10")
sqrt = elemwise_fn("sqrt")
sqr = elemwise_fn("sqr")
reciprocal = elemwise_fn("reciprocal")
tanh = elemwise_fn("tanh")
sigmoid = elemwise_fn("sigmoid")
softplus = elemwise_fn("softplus")
sin, cos, tan = elemwise_fn("sin"), elemwise_fn("cos"), elemwise_fn("tan")
arcsin, arccos, arctan = elemwise_fn("arcsin"), elemwise_fn("arccos"), elemwise_fn("arctan")
sinh, cosh, arcsinh = elemwise_fn("sinh"), elemwise_fn("cosh"), elemwise_fn("arcsinh")
erf, erfc, erfinv = elemwise_fn("erf"), elemwise_fn("erfc"), elemwise_fn("erfinv")
gammaln, psi = elemwise_fn("gammaln"), elemwise_fn("psi")
digamma = psi
logaddexp, log1mexp = elemwise_fn("logaddexp"), elemwise_fn("log1mexp")
erfcx, xlogy = elemwise_fn("erfcx"), elemwise_fn("xlogy")
gammainc, gammaincc = elemwise_fn("gammainc"), elemwise_fn("gammaincc")
floor, ceil = elemwise_fn("floor"), elemwise_fn("ceil")
round = elemwise_fn("round")
switch = elemwise_fn("switch")
eq, neq = elemwise_fn("eq"), elemwise_fn("neq")
lt, le, gt, ge = elemwise_fn("lt"), elemwise_fn("le"), elemwise_fn("gt"), elemwise_fn("ge")
and_, or_, xor = elemwise_fn("and"), elemwise_fn("or"), elemwise_fn("xor")
invert = elemwise_fn("invert")
isnan, isinf = elemwise_fn("isnan"), elemwise_fn("isinf")
tensor_copy = elemwise_fn("identity")


class OutputCopy(Elemwise):
    """The copy ``vmc.function`` puts before an output that would otherwise
    share memory with an argument, another output or stored data
    (``vmc/compile/outputs.py``). It runs as the identity does; its own class
    tells it apart from a copy the user asked for."""
    __props__ = ()

    def __init__(self):
        super().__init__(get_scalar_op("identity"))

    def __str__(self):
        return "OutputCopy"
where = switch
bitwise_and, bitwise_or, bitwise_xor, bitwise_not = and_, or_, xor, invert
logical_and, logical_or, logical_xor, logical_not = and_, or_, xor, invert
true_divide, floor_divide, power, negative = true_div, int_div, pow, neg


def clip(x, lo, hi):
    return Elemwise(get_scalar_op("clip"))(x, lo, hi)


def cast(x, dtype):
    """``x`` as ``dtype`` (a no-op when it already is)."""
    dtype = config.floatX if dtype == "floatX" else str(np.dtype(dtype))
    x = as_tensor_variable(x)
    if x.type.dtype == dtype:
        return x
    return Elemwise(get_scalar_op("cast", dtype))(x)
