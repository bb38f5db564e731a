"""Theano's ``theano.tensor.nlinalg``: ``slogdet det svd qr eig pinv lstsq``
through numpy (plus what ``vmc.tensor.linalg`` has: ``inv solve cholesky eigh``).

Gradients where they are defined for real matrices: ``slogdet`` (of the log),
``det``, ``pinv`` (full-rank), ``svd(compute_uv=False)``; the others' outputs
(eigenvectors, orthogonal factors, least-squares extras) give NullGradient.
"""
from __future__ import annotations

import numpy as np

from vmc.graph.basic import Apply, Op
from vmc.graph.grad import NullGradient
from vmc.graph.type import TensorType

from .basic import as_tensor_variable
from .linalg import (_float_dtype, _square, cholesky, det, eigh, inv, matrix_inverse,  # noqa: F401
                     solve, solve_triangular)
from .math import dot

__all__ = ["slogdet", "det", "svd", "qr", "eig", "pinv", "lstsq", "inv", "matrix_inverse",
           "solve", "solve_triangular", "cholesky", "eigh", "SLogDet", "SVD", "QR", "Eig",
           "Pinv", "Lstsq"]


def _matrix(x, opname):
    x = as_tensor_variable(x)
    if x.type.ndim != 2:
        raise TypeError(f"{opname}: expected a matrix, got {x.type}")
    return x


def _no_grad(opname, inputs):
    return [NullGradient(f"{opname} has no gradient here")] + [None] * (len(inputs) - 1)


class SLogDet(Op):
    """``np.linalg.slogdet``: (sign, log |det|)."""
    __props__ = ()

    def make_node(self, x):
        x = _square(x, "slogdet")
        t = TensorType(_float_dtype(x.type.dtype), ())
        return Apply(self, [x], [t.make_variable(), t.make_variable()])

    def infer_shape(self, node, shapes):
        return [(), ()]

    def pullback(self, inputs, outputs, grads):
        (x,), (_, glog) = inputs, grads
        # d log|det x| / dx = inv(x)^T; the sign is piecewise constant
        return [glog * inv(x).T]


def slogdet(x):
    return SLogDet()(x)


class SVD(Op):
    """``np.linalg.svd(x, full_matrices, compute_uv)``: (U, s, V^T) or s."""
    __props__ = ("full_matrices", "compute_uv")

    def __init__(self, full_matrices=True, compute_uv=True):
        self.full_matrices, self.compute_uv = bool(full_matrices), bool(compute_uv)

    def make_node(self, x):
        x = _matrix(x, "svd")
        dt = _float_dtype(x.type.dtype)
        s = TensorType(dt, (None,)).make_variable()
        if not self.compute_uv:
            return Apply(self, [x], [s])
        return Apply(self, [x], [TensorType(dt, (None, None)).make_variable(), s,
                                 TensorType(dt, (None, None)).make_variable()])

    def infer_shape(self, node, shapes):
        from .elemwise import minimum
        m, n = shapes[0]
        k = minimum(m, n)
        if not self.compute_uv:
            return [(k,)]
        if self.full_matrices:
            return [(m, m), (k,), (n, n)]
        return [(m, k), (k,), (k, n)]

    def pullback(self, inputs, outputs, grads):
        (x,) = inputs
        if self.compute_uv:
            return _no_grad("svd with compute_uv=True", inputs)
        # ds = U^T dx V: the gradient is U diag(g) V^T (distinct singular values)
        u, _, vt = SVD(False, True)(x)
        return [dot(u * grads[0], vt)]


def svd(a, full_matrices=1, compute_uv=1):
    return SVD(full_matrices, compute_uv)(a)


