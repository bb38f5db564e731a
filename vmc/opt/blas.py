"""The specialize rewrites that make BLAS ops (``vmc.tensor.blas_ops``).

Input orders match the Cython thunks of ``vmc.thunks._blas``:

- ``Gemm(z, alpha, x, y, beta) = beta * z + alpha * x @ y`` (matrices),
- ``Gemv(z, alpha, a, x, beta) = beta * z + alpha * a @ x`` (z, x vectors),
- ``Ger(a, alpha, x, y) = a + alpha * outer(x, y)``.

``alpha`` and ``beta`` are 0-d of the output's dtype. A thunk may write into
``z`` (or ``a``) when the scheduler marks it destroyable: ``w - lr * dot(h.T, d)``
as an update becomes one in-place gemm on ``w``'s buffer.
"""
from __future__ import annotations

from vmc.tensor import elemwise as E
from vmc.tensor.basic import constant
from vmc.tensor.blas_ops import BLAS_DTYPES, _as_scalar, gemm, gemv, ger
from vmc.tensor.elemwise import DimShuffle, const_data
from vmc.tensor.math import Dot

from .chains import ADD_OPS, MUL_OPS, _MINUS_ONE, flatten
from .rewriting import is_scalar_like, node_rewriter, scalar_name

# -- recognizing the pieces -----------------------------------------------------------
def _scaled(fgraph, v):
    """``(scale factors, cores, sign)``: ``v`` as a product of fully
    broadcastable factors and one or two others (``cores``); None when it is
    not one."""
    if scalar_name(v) not in ("mul", "neg"):
        return [], [v], 1
    leaves = flatten(fgraph, v, MUL_OPS, "true_div")
    if leaves is None:
        return None
    scales, cores, sign = [], [], 1
    for w, pos in leaves:
        if w is _MINUS_ONE:
            sign = -sign
        elif not pos:
            return None
        elif is_scalar_like(w):
            scales.append(w)
        else:
            cores.append(w)
    return (scales, cores, sign) if 1 <= len(cores) <= 2 else None


def _scale_value(scales, sign, dtype):
    """The product of the scale factors (0-d, ``dtype``), times ``sign``."""
    consts, s = [], None
    for w in scales:
        d = const_data(w)
        if d is not None:
            consts.append(float(d.reshape(())))
        else:
            w = _as_scalar(w, dtype)
            s = w if s is None else E.mul(s, w)
    c = float(sign)
    for k in consts:
        c *= k
    if s is None:
        return constant(c, dtype=dtype)
    return s if c == 1 else E.mul(s, constant(c, dtype=dtype))


def _single_use(fgraph, v):
    return len(fgraph.clients.get(v, ())) == 1


def _dot_parts(fgraph, v, nx, ny):
    """``(x, y)`` when ``v`` is a single-use ``dot(x, y)`` of ranks ``nx``, ``ny``."""
    if v.owner is None or not isinstance(v.owner.op, Dot) or not _single_use(fgraph, v):
        return None
    x, y = v.owner.inputs
    if x.type.ndim == nx and y.type.ndim == ny:
        return x, y
    return None


def _col_row(col, row):
    """``(x, y)`` when ``col`` is ``x[:, None]`` and ``row`` is ``y[None, :]``."""
    if (col.owner and isinstance(col.owner.op, DimShuffle) and row.owner
            and isinstance(row.owner.op, DimShuffle)
            and col.owner.op.new_order == (0, "x") and row.owner.op.new_order == ("x", 0)):
        return col.owner.inputs[0], row.owner.inputs[0]
    return None


def _outer_parts(fgraph, cores):
    """``(x, y)`` when ``cores`` multiply to ``outer(x, y)``: the two factors
    ``x[:, None]`` and ``y[None, :]``, or one ``dot(x[:, None], y[None, :])``."""
    if len(cores) == 2:
        a, b = cores
        return _col_row(a, b) or _col_row(b, a)
    (v,) = cores
    if v.owner is None or not _single_use(fgraph, v):
        return None
    if scalar_name(v) == "mul":
        a, b = v.owner.inputs
        return _col_row(a, b) or _col_row(b, a)
    if isinstance(v.owner.op, Dot):
        return _col_row(*v.owner.inputs)
    return None


