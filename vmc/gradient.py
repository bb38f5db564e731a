"""Gradients: ``grad``, ``jacobian``, ``hessian`` and ``verify_grad``; and
Theano's ops that act only on the gradient (``grad_clip``, ``grad_scale``,
``zero_grad``, ``disconnected_grad``, ``consider_constant``, ``undefined_grad``)."""
from __future__ import annotations

import numpy as np

from vmc.graph.grad import DisconnectedInputError, NullGradient, NullGradientError, grad
from vmc.graph.basic import Variable
from vmc.rop import Lop, Rop
from vmc.tensor.grad_ops import (consider_constant, disconnected_grad, grad_clip,  # noqa: F401
                                 grad_scale, undefined_grad, zero_grad)

__all__ = ["grad", "Rop", "Lop", "jacobian", "hessian", "verify_grad", "DisconnectedInputError",
           "NullGradient", "NullGradientError", "GradientError", "grad_clip", "grad_scale",
           "zero_grad", "disconnected_grad", "consider_constant", "undefined_grad"]


def jacobian(expression, wrt, consider_constant=None, disconnected_inputs="raise"):
    """d expression / d wrt for a vector (or scalar) ``expression``.

    The result has shape ``expression.shape + wrt.shape``. Rows are built one
    per element, so the length of ``expression`` must be known statically.
    """
    import vmc.tensor as vt
    single = isinstance(wrt, Variable)
    wrts = [wrt] if single else list(wrt)
    expression = vt.as_tensor_variable(expression)
    if expression.type.ndim == 0:
        out = [grad(expression, w, consider_constant, disconnected_inputs) for w in wrts]
        return out[0] if single else out
    if expression.type.ndim != 1:
        raise TypeError(f"jacobian: expected a vector expression, got {expression.type}")
    n = expression.type.shape[0]
    if n is None:
        try:
            import vmc.scan as vscan
        except ImportError:
            raise ValueError("jacobian: the length of the expression must be known "
                             "statically (give the input a static shape)") from None
        return vscan.jacobian(expression, wrt, consider_constant, disconnected_inputs)
    out = []
    for w in wrts:
        rows = [grad(expression[i], w, consider_constant, disconnected_inputs)
                for i in range(n)]
        out.append(vt.stack(rows))
    return out[0] if single else out


def hessian(cost, wrt, consider_constant=None, disconnected_inputs="raise"):
    """The Hessian of the scalar ``cost`` w.r.t. each vector in ``wrt``."""
    single = isinstance(wrt, Variable)
    wrts = [wrt] if single else list(wrt)
    out = [jacobian(grad(cost, w, consider_constant, disconnected_inputs), w,
                    consider_constant, disconnected_inputs) for w in wrts]
    return out[0] if single else out


class GradientError(AssertionError):
    """The symbolic and numerical gradients disagree."""


def verify_grad(fn, points, n_tests=2, rng=None, eps=None, abs_tol=None, rel_tol=None,
                mode=None):
    """Check ``fn``'s symbolic gradient against central finite differences.

    ``fn`` maps symbolic tensors (one per point) to a symbolic tensor; the
    check projects its output on a random direction so that any output rank
    works. Raises GradientError with the worst element when they disagree.
    """
    import vmc
    import vmc.tensor as vt
    rng = np.random.default_rng(rng if rng is not None else 1234)
    points = [np.asarray(p) for p in points]
    dtype = np.result_type(*[p.dtype for p in points])
    low = dtype == np.float32
    eps = eps or (1e-3 if low else 1e-6)
    abs_tol = abs_tol if abs_tol is not None else (3e-2 if low else 1e-5)
    rel_tol = rel_tol if rel_tol is not None else (3e-2 if low else 1e-5)
    xs = [vt.tensor(p.dtype, (None,) * p.ndim, name=f"x{k}") for k, p in enumerate(points)]
    out = vt.as_tensor_variable(fn(*xs))
    for _ in range(n_tests):
        proj_val = rng.standard_normal(size=_out_shape(fn, points)).astype(out.type.dtype)
        proj = vt.constant(proj_val)
        cost = vt.sum(out * proj) if out.type.ndim else out * proj
        grads = grad(cost, xs, disconnected_inputs="ignore")
        f_cost = vmc.function(xs, cost, mode=mode, on_unused_input="ignore")
        f_grad = vmc.function(xs, grads, mode=mode, on_unused_input="ignore")
        symbolic = f_grad(*points)
        for k, p in enumerate(points):
            num = _numeric_grad(f_cost, points, k, eps)
            sym = np.asarray(symbolic[k], dtype=np.float64)
            if sym.shape != num.shape:
                raise GradientError(f"verify_grad: the gradient of input {k} has shape "
                                    f"{sym.shape}, expected {num.shape}")
            err = np.abs(sym - num)
            tol = abs_tol + rel_tol * np.abs(num)
            if not np.all(err <= tol):
                i = np.unravel_index(np.argmax(err - tol), err.shape) if err.ndim else ()
                raise GradientError(
                    f"verify_grad: gradient of input {k} (shape {p.shape}) differs at "
                    f"{i}: symbolic {sym[i]!r}, numerical {num[i]!r} "
                    f"(abs_tol {abs_tol}, rel_tol {rel_tol})")


def _out_shape(fn, points):
    import vmc
    import vmc.tensor as vt
    xs = [vt.tensor(p.dtype, (None,) * p.ndim) for p in points]
    out = vt.as_tensor_variable(fn(*xs))
    return np.shape(vmc.function(xs, out, on_unused_input="ignore")(*points))


def _numeric_grad(f_cost, points, k, eps):
    base = [p.copy() for p in points]
    x = base[k].astype(np.float64)
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        base[k] = x.astype(points[k].dtype)
        plus = float(f_cost(*base))
        flat[i] = old - eps
        base[k] = x.astype(points[k].dtype)
        minus = float(f_cost(*base))
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * eps)
    return g