class QR(Op):
    """``np.linalg.qr(x, mode)``: (Q, R), or R with mode 'r'."""
    __props__ = ("mode",)

    def __init__(self, mode="reduced"):
        if mode not in ("reduced", "complete", "r"):
            raise ValueError(f"qr: mode must be 'reduced', 'complete' or 'r', got {mode!r}")
        self.mode = mode

    def make_node(self, x):
        x = _matrix(x, "qr")
        t = TensorType(_float_dtype(x.type.dtype), (None, None))
        n_out = 1 if self.mode == "r" else 2
        return Apply(self, [x], [t.make_variable() for _ in range(n_out)])

    def infer_shape(self, node, shapes):
        from .elemwise import minimum
        m, n = shapes[0]
        k = m if self.mode == "complete" else minimum(m, n)
        r = (k, n)
        return [r] if self.mode == "r" else [(m, k), r]

    def pullback(self, inputs, outputs, grads):
        return _no_grad("qr", inputs)


def qr(a, mode="reduced"):
    return QR(mode)(a)


class Eig(Op):
    """``np.linalg.eig``: (eigenvalues, right eigenvectors), complex in general:
    the outputs are complex128 (complex64 for float32 inputs)."""
    __props__ = ()

    def make_node(self, x):
        x = _square(x, "eig")
        dt = "complex64" if _float_dtype(x.type.dtype) == "float32" else "complex128"
        return Apply(self, [x], [TensorType(dt, (None,)).make_variable(),
                                 TensorType(dt, (None, None)).make_variable()])

    def infer_shape(self, node, shapes):
        n = shapes[0][0]
        return [(n,), (n, n)]

    def pullback(self, inputs, outputs, grads):
        return _no_grad("eig", inputs)


def eig(a):
    return Eig()(a)


class Pinv(Op):
    """``np.linalg.pinv``: the Moore-Penrose pseudo-inverse."""
    __props__ = ()

    def make_node(self, x):
        x = _matrix(x, "pinv")
        m, n = x.type.shape
        return Apply(self, [x], [TensorType(_float_dtype(x.type.dtype), (n, m)).make_variable()])

    def infer_shape(self, node, shapes):
        m, n = shapes[0]
        return [(n, m)]

    def pullback(self, inputs, outputs, grads):
        (x,), (p,), (g,) = inputs, outputs, grads
        # Golub & Pereyra (1973), for x of full rank:
        #   dP = -P dX P + P P^T dX^T (I - X P) + (I - P X) dX^T P^T P
        # and its adjoint, for the gradient g of P:
        pt = p.T
        term1 = -dot(dot(pt, g), pt)
        term2 = dot(dot(_eye_rows(x) - dot(x, p), g.T), dot(p, pt))
        term3 = dot(dot(dot(pt, p), g.T), _eye_cols(x) - dot(p, x))
        return [term1 + term2 + term3]


def _eye_rows(x):
    from .creation import eye
    return eye(x.shape[0], dtype=x.type.dtype)


def _eye_cols(x):
    from .creation import eye
    return eye(x.shape[1], dtype=x.type.dtype)


def pinv(x):
    return Pinv()(x)


class Lstsq(Op):
    """``np.linalg.lstsq(a, b, rcond)``: (solution, residuals, rank, singular values)."""
    __props__ = ()

    def make_node(self, a, b, rcond):
        a, b = _matrix(a, "lstsq"), as_tensor_variable(b)
        rcond = as_tensor_variable(rcond)
        dt = _float_dtype(a.type.dtype, b.type.dtype)
        x = TensorType(dt, (None,) * b.type.ndim)
        return Apply(self, [a, b, rcond], [x.make_variable(),
                                           TensorType(dt, (None,)).make_variable(),
                                           TensorType("int64", ()).make_variable(),
                                           TensorType(dt, (None,)).make_variable()])

    def pullback(self, inputs, outputs, grads):
        return _no_grad("lstsq", inputs)

    def infer_shape(self, node, shapes):
        raise NotImplementedError("lstsq: the residuals' length depends on the values")


def lstsq(a, b, rcond=-1):
    """Theano's ``lstsq(a, b, rcond=-1)``; numpy's default ``rcond=None`` is
    spelled None here too."""
    return Lstsq()(a, b, -1.0 if rcond is None else rcond)
