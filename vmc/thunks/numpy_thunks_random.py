"""numpy thunks for the random draw ops: ``(rng, [size,] *params) -> (new_rng, sample)``.

A thunk never advances the generator it is given (a call that fails later
must leave the shared state as it was): it copies the state into a generator
of its own and draws from that. Each thunk keeps two generators and writes
into the one that is not its input, so a warm call allocates no generator.
"""
from __future__ import annotations

import copy

import numpy as np

from vmc.tensor.random import (Binomial, Choice, Integers, Normal, Permutation,
                               RandomVariable, Uniform)

from .broadcast import broadcast_shape, fixed_dims
from .registry import register


def _uniform(op):
    return lambda rng, size, low, high: rng.uniform(low, high, size)


def _normal(op):
    return lambda rng, size, loc, scale: rng.normal(loc, scale, size)


def _integers(op):
    dtype = op.dtype
    return lambda rng, size, low, high: rng.integers(low, high, size, dtype=dtype)


def _binomial(op):
    return lambda rng, size, n, p: rng.binomial(n, p, size)


def _choice(op):
    replace = op.replace

    def draw(rng, size, a, p=None):
        return rng.choice(int(a) if a.ndim == 0 else a, size, replace=replace, p=p)
    return draw


def _permutation(op):
    return lambda rng, size, x: rng.permutation(int(x) if x.ndim == 0 else x)


# op class -> factory(op) -> draw(generator, size, *params)
DRAWS = {Uniform: _uniform, Normal: _normal, Integers: _integers, Binomial: _binomial,
         Choice: _choice, Permutation: _permutation}


def _draw_fn(op):
    for cls in type(op).__mro__:
        if cls in DRAWS:
            return DRAWS[cls](op)
    raise NotImplementedError(f"no draw function is registered for {type(op).__name__}")


class _Pool:
    """Two generators owned by one thunk; ``fresh(rng)`` returns one of them
    holding ``rng``'s state, never ``rng`` itself."""
    __slots__ = ("gens",)

    def __init__(self):
        self.gens = []

    def fresh(self, rng):
        bg = rng.bit_generator
        for g in self.gens:
            if g is not rng and type(g.bit_generator) is type(bg):
                g.bit_generator.state = bg.state
                return g
        g = copy.deepcopy(rng)
        if len(self.gens) < 2:
            self.gens.append(g)
        return g


def _check_params(node, size, params):
    """Parameters broadcast against ``size`` as elementwise inputs do, so that
    gradients sum over the right dims."""
    bcast = node.op.broadcast_params(node.inputs)
    fixed = [fixed_dims(v.type.shape) for v in bcast]
    broadcast_shape(node.op, [np.shape(p) for p in params[:len(bcast)]], fixed, tuple(size),
                    what="parameters of shapes")


@register(RandomVariable)
def random_thunk(node, destroyable):
    op = node.op
    draw = _draw_fn(op)
    dtype = np.dtype(op.dtype)
    pool = _Pool()
    has_size = op.has_size

    def thunk(rng, size, *params):
        if has_size:
            size = tuple(int(s) for s in size)
            _check_params(node, size, params)
        else:
            size = None
        new = pool.fresh(rng)
        sample = draw(new, size, *params)
        return new, np.asarray(sample, dtype=dtype)
    return thunk
