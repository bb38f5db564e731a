"""Batch normalization with Theano's semantics (``theano.tensor.nnet.bn``),
built from elementwise ops and reductions: its gradients, shape rules and
fusion come from theirs.

``axes`` are the dims normalized over: 'per-activation' is ``(0,)``, 'spatial'
is ``(0, 2, 3, ...)``, or a tuple. ``gamma``, ``beta`` and the running
statistics have the input's rank with length 1 along ``axes``, or the rank
less ``len(axes)`` (the dims along ``axes`` left out).
"""
from __future__ import annotations

from ..basic import as_tensor_variable
from ..elemwise import dimshuffle, insert_axes, sqrt
from ..math import mean

__all__ = ["batch_normalization_train", "batch_normalization_test", "batch_normalization"]


def _axes(axes, ndim):
    if axes == "per-activation":
        return (0,)
    if axes == "spatial":
        return (0,) + tuple(range(2, ndim))
    axes = tuple(sorted(int(a) % ndim for a in axes))
    if len(set(axes)) != len(axes):
        raise ValueError(f"batch_normalization: repeated axes in {axes}")
    return axes


def _param(p, ndim, axes, what):
    """``p`` broadcastable along ``axes``, with the input's rank."""
    p = as_tensor_variable(p)
    if p.type.ndim == ndim:
        if any(p.type.shape[a] != 1 for a in axes):
            # a dim along axes must be known to have length 1 (checked when run)
            from ..shape import specify_broadcastable
            return specify_broadcastable(p, *axes)
        return p
    if p.type.ndim != ndim - len(axes):
        raise TypeError(f"batch_normalization: {what} must have {ndim} or "
                        f"{ndim - len(axes)} dims, got {p.type}")
    return insert_axes(p, axes, ndim)


def batch_normalization_train(inputs, gamma, beta, axes="per-activation", epsilon=1e-4,
                              running_average_factor=0.1, running_mean=None,
                              running_var=None):
    """``(out, mean, invstd)``, and the new running mean and variance when
    both are given. ``out = (x - mean) * invstd * gamma + beta`` with the batch
    statistics over ``axes``; ``invstd = 1 / sqrt(var + epsilon)``; the running
    variance is updated with the unbiased variance (``m / (m - 1)``, ``m`` the
    number of values per statistic), as in Theano. ``mean`` and ``invstd``
    keep the reduced dims (length 1)."""
    x = as_tensor_variable(inputs)
    ndim = x.type.ndim
    axes = _axes(axes, ndim)
    if (running_mean is None) != (running_var is None):
        raise ValueError("batch_normalization_train: give both running_mean and "
                         "running_var, or neither")
    gamma, beta = _param(gamma, ndim, axes, "gamma"), _param(beta, ndim, axes, "beta")
    m = mean(x, axis=axes, keepdims=True)
    centered = x - m
    var = mean(centered * centered, axis=axes, keepdims=True)
    invstd = 1.0 / sqrt(var + epsilon)
    out = centered * (invstd * gamma) + beta
    if running_mean is None:
        return out, m, invstd
    rm = _param(running_mean, ndim, axes, "running_mean")
    rv = _param(running_var, ndim, axes, "running_var")
    count = 1
    for a in axes:
        count = count * x.shape[a]
    count = count.astype(x.type.dtype) if hasattr(count, "type") else count
    unbiased = var * (count / (count - 1))
    f = running_average_factor
    new_mean = rm * (1.0 - f) + m * f
    new_var = rv * (1.0 - f) + unbiased * f
    return out, m, invstd, _like(new_mean, running_mean, axes), _like(new_var, running_var, axes)


def _like(v, ref, axes):
    """``v`` in the layout the caller gave (the running stats keep their rank)."""
    ref = as_tensor_variable(ref)
    if ref.type.ndim != v.type.ndim:
        v = dimshuffle(v, [d for d in range(v.type.ndim) if d not in axes])
    return v if v.type.dtype == ref.type.dtype else v.astype(ref.type.dtype)


def batch_normalization_test(inputs, gamma, beta, mean, var, axes="per-activation",
                             epsilon=1e-4):
    """``(x - mean) * gamma / sqrt(var + epsilon) + beta`` with given statistics."""
    x = as_tensor_variable(inputs)
    ndim = x.type.ndim
    axes = _axes(axes, ndim)
    gamma, beta = _param(gamma, ndim, axes, "gamma"), _param(beta, ndim, axes, "beta")
    mean, var = _param(mean, ndim, axes, "mean"), _param(var, ndim, axes, "var")
    return (x - mean) * (gamma / sqrt(var + epsilon)) + beta


def batch_normalization(inputs, gamma, beta, mean, std, mode="low_mem"):
    """Theano's elementwise ``(inputs - mean) * (gamma / std) + beta``."""
    return (as_tensor_variable(inputs) - mean) * (gamma / std) + beta

