"""Random streams: ``vt.random.RandomStream(seed)``.

Each draw is an op with inputs ``(rng, [size,] *params)`` and outputs
``(new_rng, sample)``. The generator state is a shared variable of
``RandomGeneratorType`` (a ``numpy.random.Generator``); the stream sets its
``default_update`` to ``new_rng``, so ``vmc.function`` commits the advanced
state after each successful call: successive calls give fresh values, and a
stream built with the same seed gives the same sequence. The thunks never
mutate the generator they are given, so a failed call leaves it unchanged.

Every draw gets its own generator, spawned from the stream's seed sequence,
so two draws never share state and merging cannot fold them into one.
"""
from __future__ import annotations

import copy

import numpy as np

from vmc.config import config
from vmc.graph.basic import Apply, Constant, Op, SharedVariable, Variable
from vmc.graph.grad import NullGradient
from vmc.graph.type import TensorType, Type

from .basic import as_tensor_variable, constant, weak_operand
from .elemwise import _broadcast_shape, _unbroadcast, cast

__all__ = ["RandomStream", "RandomGeneratorType", "RandomVariable",
           "Uniform", "Normal", "Integers", "Binomial", "Choice", "Permutation",
           "random_generator_type"]


class RandomGeneratorType(Type):
    """The type of a ``numpy.random.Generator`` value. All instances are equal."""
    __slots__ = ()

    def filter(self, value, name="input", allow_downcast=False):
        if isinstance(value, np.random.Generator):
            return value
        raise TypeError(f"{name}: expected a numpy.random.Generator, got "
                        f"{type(value).__name__}")

    def values_eq(self, a, b):
        return a.bit_generator.state == b.bit_generator.state

    def __eq__(self, other):
        return type(other) is RandomGeneratorType

    def __hash__(self):
        return hash(RandomGeneratorType)

    def __reduce__(self):
        return (RandomGeneratorType, ())

    def __repr__(self):
        return "RandomGeneratorType()"

    def __str__(self):
        return "RandomGenerator"


class RandomGeneratorVariable(Variable):
    __slots__ = ()

    def zeros_like(self, dtype=None):
        # A generator has no gradient. grad asks every output of a node for a
        # zero gradient when another output has one; None tells the draw ops'
        # pullbacks "nothing flows here".
        return None


class RandomGeneratorSharedVariable(SharedVariable):
    """A shared generator. ``get_value``/``set_value`` copy unless ``borrow``."""
    __slots__ = ()

    def get_value(self, borrow=False):
        v = self.container[0]
        return v if borrow else copy.deepcopy(v)

    def set_value(self, value, borrow=False):
        v = self.type.filter(value, name=f"value of shared {self.name or 'generator'}")
        self.container[0] = v if borrow else copy.deepcopy(v)

    zeros_like = RandomGeneratorVariable.zeros_like


RandomGeneratorType.variable_class = RandomGeneratorVariable
random_generator_type = RandomGeneratorType()


def shared_rng(value, name=None, borrow=False):
    return RandomGeneratorSharedVariable(random_generator_type, value, name=name, borrow=borrow)


