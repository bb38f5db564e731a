"""Linear algebra on matrices (numpy/scipy thunks): ``inv solve solve_triangular
cholesky det eigh``, each with a type rule, a shape rule and a pullback.

``import vmc.tensor as vt; vt.linalg.solve(a, b)``. Ops that read only one
triangle of their matrix (``cholesky``, ``eigh``, ``solve_triangular``, and
``solve`` with ``assume_a="sym"``/``"pos"``) differentiate as functions of
that triangle: the other triangle's gradient is zero, as a finite-difference
check on the raw matrix sees it.
"""
from __future__ import annotations

import numpy as np

from vmc.graph.basic import Apply, Op
from vmc.graph.grad import NullGradient
from vmc.graph.type import TensorType

from .basic import as_tensor_variable
from .elemwise import cast
from .extra_ops import diag, tril, triu
from .math import dot, outer

__all__ = ["inv", "matrix_inverse", "solve", "solve_triangular", "cholesky", "det", "eigh",
           "MatrixInverse", "Solve", "SolveTriangular", "Cholesky", "Det", "Eigh", "EighGrad"]


def _float_dtype(*dtypes):
    """The dtype LAPACK computes in: float32/float64 as given, ints as float64."""
    dt = np.result_type(*dtypes)
    if dt.kind == "f":
        return "float32" if dt.itemsize <= 4 else "float64"
    if dt.kind == "c":
        return dt.name
    return "float64"


def _square(x, opname):
    x = as_tensor_variable(x)
    if x.type.ndim != 2:
        raise TypeError(f"{opname}: expected a matrix, got {x.type}")
    n, m = x.type.shape
    if n is not None and m is not None and n != m:
        raise TypeError(f"{opname}: expected a square matrix, got {x.type}")
    return x


def _side(x):
    n, m = x.type.shape
    return n if n is not None else m


class _SquareToSquare:
    """make_node and infer_shape of an op from a square matrix to a float
    matrix of the same side (a mixin: listed before Op in the bases)."""
    label = ""          # the function's name, for errors

    def make_node(self, x):
        x = _square(x, self.label)
        n = _side(x)
        dtype = _float_dtype(x.type.dtype)
        return Apply(self, [x], [TensorType(dtype, (n, n)).make_variable()])

    def infer_shape(self, node, shapes):
        return [shapes[0]]


class MatrixInverse(_SquareToSquare, Op):
    """``np.linalg.inv`` of a square matrix."""
    __props__ = ()
    label = "inv"

    def pullback(self, inputs, outputs, grads):
        (xi,), (g,) = outputs, grads
        # d inv(x) = -inv(x) dx inv(x)
        return [-dot(dot(xi.T, g), xi.T)]


inv = matrix_inverse = MatrixInverse()


def _rhs_type(opname, a, b, dtype):
    if b.type.ndim not in (1, 2):
        raise TypeError(f"{opname}: the right-hand side must be a vector or a matrix, got "
                        f"{b.type} (with {a.type})")
    n, nb = _side(a), b.type.shape[0]
    if n is not None and nb is not None and n != nb:
        raise TypeError(f"{opname}: {a.type} and right-hand side {b.type} do not match")
    return TensorType(dtype, (n if n is not None else nb,) + b.type.shape[1:])


def _neg_outer(gb, x):
    """-gb x^T for vector or matrix right-hand sides."""
    return -outer(gb, x) if x.type.ndim == 1 else -dot(gb, x.T)


def _one_triangle(g, lower):
    """The gradient w.r.t. a matrix of which only one triangle is read, given the
    gradient ``g`` w.r.t. the symmetric matrix that triangle stands for."""
    tri = tril if lower else triu
    return tri(g + g.T) - diag(diag(g))


class Solve(Op):
    """``scipy.linalg.solve(a, b, assume_a=, lower=)``: ``x`` with ``a x = b``.
    ``assume_a``: "gen", or "sym"/"pos" (only the ``lower`` or upper triangle
    of ``a`` is read)."""
    __props__ = ("assume_a", "lower")

    def __init__(self, assume_a="gen", lower=False):
        if assume_a not in ("gen", "sym", "pos"):
            raise ValueError(f"solve: assume_a must be 'gen', 'sym' or 'pos', got {assume_a!r}")
        self.assume_a, self.lower = assume_a, bool(lower)

    def make_node(self, a, b):
        a = _square(a, "solve")
        b = as_tensor_variable(b)
        out = _rhs_type("solve", a, b, _float_dtype(a.type.dtype, b.type.dtype))
        return Apply(self, [a, b], [out.make_variable()])

    def infer_shape(self, node, shapes):
        return [shapes[1]]

    def pullback(self, inputs, outputs, grads):
        (a, _), (x,), (g,) = inputs, outputs, grads
        if self.assume_a == "gen":
            gb = Solve("gen")(a.T, g)
            return [_neg_outer(gb, x), gb]
        gb = self(a, g)                        # the matrix read is symmetric
        return [_one_triangle(_neg_outer(gb, x), self.lower), gb]


def solve(a, b, assume_a="gen", lower=False):
    return Solve(assume_a, lower)(a, b)