def _rebuild(core, rest):
    """``core`` plus the remaining ``(term, positive)`` pairs of a chain."""
    out = core
    for t, pos in rest:
        out = E.add(out, t) if pos else E.sub(out, t)
    return out


# -- the rewrite ------------------------------------------------------------------------------
@node_rewriter("specialize", "add", "sub", tags=("blas",))
def gemm_gemv_ger(fgraph, node):
    """a * dot(X, Y) + b * Z -> gemm(Z, a, X, Y, b) (matrices), gemv (a
    matrix-vector product), and Z + a * outer(x, y) -> ger(Z, a, x, y)."""
    out = node.outputs[0]
    dt = out.type.dtype
    if dt not in BLAS_DTYPES or out.type.ndim not in (1, 2):
        return None
    terms = flatten(fgraph, out, ADD_OPS, "sub")
    if terms is None or len(terms) < 2:
        return None
    scaled = [_scaled(fgraph, t) for t, _ in terms]
    for i, (t, pos) in enumerate(terms):
        if scaled[i] is None:
            continue
        scales, cores, sign = scaled[i]
        if cores != [t] and not _single_use(fgraph, t):
            continue
        sign = sign if pos else -sign
        prod = _product(fgraph, cores, out.type.ndim)
        if prod is None:
            continue
        kind, a, b = prod
        if _product_pattern(kind, a, b) != out.type.broadcastable:
            continue                      # the product broadcasts over z: not a BLAS update
        for j, (zt, zpos) in enumerate(terms):
            if j == i or scaled[j] is None:
                continue
            zscales, zc, zsign = scaled[j]
            if len(zc) != 1:
                continue
            (z,) = zc
            zsign = zsign if zpos else -zsign
            if z.type.dtype != dt or z.type.broadcastable != out.type.broadcastable:
                continue
            if kind == "ger" and (zscales or zsign != 1):
                continue
            if a.type.dtype != dt or b.type.dtype != dt:
                continue
            alpha = _scale_value(scales, sign, dt)
            if kind == "ger":
                core_new = ger(z, alpha, a, b)
            else:
                beta = _scale_value(zscales, zsign, dt)
                core_new = (gemm if kind == "gemm" else gemv)(z, alpha, a, b, beta)
            rest = [tp for k, tp in enumerate(terms) if k not in (i, j)]
            return [_rebuild(core_new, rest)]
    return None


def _product_pattern(kind, a, b):
    """The broadcast pattern of the product the BLAS op computes."""
    if kind == "gemm":
        return (a.type.broadcastable[0], b.type.broadcastable[1])
    if kind == "gemv":
        return (a.type.broadcastable[0],)
    return (a.type.broadcastable[0], b.type.broadcastable[0])


def _product(fgraph, cores, ndim):
    """``("gemm" | "gemv" | "ger", a, b)`` for a product of ``cores`` of rank ``ndim``."""
    if ndim == 2:
        parts = _outer_parts(fgraph, cores)      # before gemm: a column @ a row is ger
        if parts is not None and all(p.type.ndim == 1 for p in parts):
            return ("ger",) + parts
        parts = _dot_parts(fgraph, cores[0], 2, 2) if len(cores) == 1 else None
        if parts is not None:
            return ("gemm",) + parts
        return None
    if len(cores) != 1:
        return None
    parts = _dot_parts(fgraph, cores[0], 2, 1)
    if parts is not None:
        return ("gemv",) + parts
    parts = _dot_parts(fgraph, cores[0], 1, 2)
    if parts is not None:                 # x @ A == A.T @ x
        return ("gemv", parts[1].T, parts[0])
    return None
