"""specialize: general ops become the cheaper special ones (powers here; BLAS in blas.py)."""
from __future__ import annotations

from vmc.tensor import elemwise as E
from vmc.tensor.basic import constant
from vmc.tensor.elemwise import const_value
from vmc.tensor.shape import alloc_like

from .rewriting import node_rewriter

MAX_INT_POWER = 16


def _int_power(x, n):
    """x**n for an integer 1 <= n by repeated squaring: x**5 = sqr(sqr(x)) * x."""
    result, base = None, x
    while n:
        if n & 1:
            result = base if result is None else E.mul(result, base)
        n >>= 1
        if n:
            base = E.sqr(base)
    return result


@node_rewriter("specialize", "pow", tags=("algebra", "power"))
def pow_specialize(fgraph, node):
    """x**2 -> sqr(x); x**0.5 -> sqrt(x); x**-1 -> reciprocal(x); x**-0.5 ->
    1/sqrt(x); x**n for small integers n -> multiplications; x**1 -> x;
    x**0 -> 1."""
    x, p = node.inputs
    out = node.outputs[0]
    n = const_value(p)
    if n is None or out.type.dtype[0] != "f" or x.type.dtype != out.type.dtype:
        return None
    if n == 0:
        if x.type.broadcastable != out.type.broadcastable:
            return None
        return [alloc_like(constant(1, dtype=out.type.dtype), x)]
    if n == 0.5:
        return [E.sqrt(x)]
    if n == -0.5:
        return [E.reciprocal(E.sqrt(x))]
    if n != int(n) or abs(n) > MAX_INT_POWER:
        return None
    n = int(n)
    r = _int_power(x, abs(n))
    return [E.reciprocal(r) if n < 0 else r]
