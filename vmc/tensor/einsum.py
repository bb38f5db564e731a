"""``einsum(subscripts, *operands)`` lowered to the ops vmc already has, so it
needs no thunk and no gradient of its own:

- a letter seen in one operand only, and not in the output, is summed out first;
- operands are then contracted left to right: letters shared by the pair and
  needed nowhere after are contracted by ``tensordot`` (BLAS gemm after the
  specialize pass); letters the pair shares that are still needed (batch
  letters, as in ``bij,bjk->bik``) are handled by a broadcast product and a sum;
- the result is transposed to the output's letters.

A letter repeated inside one operand (a diagonal) and ``...`` are not supported.
"""
from __future__ import annotations

from .basic import as_tensor_variable
from .blas_ops import tensordot
from .elemwise import dimshuffle
from .math import sum as vsum

__all__ = ["einsum"]


def _parse(subscripts, n):
    s = subscripts.replace(" ", "")
    if "..." in s:
        raise NotImplementedError("einsum: '...' is not supported; name every dim")
    if "->" in s:
        ins, out = s.split("->")
    else:
        ins = s
        letters = ins.replace(",", "")
        out = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    terms = ins.split(",")
    if len(terms) != n:
        raise ValueError(f"einsum: {subscripts!r} names {len(terms)} operands, got {n}")
    for t in terms:
        if len(set(t)) != len(t):
            raise NotImplementedError(f"einsum: a letter repeated in one operand ({t!r}) "
                                      f"is not supported")
        if not t.isalpha() and t:
            raise ValueError(f"einsum: bad subscripts {subscripts!r}")
    if len(set(out)) != len(out) or any(c not in ins for c in out):
        raise ValueError(f"einsum: bad output subscripts in {subscripts!r}")
    return terms, out


def einsum(subscripts, *operands):
    terms, out = _parse(subscripts, len(operands))
    ops = [as_tensor_variable(o) for o in operands]
    for t, o in zip(terms, ops):
        if len(t) != o.type.ndim:
            raise ValueError(f"einsum: subscripts {t!r} for an operand of type {o.type}")
    items = list(zip(terms, ops))
    for k, (t, o) in enumerate(items):      # letters nothing else names: sum them out now
        others = out + "".join(u for j, (u, _) in enumerate(items) if j != k)
        lone = [d for d, c in enumerate(t) if c not in others]
        if lone:
            items[k] = ("".join(c for c in t if c in others), vsum(o, axis=tuple(lone)))
    t, acc = items[0]
    for k in range(1, len(items)):
        u, b = items[k]
        later = out + "".join(v for v, _ in items[k + 1:])
        t, acc = _pair(t, acc, u, b, later)
    if t != out:
        acc = dimshuffle(acc, [t.index(c) for c in out])
    return acc


def _pair(t, a, u, b, later):
    """Contract two operands with letters ``t`` and ``u``; keep what ``later`` needs."""
    shared = [c for c in t if c in u]
    batch = [c for c in shared if c in later]
    summed = [c for c in shared if c not in later]
    if not batch:
        res = tensordot(a, b, axes=([t.index(c) for c in summed], [u.index(c) for c in summed]))
        return "".join(c for c in t if c not in summed) + \
            "".join(c for c in u if c not in summed), res
    letters = t + "".join(c for c in u if c not in t)
    pa = dimshuffle(a, [t.index(c) if c in t else "x" for c in letters])
    pb = dimshuffle(b, [u.index(c) if c in u else "x" for c in letters])
    prod = pa * pb
    if summed:
        prod = vsum(prod, axis=tuple(letters.index(c) for c in summed))
    return "".join(c for c in letters if c not in summed), prod
