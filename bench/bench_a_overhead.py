"""A. Per-call overhead on float64[10]: what one call costs when the arithmetic is nothing.

Cases: ``x + 1``; a chain of 20 elementwise ops (``*x``, ``+0.1``, ``tanh``, ``-x`` five
times); the shared-variable update ``w <- w - 0.1*x`` inside the function (numpy:
``w -= 0.1*x``); a reduction, ``sum(x)``. vmc and PyTensor are timed with input checks on and with ``trust_input``.
JAX gets device arrays and blocks on every result; PyTorch gets tensors sharing numpy's memory.
"""
from __future__ import annotations

import operator

import numpy as np

from bench import models, peers
from bench.harness import Case, Impl, Runner
from bench.impls import all_elementwise_impls, theano_lib, THEANO_KINDS

TITLE = "per-call overhead, float64[10] (lower is better)"
BLURB = ("One call of a tiny function: the time is almost all overhead (argument checks, "
         "dispatch, allocation). vmc's targets (issue 3): `x + 1` and the update at most 0.6x "
         "numpy's `x + 1` with input checks, 0.4x with trust_input; the 20-op chain "
         "(issue 4) at most 0.6x numpy's `x + 1`.")
COLUMNS = ("x numpy x+1",)
N = 10
N_CHAIN = 20


def _arrays(seed: int = 0) -> tuple:
    rng = np.random.default_rng(seed)
    return rng.standard_normal(N), rng.standard_normal(N)


def cases(cfg) -> list:
    x, w0 = _arrays()
    plus_one = lambda m, x: x + 1                          # noqa: E731
    chain = lambda m, x: models.chain(x, N_CHAIN, m.tanh)  # noqa: E731
    return [
        Case("x + 1", lambda: x + 1, _plus_one_impls(plus_one, x)),
        Case(f"{N_CHAIN} chained ops", lambda: chain(np, x),
             all_elementwise_impls(chain, [x], ["x"], models.chain_numexpr(N_CHAIN),
                                   trust_variants=True)),
        Case("w <- w - 0.1*x", lambda: w0 - 0.1 * x, update_impls(w0, x)),
        Case("sum(x)", lambda: np.sum(x),
             all_elementwise_impls(lambda m, x: m.sum(x), [x], ["x"], None,
                                   trust_variants=True)),
    ]


def _plus_one_impls(fn, x) -> list:
    """``x + 1``: numpy and torch eager are timed as ``operator.add(x, 1)``, no Python frame."""
    impls = all_elementwise_impls(fn, [x], ["x"], "x + 1", trust_variants=True)
    for i, impl in enumerate(impls):
        if impl.name == "numpy":
            impls[i] = Impl("numpy", lambda: Runner(operator.add, (x, 1)))
        elif impl.name == "torch eager":
            impls[i] = Impl("torch eager", _torch_add_one(x))
    return impls


def _torch_add_one(x):
    def build():
        torch = peers.torch()
        return Runner(operator.add, (torch.from_numpy(x), 1))
    return build


# ---------------------------------------------------------------------------------------------
# The update w <- w - 0.1*x, each library its own way of keeping w between calls


def update_impls(w0: np.ndarray, x: np.ndarray) -> list:
    impls = [Impl("numpy", lambda: _numpy_update(w0.copy(), x)),
             Impl("numexpr", lambda: _numexpr_update(w0.copy(), x)),
             Impl("jax jit", lambda: _jax_update(w0, x)),
             Impl("torch eager", lambda: _torch_update(w0, x, False)),
             Impl("torch.compile", lambda: _torch_update(w0, x, True))]
    for kind in THEANO_KINDS:
        for trust in (False, True):
            name = kind + (" trust_input" if trust else "")
            impls.append(Impl(name, _theano_update(kind, w0, x, trust)))
    return impls


def _numpy_update(w, x):
    def step(w=w, x=x):
        w -= 0.1 * x
    return Runner(step, result=lambda _: w)


def _numexpr_update(w, x):
    ne = peers.numexpr()
    local = {"w": w, "x": x}
    return Runner(lambda: ne.evaluate("w - 0.1*x", local_dict=local, out=w),
                  result=lambda _: w)


def _jax_update(w0, x):
    import warnings
    jax, jnp = peers.jax()
    warnings.filterwarnings("ignore", message=".*donated buffers.*")
    step = jax.jit(lambda w, x: w - 0.1 * x, donate_argnums=0)
    state = [jax.device_put(w0.copy())]
    xd = jax.device_put(x)

    def call():
        state[0] = step(state[0], xd)
        state[0].block_until_ready()
    return Runner(call, result=lambda _: np.asarray(state[0]))


def _torch_update(w0, x, compiled):
    torch = peers.torch()
    w, xt = torch.from_numpy(w0.copy()), torch.from_numpy(x)

    def step(w, x):
        w -= 0.1 * x
    f = peers.torch_compile(step) if compiled else step
    return Runner(f, (w, xt), result=lambda _: w.numpy())


def _theano_update(kind, w0, x, trust):
    def build():
        th = theano_lib(kind)
        w = th.shared(w0.copy(), name="w")
        xs = th.T.dvector("x")
        f = th.function([xs], [], updates=[(w, w - 0.1 * xs)], trust_input=trust)
        return Runner(f, (x,), result=lambda _: w.get_value())
    return build


def derive(rows) -> None:
    """``x numpy x+1``: each row's time over numpy's ``x + 1`` (the issues' yardstick)."""
    ref = next((r for r in rows if r.case == "x + 1" and r.impl == "numpy" and r.ok), None)
    for r in rows:
        if r.ok and ref:
            r.cols["x numpy x+1"] = f"{r.median / ref.median:.2f}"
