"""Counter-based random draws (Philox4x32-10): the same numbers on every device.

A Philox stream's state is a uint64 vector ``[key, counter]``. Element ``j``
of a draw of ``n`` values is made from the four 32-bit words of one Philox
block, ``philox(key, counter + j)``, and the new state is ``[key, counter +
n]``: nothing depends on the order elements are computed in, so the numpy
thunk (``vmc/thunks/philox.py``) and the GPU kernel (``vmc/gpu/kernels``,
written from the constants below) give the same numbers for the same seed.

From a block's words ``w0..w3`` (this module is the one description of it):

- uniform float32: ``(w0 >> 8) * 2**-24``; float64: ``((w0 >> 5) * 2**26 +
  (w1 >> 6)) * 2**-53``; then ``low + (high - low) * u`` (bit-identical everywhere);
- normal (Box-Muller in float64, then cast): ``u1 = 1 - U53(w0, w1)``,
  ``u2 = U53(w2, w3)``, ``loc + scale * sqrt(-2 log u1) cos(2 pi u2)`` (equal to
  the last bits of each device's log and cos);
- integers: ``low + (w1 * 2**32 + w0) % (high - low)`` (bias below 2**-32 for
  ranges under 2**32);
- bernoulli (``binomial`` with ``n = 1``): ``U53(w0, w1) < p``.
"""
from __future__ import annotations

import numpy as np

from vmc.graph.basic import Apply, Op, Variable
from vmc.graph.grad import NullGradient
from vmc.graph.type import TensorType

from .basic import as_tensor_variable, constant, weak_operand
from .elemwise import cast

M0, M1 = 0xD2511F53, 0xCD9E8D57          # the multipliers
W0, W1 = 0x9E3779B9, 0xBB67AE85          # the key schedule's increments
ROUNDS = 10
DISTS = ("uniform", "normal", "integers", "bernoulli")
STATE_TYPE = TensorType("uint64", (2,))


def key_from_seed(seed_sequence) -> int:
    """A 64-bit key from a numpy SeedSequence."""
    lo, hi = seed_sequence.generate_state(2, np.uint32)
    return int(lo) | (int(hi) << 32)


def initial_state(seed_sequence) -> np.ndarray:
    return np.array([key_from_seed(seed_sequence), 0], dtype=np.uint64)


class PhiloxDraw(Op):
    """One draw: inputs ``(state, size, *params)``, outputs ``(new_state, sample)``.

    ``dist`` is one of ``DISTS``; params: uniform (low, high), normal (loc,
    scale), integers (low, high), bernoulli (p). ``size`` as in
    ``RandomVariable`` (an int64 vector; empty when ``has_size`` is False and
    the sample takes the params' broadcast shape)."""
    __props__ = ("dist", "dtype", "has_size")
    n_params = {"uniform": 2, "normal": 2, "integers": 2, "bernoulli": 1}

    def __init__(self, dist, dtype, has_size):
        if dist not in DISTS:
            raise ValueError(f"PhiloxDraw: dist must be one of {DISTS}, got {dist!r}")
        self.dist, self.dtype, self.has_size = dist, str(np.dtype(dtype)), bool(has_size)

    def make_node(self, state, size, *params):
        from .random import Uniform, _size_input
        if not isinstance(state, Variable) or state.type != STATE_TYPE:
            raise TypeError(f"{self}: the state must be a uint64 vector of 2 ([key, counter]), "
                            f"got {state!r}")
        if len(params) != self.n_params[self.dist]:
            raise TypeError(f"{self} takes {self.n_params[self.dist]} parameters")
        want = "int64" if self.dist == "integers" else "float64"
        dtypes = [p.type.dtype for p in params if isinstance(p, Variable)]
        params = [as_tensor_variable(p) if isinstance(p, Variable) else weak_operand(p, dtypes)
                  for p in params]
        params = [cast(p, want) if p.type.dtype != want else p for p in params]
        # the shape rules of numpy's draws: those of RandomVariable
        shaper = Uniform(self.dtype, self.has_size)
        if self.has_size:
            size = _size_input(size)
            shape = shaper._sample_shape(size, params)
        else:
            shape = shaper._sample_shape(None, params)
            size = constant(np.zeros(0, dtype="int64"))
        outs = [STATE_TYPE.make_variable(), TensorType(self.dtype, shape).make_variable()]
        return Apply(self, [state, size] + params, outs)

    def infer_shape(self, node, shapes):
        from .random import Uniform
        return Uniform(self.dtype, self.has_size).infer_shape(node, shapes)

    def pullback(self, inputs, outputs, grads):
        from .random import Normal, Uniform
        if self.dist == "uniform":
            return Uniform.pullback(self, inputs, outputs, grads)
        if self.dist == "normal":
            return Normal.pullback(self, inputs, outputs, grads)
        return [None, None] + [NullGradient(f"{self} is not differentiable in its parameters")
                               if p.type.dtype.startswith("float") else None
                               for p in inputs[2:]]

    def params_of(self, inputs):
        return inputs[2:]

    def __str__(self):
        return f"Philox{self.dist.capitalize()}{{{self.dtype}}}"
