"""Impl builders shared by the benchmark groups: one per library, for functions of arrays.

``fn(m, *arrays)`` is written once against a module-like ``m`` that has ``exp``, ``tanh`` and
``mean`` (numpy, ``jax.numpy``, ``torch`` or ``vmc.tensor``/``pytensor.tensor``), and each
builder turns it into an :class:`Impl` whose build imports its library (lazily, in the child
process) and returns a :class:`Runner`.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from bench import peers
from bench.harness import Impl, Runner


def numpy_impl(fn: Callable, arrays: list, name: str = "numpy",
               call: Callable | None = None) -> Impl:
    """numpy itself; ``call(*arrays)`` replaces ``fn(np, *arrays)`` where given (e.g.
    ``operator.add`` for ``x + 1``, so no Python frame is timed)."""
    def build():
        if call is not None:
            return Runner(call, tuple(arrays))
        return Runner(lambda *a: fn(np, *a), tuple(arrays))
    return Impl(name, build)


def numexpr_impl(src: str, names: list, arrays: list, consts: dict | None = None) -> Impl:
    """``numexpr.evaluate(src)``; ``consts`` are extra names, e.g. a float32 ``0.5`` (a literal
    constant would make numexpr compute float32 inputs in float64)."""
    def build():
        ne = peers.numexpr()
        local = dict(zip(names, arrays), **(consts or {}))
        ne.evaluate(src, local_dict=local)                # compile once, outside the timing
        return Runner(lambda: ne.evaluate(src, local_dict=local))
    return Impl("numexpr", build)


def jax_impl(fn: Callable, arrays: list, name: str = "jax jit") -> Impl:
    """``jax.jit(fn)`` on device arrays; every call blocks until the result is ready."""
    def build():
        jax, jnp = peers.jax()
        f = jax.jit(lambda *a: fn(jnp, *a))
        dev = [jax.device_put(a) for a in arrays]
        return Runner(lambda *a: f(*a).block_until_ready(), tuple(dev))
    return Impl(name, build)


def torch_impl(fn: Callable, arrays: list, compiled: bool = False,
               call: Callable | None = None) -> Impl:
    """PyTorch eager (``call`` may replace ``fn`` for eager) or ``torch.compile``d, on
    tensors that share the numpy arrays' memory (no autograd: no input requires grad)."""
    def build():
        torch = peers.torch()
        ts = tuple(torch.from_numpy(a) for a in arrays)
        if compiled:
            return Runner(peers.torch_compile(lambda *a: fn(torch, *a)), ts)
        return Runner(call if call is not None else (lambda *a: fn(torch, *a)), ts)
    return Impl("torch.compile" if compiled else "torch eager", build)


# ---------------------------------------------------------------------------------------------
# vmc and PyTensor

THEANO_KINDS = ("pytensor cvm", "pytensor default", "vmc")


def theano_lib(kind: str):
    """The :class:`peers.TheanoLike` adapter for ``kind`` (one of ``THEANO_KINDS``)."""
    if kind == "vmc":
        return peers.vmc_fn()
    if kind == "pytensor cvm":
        return peers.pytensor_fn("cvm")
    if kind == "pytensor default":
        return peers.pytensor_fn(None)
    raise ValueError(kind)


def sym_like(T, a: np.ndarray, name: str):
    """A symbolic input of the array's dtype and rank (vector/matrix/scalar constructors)."""
    prefix = {"float64": "d", "float32": "f", "int64": "l", "int32": "i"}[a.dtype.name]
    kind = {0: "scalar", 1: "vector", 2: "matrix", 3: "tensor3"}[a.ndim]
    return getattr(T, prefix + kind)(name)


def theano_impl(kind: str, fn: Callable, arrays: list, trust: bool = False) -> Impl:
    """``f = function(inputs, fn(T, *inputs))`` in vmc or PyTensor; timed as ``f(*arrays)``."""
    def build():
        th = theano_lib(kind)
        syms = [sym_like(th.T, a, f"x{i}") for i, a in enumerate(arrays)]
        f = th.function(syms, fn(th.T, *syms), trust_input=trust)
        return Runner(f, tuple(arrays))
    return Impl(kind + (" trust_input" if trust else ""), build)


def theano_impls(fn: Callable, arrays: list, trust_variants: bool = False) -> list:
    """PyTensor cvm, PyTensor default, vmc; each also with trust_input when asked."""
    out = []
    for kind in THEANO_KINDS:
        out.append(theano_impl(kind, fn, arrays))
        if trust_variants:
            out.append(theano_impl(kind, fn, arrays, trust=True))
    return out


def all_elementwise_impls(fn: Callable, arrays: list, names: list, numexpr_src: str | None,
                          numexpr_consts: dict | None = None,
                          trust_variants: bool = False) -> list:
    """Every peer of an elementwise function of arrays, vmc last."""
    impls = [numpy_impl(fn, arrays)]
    if numexpr_src:
        impls.append(numexpr_impl(numexpr_src, names, arrays, numexpr_consts))
    impls += [jax_impl(fn, arrays), torch_impl(fn, arrays),
              torch_impl(fn, arrays, compiled=True)]
    return impls + theano_impls(fn, arrays, trust_variants)