# -- the draw ops ------------------------------------------------------------------
class RandomVariable(Op):
    """One draw: inputs ``(rng, size, *params)``, outputs ``(new_rng, sample)``.

    ``size`` is an int64 vector of known length; when ``has_size`` is False
    (numpy's ``size=None``) it is an empty constant and the sample takes the
    broadcast shape of the params. Subclasses name the distribution and its
    parameters; the numpy call lives in ``vmc.thunks``."""
    __props__ = ("dtype", "has_size")
    param_names: tuple = ()
    float_params = True       # whether the params are floats (else ints)

    def __init__(self, dtype, has_size):
        self.dtype = str(np.dtype(dtype))
        self.has_size = bool(has_size)

    def _prepare_params(self, params):
        dtypes = [p.type.dtype for p in params if isinstance(p, Variable)]
        out = [weak_operand(p, dtypes) if not isinstance(p, Variable) else
               as_tensor_variable(p) for p in params]
        if self.float_params:
            return [cast(p, "float64") if not p.type.dtype.startswith("float") else p
                    for p in out]
        for p in out:
            if p.type.dtype.startswith(("float", "complex")):
                raise TypeError(f"{self}: parameters must be integers, got {p.type}")
        return out

    def make_node(self, rng, *args):
        if not isinstance(rng, Variable) or not isinstance(rng.type, RandomGeneratorType):
            raise TypeError(f"{self}: the first input must be a random generator variable, "
                            f"got {rng!r}")
        if not args:
            raise TypeError(f"{self} takes a size and parameters {self.param_names}")
        size, params = args[0], args[1:]
        if len(params) != len(self.param_names):
            raise TypeError(f"{self} takes parameters {self.param_names}, got {len(params)}")
        params = self._prepare_params(params)
        if self.has_size:
            size = _size_input(size)
            shape = self._sample_shape(size, params)
        else:
            if size is not None:
                raise TypeError(f"{self} has no size (has_size=False); pass None")
            shape = self._sample_shape(None, params)
            size = constant(np.zeros(0, dtype="int64"))     # numpy's size=None
        ins = [rng, size] + params
        outs = [random_generator_type.make_variable(),
                TensorType(self.dtype, shape).make_variable()]
        return Apply(self, ins, outs)

    def _sample_shape(self, size, params):
        types = [p.type for p in params]
        if size is None:
            nd = max((t.ndim for t in types), default=0)
            padded = [t.clone(shape=(1,) * (nd - t.ndim) + t.shape) for t in types]
            return _broadcast_shape(padded, str(self)) if padded else ()
        if size.type.ndim != 1 or size.type.dtype != "int64" or size.type.shape[0] is None:
            raise TypeError(f"{self}: size must be an int64 vector of known length, "
                            f"got {size.type}")
        static = (tuple(int(s) for s in size.data) if isinstance(size, Constant)
                  else (None,) * size.type.shape[0])
        target = TensorType(self.dtype, static)
        for t in types:
            if t.ndim > target.ndim:
                raise TypeError(f"{self}: parameter {t} has more dims than size {static}")
            padded = t.clone(shape=(1,) * (target.ndim - t.ndim) + t.shape)
            for d, (a, b) in enumerate(zip(padded.shape, static)):
                if a is not None and a != 1 and b is not None and a != b:
                    raise TypeError(f"{self}: parameter {t} does not broadcast to size "
                                    f"{static} (dim {d})")
        return static

    def infer_shape(self, node, shapes):
        if self.has_size:
            from .subtensor import getitem
            size = node.inputs[1]
            n = node.outputs[1].type.ndim
            return [None, tuple(getitem(size, i) for i in range(n))]
        nd = node.outputs[1].type.ndim
        params = node.inputs[2:]
        out = []
        for d in range(nd):
            cands = []
            for p, s in zip(params, shapes[2:]):
                k = d - (nd - p.type.ndim)
                if k >= 0 and p.type.shape[k] != 1:
                    cands.append(s[k])
            out.append(cands[0] if cands else 1)
        return [None, tuple(out)]

    def params_of(self, inputs):
        return inputs[2:]

    def broadcast_params(self, inputs):
        """The parameters that broadcast elementwise against ``size``."""
        return self.params_of(inputs)

    def pullback(self, inputs, outputs, grads):
        return [None, None] + [
            NullGradient(f"{type(self).__name__} draws are not differentiable in "
                         f"their parameters") if p.type.dtype.startswith("float") else None
            for p in self.params_of(inputs)]

    def __str__(self):
        return f"{type(self).__name__}{{{self.dtype}}}"


class Uniform(RandomVariable):
    """``rng.uniform(low, high, size)``. Differentiable in ``low`` and ``high``
    (the sample is ``low + (high - low) u``)."""
    param_names = ("low", "high")

    def pullback(self, inputs, outputs, grads):
        low, high = self.params_of(inputs)
        sample, g = outputs[1], grads[1]
        u = (sample - low) / (high - low)
        return [None, None, _unbroadcast_to(g * (1 - u), low), _unbroadcast_to(g * u, high)]


class Normal(RandomVariable):
    """``rng.normal(loc, scale, size)``. Differentiable in ``loc`` and ``scale``
    (the sample is ``loc + scale z``)."""
    param_names = ("loc", "scale")

    def pullback(self, inputs, outputs, grads):
        loc, scale = self.params_of(inputs)
        sample, g = outputs[1], grads[1]
        z = (sample - loc) / scale
        return [None, None, _unbroadcast_to(g, loc), _unbroadcast_to(g * z, scale)]


