"""``MRG_RandomStreams`` under Theano's path and signatures.

Theano's MRG31k3p stream drew in parallel on CPU and GPU. vmc keeps its
interface (``size`` first; ``uniform``, ``normal`` with ``truncate``,
``truncated_normal``, ``binomial``, ``multinomial``, ``choice`` without
replacement) and draws from vmc's own streams (``vt.random``): the same
distributions, other numbers. ``nstreams`` (how many parallel MRG streams)
has no meaning here and is accepted and unused.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from vmc.tensor.basic import as_tensor_variable
from vmc.tensor.elemwise import cast, eq, erfinv, switch
from vmc.tensor.math import argmax
from vmc.tensor.shape import concatenate, expand_dims
from vmc.tensor.shared_randomstreams import (RandomStreams, _binomial, _float_dtype,
                                             _multinomial, _size)
from vmc.tensor.creation import arange
from vmc.tensor.elemwise import log

__all__ = ["MRG_RandomStreams"]

M1, M2 = 2147483647, 2147462579      # the MRG31k3p moduli: Theano's limits on seeds
_TRUNC_STD = 0.87962566103423978      # std of a standard normal truncated at +-2


class MRG_RandomStreams(RandomStreams):
    """``MRG_RandomStreams(seed=12345)``: ``seed`` is an int (not 0, below
    2147462579) or six ints, as Theano required."""

    def __init__(self, seed=12345):
        _check_seed(seed)
        super().__init__(seed if isinstance(seed, numbers.Integral) else list(seed))

    def seed(self, seed=None):
        if seed is not None:
            _check_seed(seed)
        super().seed(seed)

    def uniform(self, size, low=0.0, high=1.0, ndim=None, dtype=None, nstreams=None,
                **kwargs):
        _no_kwargs("uniform", kwargs)
        return super().uniform(size, low, high, ndim, dtype)

    def normal(self, size, avg=0.0, std=1.0, ndim=None, dtype=None, nstreams=None,
               truncate=False, **kwargs):
        """A normal draw; with ``truncate``, one cut at two standard deviations
        (whose spread is then below ``std``), drawn by inverting its CDF."""
        _no_kwargs("normal", kwargs)
        if not truncate:
            return super().normal(size, avg, std, ndim, dtype)
        dtype = dtype or _float_dtype(avg, std)
        lo = math.erf(-2 / math.sqrt(2))              # 2 Phi(-2) - 1
        u = self._stream.uniform(lo, -lo, size=_size(size, ndim), dtype=dtype)
        z = math.sqrt(2) * erfinv(u)
        return cast(z * as_tensor_variable(std) + as_tensor_variable(avg), dtype)

    def truncated_normal(self, size, avg=0.0, std=1.0, ndim=None, dtype=None, nstreams=None,
                         **kwargs):
        """A normal cut at two standard deviations, scaled so that its
        standard deviation is ``std``."""
        return self.normal(size, avg, as_tensor_variable(std) / _TRUNC_STD, ndim, dtype,
                           nstreams, truncate=True, **kwargs)

    def binomial(self, size=None, n=1, p=0.5, ndim=None, dtype="int64", nstreams=None,
                 **kwargs):
        _no_kwargs("binomial", kwargs)
        return _binomial(self, size, n, p, ndim, dtype)

    def multinomial(self, size=None, n=1, pvals=None, ndim=None, dtype="int64",
                    nstreams=None, **kwargs):
        """Counts of ``n`` draws from each row of ``pvals`` (a matrix): the
        result has ``pvals``' shape. ``size`` and ``ndim`` must be None, as in
        Theano."""
        _no_kwargs("multinomial", kwargs)
        if pvals is None:
            raise TypeError("multinomial: pvals is required")
        if size is not None or ndim is not None:
            raise ValueError("MRG_RandomStreams.multinomial takes no size or ndim: the "
                             "result has the shape of pvals")
        return _multinomial(self, None, n, pvals, dtype)

    def choice(self, size=1, a=None, replace=True, p=None, ndim=None, dtype="int64",
               nstreams=None, **kwargs):
        """``size`` distinct indices per row of ``p`` (a matrix), drawn without
        replacement with probabilities ``p``: a ``(rows, size)`` result. As in
        Theano, only ``replace=False`` and ``a=None``."""
        _no_kwargs("choice", kwargs)
        if replace:
            raise NotImplementedError("MRG_RandomStreams.choice only draws without "
                                      "replacement (replace=False), as in Theano")
        if a is not None:
            raise TypeError("MRG_RandomStreams.choice: a must be None (the values are "
                            "0 .. p.shape[1] - 1)")
        if p is None:
            raise TypeError("MRG_RandomStreams.choice: p is required")
        if not isinstance(size, numbers.Integral):
            raise NotImplementedError("MRG_RandomStreams.choice: size must be an int here")
        p = as_tensor_variable(p)
        if p.ndim != 2:
            raise NotImplementedError("MRG_RandomStreams.choice needs a matrix p")
        # Gumbel top-k: the k largest of log p + Gumbel noise are a draw of k
        # without replacement, in order; take them one argmax at a time.
        u = self._stream.uniform(0.0, 1.0, size=p.shape, dtype=_float_dtype(p))
        keys = log(p) - log(-log(u))
        picks = []
        for _ in range(int(size)):
            j = argmax(keys, axis=1)
            picks.append(expand_dims(cast(j, dtype), 1))
            keys = switch(eq(expand_dims(j, 1), arange(p.shape[1])), -np.inf, keys)
        return concatenate(picks, axis=1)

    def multinomial_wo_replacement(self, size=None, n=1, pvals=None, ndim=None,
                                   dtype="int64", nstreams=None, **kwargs):
        """Theano's older name for ``choice(size=n, replace=False, p=pvals)``."""
        return self.choice(n, None, False, pvals, ndim, dtype, nstreams, **kwargs)


def _check_seed(seed):
    if isinstance(seed, numbers.Integral):
        if seed == 0 or not 0 < seed < M2:
            raise ValueError(f"MRG_RandomStreams: seed must be in 1 .. {M2 - 1}, got {seed}")
        return
    seed = list(seed)
    if len(seed) != 6:
        raise TypeError("MRG_RandomStreams: seed must be one int or six ints")
    if not any(seed[:3]) or not any(seed[3:]):
        raise ValueError("MRG_RandomStreams: neither half of the seed may be all 0")
    if max(seed[:3]) >= M1 or max(seed[3:]) >= M2:
        raise ValueError(f"MRG_RandomStreams: seed values must be below {M1} (first three) "
                         f"and {M2} (last three)")


def _no_kwargs(name, kwargs):
    if kwargs:
        raise TypeError(f"MRG_RandomStreams.{name}() got unexpected keyword arguments "
                        f"{sorted(kwargs)}")