class SolveTriangular(Op):
    """``scipy.linalg.solve_triangular(a, b, lower=)``: only that triangle of
    ``a`` is read."""
    __props__ = ("lower",)

    def __init__(self, lower=True):
        self.lower = bool(lower)

    def make_node(self, a, b):
        a = _square(a, "solve_triangular")
        b = as_tensor_variable(b)
        out = _rhs_type("solve_triangular", a, b, _float_dtype(a.type.dtype, b.type.dtype))
        return Apply(self, [a, b], [out.make_variable()])

    def infer_shape(self, node, shapes):
        return [shapes[1]]

    def pullback(self, inputs, outputs, grads):
        (a, _), (x,), (g,) = inputs, outputs, grads
        gb = SolveTriangular(not self.lower)(a.T, g)
        tri = tril if self.lower else triu
        return [tri(_neg_outer(gb, x)), gb]


def solve_triangular(a, b, lower=True):
    return SolveTriangular(lower)(a, b)


class Cholesky(_SquareToSquare, Op):
    """``scipy.linalg.cholesky(x, lower=)``: ``L`` with ``L L^T = x`` (or ``U^T U``);
    only that triangle of ``x`` is read."""
    __props__ = ("lower",)
    label = "cholesky"

    def __init__(self, lower=True):
        self.lower = bool(lower)

    def pullback(self, inputs, outputs, grads):
        # Murray (2016), "Differentiation of the Cholesky decomposition", as
        # PyTensor writes it: with Phi(A) = tril(A) with a halved diagonal,
        # S = L^-T Phi(L^T dL) L^-1 and the gradient is S symmetrized onto the
        # triangle that was read.
        (L,), (gL,) = outputs, grads
        if not self.lower:
            L, gL = L.T, gL.T
        p = dot(L.T, gL)
        phi = tril(p) - 0.5 * diag(diag(p))
        upper = SolveTriangular(lower=False)
        s = upper(L.T, upper(L.T, phi.T).T)
        tri = tril if self.lower else triu
        return [tri(s + s.T) - diag(diag(s))]


def cholesky(x, lower=True):
    return Cholesky(lower)(x)


class Det(Op):
    """``np.linalg.det`` of a square matrix."""
    __props__ = ()

    def make_node(self, x):
        x = _square(x, "det")
        return Apply(self, [x], [TensorType(_float_dtype(x.type.dtype), ()).make_variable()])

    def infer_shape(self, node, shapes):
        return [()]

    def pullback(self, inputs, outputs, grads):
        (x,), (d,), (g,) = inputs, outputs, grads
        # d det(x) / dx = det(x) inv(x)^T
        return [g * d * inv(x).T]


det = Det()


class Eigh(Op):
    """``np.linalg.eigh(x, UPLO)``: eigenvalues (ascending) and eigenvectors
    (columns) of a symmetric matrix given by one triangle."""
    __props__ = ("UPLO",)

    def __init__(self, UPLO="L"):
        if UPLO not in ("L", "U"):
            raise ValueError(f"eigh: UPLO must be 'L' or 'U', got {UPLO!r}")
        self.UPLO = UPLO

    def make_node(self, x):
        x = _square(x, "eigh")
        n = _side(x)
        dtype = _float_dtype(x.type.dtype)
        return Apply(self, [x], [TensorType(dtype, (n,)).make_variable(),
                                 TensorType(dtype, (n, n)).make_variable()])

    def infer_shape(self, node, shapes):
        n = shapes[0][0]
        return [(n,), (n, n)]

    def pullback(self, inputs, outputs, grads):
        (x,), (w, v), (gw, gv) = inputs, outputs, grads
        return [EighGrad(self.UPLO)(x, w, v, gw, gv)]


class EighGrad(Op):
    """The gradient of ``Eigh`` w.r.t. its matrix, given the eigenvalues and
    eigenvectors and their gradients (its own gradient is not implemented)."""
    __props__ = ("UPLO",)

    def __init__(self, UPLO="L"):
        self.UPLO = UPLO

    def make_node(self, x, w, v, gw, gv):
        x, w, v, gw, gv = (as_tensor_variable(t) for t in (x, w, v, gw, gv))
        gw, gv = cast(gw, w.type.dtype), cast(gv, v.type.dtype)
        return Apply(self, [x, w, v, gw, gv], [v.type.make_variable()])

    def infer_shape(self, node, shapes):
        return [shapes[2]]

    def pullback(self, inputs, outputs, grads):
        return [NullGradient("the second derivative of eigh is not implemented")] * 5


def eigh(x, UPLO="L"):
    """``(w, v)``: ``x @ v[:, i] == w[i] * v[:, i]``."""
    return tuple(Eigh(UPLO)(x))


# Theano's nlinalg names, reachable here too (vt.linalg.svd, ...).
from .nlinalg import SVD, QR, Eig, Lstsq, Pinv, SLogDet, eig, lstsq, pinv, qr, slogdet, svd  # noqa: E402,F401
__all__ += ["slogdet", "svd", "qr", "eig", "pinv", "lstsq"]