def _unbroadcast_to(g, p):
    """Sum ``g`` (the sample's shape) down to the shape of the parameter ``p``."""
    if g.type.ndim > p.type.ndim:
        from .math import sum as vsum
        g = vsum(g, axis=tuple(range(g.type.ndim - p.type.ndim)))
    return _unbroadcast(g, p)


class Integers(RandomVariable):
    """``rng.integers(low, high, size)``: ``low <= x < high``."""
    param_names = ("low", "high")
    float_params = False


class Binomial(RandomVariable):
    """``rng.binomial(n, p, size)``."""
    param_names = ("n", "p")

    def _prepare_params(self, params):
        n, p = params
        n = as_tensor_variable(n) if isinstance(n, Variable) else weak_operand(n, [])
        if not n.type.dtype.startswith(("int", "uint")):
            raise TypeError(f"binomial: n must be integers, got {n.type}")
        p = as_tensor_variable(p) if isinstance(p, Variable) else weak_operand(p, ["float64"])
        return [n, cast(p, "float64")]


class Choice(RandomVariable):
    """``rng.choice(a, size, replace, p)``: ``a`` an int (``arange(a)``) or a
    vector; ``p`` the probabilities (a vector) or absent."""
    __props__ = ("dtype", "has_size", "replace", "has_p")
    param_names = ("a", "p")

    def __init__(self, dtype, has_size, replace=True, has_p=False):
        super().__init__(dtype, has_size)
        self.replace, self.has_p = bool(replace), bool(has_p)
        if not self.has_p:
            self.param_names = ("a",)

    def _prepare_params(self, params):
        a = as_tensor_variable(params[0])
        if a.type.ndim > 1:
            raise TypeError(f"choice: a must be an int or a vector, got {a.type}")
        if a.type.ndim == 0 and not a.type.dtype.startswith(("int", "uint")):
            raise TypeError(f"choice: a scalar a must be an int, got {a.type}")
        if not self.has_p:
            return [a]
        p = cast(as_tensor_variable(params[1]), "float64")
        if p.type.ndim != 1:
            raise TypeError(f"choice: p must be a vector, got {p.type}")
        return [a, p]

    def _sample_shape(self, size, params):
        if size is None:
            return ()
        return super()._sample_shape(size, [])

    def broadcast_params(self, inputs):
        return []      # a and p are what is drawn from, not broadcast against size

    def infer_shape(self, node, shapes):
        if not self.has_size:
            return [None, ()]
        return super().infer_shape(node, shapes)


class Permutation(RandomVariable):
    """``rng.permutation(x)``: a shuffled ``arange(x)`` for an int ``x``, else a
    copy of ``x`` shuffled along its first dim."""
    param_names = ("x",)

    def __init__(self, dtype):
        super().__init__(dtype, False)

    def _prepare_params(self, params):
        return [as_tensor_variable(params[0])]

    def _sample_shape(self, size, params):
        (x,) = params
        if x.type.ndim == 0:
            if not x.type.dtype.startswith(("int", "uint")):
                raise TypeError(f"permutation: a scalar must be an int, got {x.type}")
            from .shape import _static_int
            return (_static_int(x),)
        return x.type.shape

    def infer_shape(self, node, shapes):
        x = node.inputs[2]
        if x.type.ndim == 0:
            return [None, (cast(x, "int64"),)]
        return [None, shapes[2]]

    def pullback(self, inputs, outputs, grads):
        return [None, None, NullGradient("permutation is not differentiable")
                if inputs[2].type.dtype.startswith("float") else None]


# -- the stream ----------------------------------------------------------------------
def _size_input(size):
    from .shape import as_shape_vector
    vec, _ = as_shape_vector(size)
    return vec




