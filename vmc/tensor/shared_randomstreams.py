"""Theano's ``RandomStreams`` (``theano.tensor.shared_randomstreams``), with
Theano's method signatures: ``size`` comes first, then the distribution's
parameters under Theano's names (``normal(size, avg, std)``,
``binomial(size, n, p)``).

It is a thin layer over vmc's own numpy-style stream,
``vt.random.RandomStream`` (``uniform(low, high, size)``), which does the
drawing: each draw is a shared generator whose ``default_update`` advances
it after every call. ``MRG_RandomStreams`` (``vmc.sandbox.rng_mrg``) is the
same layer with the MRG stream's defaults; vmc draws both from numpy's
generators, so the numbers differ from Theano's, never the distributions.
"""
from __future__ import annotations

import numbers

import numpy as np

from vmc.config import config
from vmc.graph.basic import Variable

from .basic import as_tensor_variable
from .creation import arange
from .elemwise import cast, eq, ge, lt, minimum
from .extra_ops import triu
from .math import dot, sum as vsum
from .ordering import argsort
from .random import RandomStream
from .shape import expand_dims, ones, shape_padright, specify_shape

__all__ = ["RandomStreams"]


class RandomStreams:
    """Symbolic random draws with Theano's signatures: ``srng =
    RandomStreams(seed)``, ``srng.binomial(size=x.shape, n=1, p=0.5)``.

    ``state_updates`` lists the (shared generator, advanced generator)
    pairs; ``seed(s)`` reseeds every draw made so far.
    """

    def __init__(self, seed=None):
        self.default_instance_seed = seed
        self._stream = RandomStream(seed)

    @property
    def state_updates(self):
        return self._stream.state_updates

    def updates(self):
        return list(self.state_updates)

    def seed(self, seed=None):
        """Reseed every stream; ``None`` takes the seed given at construction."""
        self._stream.seed(self.default_instance_seed if seed is None else seed)

    # -- the distributions ---------------------------------------------------
    def uniform(self, size=None, low=0.0, high=1.0, ndim=None, dtype=None):
        """Uniform on ``[low, high)``; the dtype is at least floatX."""
        dtype = dtype or _float_dtype(low, high)
        return self._stream.uniform(low, high, size=_size(size, ndim), dtype=dtype)

    def normal(self, size=None, avg=0.0, std=1.0, ndim=None, dtype=None):
        """Normal with mean ``avg`` and standard deviation ``std``."""
        dtype = dtype or _float_dtype(avg, std)
        return self._stream.normal(avg, std, size=_size(size, ndim), dtype=dtype)

    def binomial(self, size=None, n=1, p=0.5, ndim=None, dtype="int64", prob=None):
        """The number of successes in ``n`` trials of probability ``p``."""
        if prob is not None:
            p = prob
        return _binomial(self, size, n, p, ndim, dtype)

    def random_integers(self, size=None, low=0, high=1, ndim=None, dtype="int64"):
        """Integers from ``low`` to ``high``, both included."""
        return self._stream.integers(low, as_tensor_variable(high) + 1,
                                     size=_size(size, ndim), dtype=dtype)

    def choice(self, size=None, a=2, replace=True, p=None, ndim=None, dtype="int64"):
        """Draws from ``a`` (a vector, or ``range(a)`` for an int)."""
        return self._stream.choice(a, size=_size(size, ndim), replace=replace, p=p,
                                   dtype=dtype)

    def permutation(self, size=None, n=1, ndim=None, dtype="int64"):
        """Permutations of ``range(n)``: one (``size`` None or ``()``), or a
        batch of shape ``size + (n,)``, each the order that sorts independent
        uniforms (so every permutation is equally likely)."""
        size = _size(size, ndim)
        if size is None or (isinstance(size, tuple) and not size):
            return self._stream.permutation(n, dtype=dtype)
        batch = tuple(size) if isinstance(size, Variable) else size
        u = self._stream.uniform(0.0, 1.0, size=batch + (n,), dtype="float64")
        return cast(argsort(u, axis=-1), dtype)

    def multinomial(self, size=None, n=1, pvals=(0.5, 0.5), ndim=None, dtype="int64"):
        """Counts of ``n`` draws among ``len(pvals)`` outcomes; the result has
        shape ``size + (len(pvals),)`` (``pvals.shape`` when size is None)."""
        return _multinomial(self, size, n, pvals, dtype)


# -- helpers ---------------------------------------------------------------------------
def _float_dtype(*params):
    """Theano's default dtype of a float draw: at least floatX, and at least
    the params' dtypes (a Python number counts as floatX)."""
    dtypes = [p.dtype for p in params if isinstance(p, Variable)]
    return np.result_type(config.floatX, *dtypes).name


def _size(size, ndim=None):
    """Theano's ``size`` (None, an int, a tuple of ints and scalars, or a
    vector such as ``x.shape``) as vt.random takes it. ``ndim`` gives the
    length of a size vector whose length is not known statically."""
    if size is None:
        return None
    if isinstance(size, Variable):
        if size.type.ndim == 1 and size.type.shape[0] is None:
            if ndim is None:
                raise ValueError("size: a vector of unknown length; pass ndim")
            size = specify_shape(size, (ndim,))
        return size
    if isinstance(size, numbers.Integral):
        return (int(size),)
    return tuple(size)


def _binomial(streams, size, n, p, ndim, dtype):
    if isinstance(n, numbers.Integral) and n == 1 and size is not None:
        # One trial: a uniform under p (as Theano's MRG stream draws it).
        # It fuses with what reads it, where a binomial draw cannot.
        p = as_tensor_variable(p)
        u = streams._stream.uniform(0.0, 1.0, size=_size(size, ndim),
                                    dtype=_float_dtype(p))
        return cast(lt(u, p), dtype)
    return streams._stream.binomial(n, p, size=_size(size, ndim), dtype=dtype)


def _multinomial(streams, size, n, pvals, dtype):
    """``n`` categorical draws per distribution, each by inverting the CDF at
    a uniform; the counts are the sums of their one-hot codes."""
    if not isinstance(n, numbers.Integral) or n < 1:
        raise NotImplementedError(f"multinomial: n must be a positive int, got {n!r}")
    pvals = as_tensor_variable(pvals)
    if pvals.dtype[0] != "f":
        pvals = cast(pvals, config.floatX)
    k = pvals.shape[-1]
    # The CDF along the last axis: a product with an upper-triangular matrix of ones.
    cdf = dot(pvals, triu(ones((k, k), dtype=pvals.dtype)))          # P + (k,)
    if size is None:
        batch = tuple(pvals.shape[d] for d in range(pvals.ndim - 1))
    else:
        batch = _size(size)
        batch = tuple(batch) if isinstance(batch, Variable) else batch
    if pvals.ndim - 1 > len(batch):
        raise ValueError(f"multinomial: pvals {pvals.type} has more dims than size {size}")
    u = streams._stream.uniform(0.0, 1.0, size=batch + (n,), dtype=pvals.dtype)  # B + (n,)
    # outcome of a draw = how many CDF entries lie at or below it (the last
    # outcome also takes a u above a CDF that rounding left under 1)
    cdf = expand_dims(cdf, -2)                                          # P + (1, k)
    idx = vsum(cast(ge(shape_padright(u, 1), cdf), "int64"), axis=-1)  # B + (n,)
    idx = minimum(idx, k - 1)
    onehot = eq(shape_padright(idx, 1), arange(k))                      # B + (n, k)
    return vsum(onehot, axis=-2, dtype=dtype)