class RandomStream:
    """A source of symbolic random draws: ``srng = vt.random.RandomStream(42)``,
    ``u = srng.uniform(0, 1, size=(3,))``. ``srng.state_updates`` lists the
    (shared generator, advanced generator) pairs; ``srng.seed(s)`` reseeds
    every generator of the stream.

    ``algorithm``: "numpy" (a numpy Generator per draw: every distribution) or
    "philox" (counter-based, ``vmc.tensor.philox``: uniform, normal, integers
    and binomial with n=1, drawn on the device when the function runs on a
    GPU, the same numbers on the CPU and every device). The default is
    "philox" when ``config.device`` is a GPU as the stream is made, else "numpy".
    """

    def __init__(self, seed=None, algorithm=None):
        self._seed = seed
        self.state_updates = []
        self._seq = np.random.SeedSequence(seed)
        if algorithm is None:
            algorithm = "numpy" if config.device == "cpu" else "philox"
        if algorithm not in ("numpy", "philox"):
            raise ValueError(f"RandomStream: algorithm must be 'numpy' or 'philox', got "
                             f"{algorithm!r}")
        self.algorithm = algorithm

    def seed(self, seed=None):
        """Reseed: the k-th draw's generator restarts from the k-th child of ``seed``."""
        from .philox import initial_state
        self._seed = seed
        self._seq = np.random.SeedSequence(seed)
        for rng, _ in self.state_updates:
            child = self._seq.spawn(1)[0]
            if self.algorithm == "philox":
                rng.set_value(initial_state(child))
            else:
                rng.set_value(np.random.default_rng(child), borrow=True)

    def _draw(self, op, size, *params):
        if self.algorithm == "philox":
            return self._philox(op, size, params)
        rng = shared_rng(np.random.default_rng(self._seq.spawn(1)[0]), borrow=True,
                         name=f"rng{len(self.state_updates)}")
        new_rng, sample = op(rng, size, *params)
        rng.default_update = new_rng
        self.state_updates.append((rng, new_rng))
        return sample

    _PHILOX = {Uniform: "uniform", Normal: "normal", Integers: "integers",
               Binomial: "bernoulli"}

    def _philox(self, op, size, params):
        """The draw of ``op`` on a Philox state (a host uint64 shared vector)."""
        from .basic import TensorSharedVariable
        from .philox import STATE_TYPE, PhiloxDraw, initial_state
        dist = self._PHILOX.get(type(op))
        if dist is None:
            raise NotImplementedError(f"{type(op).__name__} draws need a numpy stream: "
                                      f"RandomStream(seed, algorithm='numpy')")
        if dist == "bernoulli":
            n, p = params
            if not (isinstance(n, (int, np.integer)) and int(n) == 1):
                raise NotImplementedError("a Philox stream draws binomial with n=1 only "
                                          "(Bernoulli); use algorithm='numpy'")
            params = (p,)
        state = TensorSharedVariable(STATE_TYPE, initial_state(self._seq.spawn(1)[0]),
                                     name=f"philox{len(self.state_updates)}")
        new_state, sample = PhiloxDraw(dist, op.dtype, op.has_size)(state, size, *params)
        state.default_update = new_state
        self.state_updates.append((state, new_state))
        return sample

    def uniform(self, low=0.0, high=1.0, size=None, dtype=None):
        return self._draw(Uniform(dtype or config.floatX, size is not None), size, low, high)

    def normal(self, loc=0.0, scale=1.0, size=None, dtype=None):
        return self._draw(Normal(dtype or config.floatX, size is not None), size, loc, scale)

    def integers(self, low, high=None, size=None, dtype="int64"):
        if high is None:
            low, high = 0, low
        return self._draw(Integers(dtype, size is not None), size, low, high)

    def binomial(self, n=1, p=0.5, size=None, dtype="int64"):
        return self._draw(Binomial(dtype, size is not None), size, n, p)

    def choice(self, a, size=None, replace=True, p=None, dtype=None):
        av = as_tensor_variable(a)
        dtype = dtype or ("int64" if av.type.ndim == 0 else av.type.dtype)
        op = Choice(dtype, size is not None, replace, p is not None)
        params = (av,) if p is None else (av, p)
        return self._draw(op, size, *params)

    def permutation(self, x, dtype=None):
        xv = as_tensor_variable(x)
        dtype = dtype or ("int64" if xv.type.ndim == 0 else xv.type.dtype)
        return self._draw(Permutation(dtype), None, xv)

