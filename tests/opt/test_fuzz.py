"""Differential fuzzing: random expression graphs give the same numbers with and
without rewrites, and on the reference (Python) VM.

Graphs mix elementwise ops over broadcasting operands, reductions (with and
without keepdims), dot, indexing, several outputs and sometimes a gradient.
Every op is applied where it cannot overflow (``exp(tanh(e))``,
``log(e*e + 1)``, ...), so the stabilized and naive graphs must agree.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vmc
import vmc.tensor as vt

from opt_helpers import compile_fn

# A rewrite loop must fail the test, not just slow it down.
pytestmark = pytest.mark.filterwarnings("error:vmc.opt:UserWarning")

UNARY = [
    vt.neg, vt.tanh, vt.sin, vt.sigmoid, vt.abs,
    lambda e: vt.exp(vt.tanh(e)),
    lambda e: vt.log(e * e + 1),
    lambda e: vt.log(1 + vt.exp(vt.tanh(e))),
    lambda e: vt.log1p(vt.abs(e)),
    lambda e: vt.sqrt(vt.abs(e) + 1),
    lambda e: e ** 2, lambda e: e ** 3, lambda e: vt.abs(e) ** 0.5,
    lambda e: e * 1 + 0, lambda e: -(-e), lambda e: (e + 2) - 2, lambda e: e * 2 / 2,
    lambda e: 1 / (1 + e * e), lambda e: e - e + 1, lambda e: vt.exp(vt.log(e * e + 1)),
    lambda e: vt.log(vt.sigmoid(e)), lambda e: vt.exp(vt.tanh(e)) - 1,
]
BINARY = [
    vt.add, vt.sub, vt.mul, vt.maximum, vt.minimum,
    lambda a, b: a / (1 + vt.abs(b)),
    lambda a, b: a * 0.5 + b * 2.0,
    lambda a, b: vt.switch(vt.gt(a, b), a, b * 2),
]

# Every length is 4, so any reduction, transpose or broadcast of a random graph
# is well-formed.
SHAPES = {"m": (4, 4), "r": (1, 4), "c": (4, 1), "v": (4,), "s": ()}


def _kind(e):
    t = e.type
    if t.ndim == 0:
        return "s"
    if t.ndim == 1:
        return "one" if t.broadcastable[0] else "v"
    return {(True, False): "r", (False, True): "c", (False, False): "m"}.get(
        t.broadcastable, "one")


class Builder:
    """Draws a random graph over the inputs, depth-first."""

    def __init__(self, data, inputs):
        self.data = data
        self.inputs = inputs
        self.pool = [v for k, v in inputs.items() if k != "w"]    # w: for dot only

    def draw(self, st_):
        return self.data.draw(st_)

    def expr(self, depth, leaf_ok=True):
        if depth == 0 or (leaf_ok and self.draw(st.integers(0, 7)) == 0):
            return self.draw(st.sampled_from(self.pool))
        kind = self.draw(st.sampled_from(["unary", "unary", "binary", "binary", "reduce",
                                          "dot", "index", "nnet"]))
        a = self.expr(depth - 1)
        if kind == "unary":
            out = self.draw(st.sampled_from(UNARY))(a)
        elif kind == "binary":
            out = self.draw(st.sampled_from(BINARY))(a, self.expr(depth - 1))
        elif kind == "reduce":
            out = self._reduce(a)
        elif kind == "dot":
            out = self._dot(a)
        elif kind == "index":
            out = self._index(a)
        else:
            out = self._nnet(a)
        self.pool.append(out)
        return out

    def _reduce(self, a):
        fn = self.draw(st.sampled_from([vt.sum, vt.max, vt.min, vt.mean]))
        if a.type.ndim == 0:
            return fn(a)
        axis = self.draw(st.sampled_from([None] + list(range(a.type.ndim))))
        keep = self.draw(st.booleans())
        return fn(a, axis=axis, keepdims=keep)

    def _dot(self, a):
        w = self.inputs["w"]
        k = _kind(a)
        if k in ("m", "r"):
            return vt.dot(a, w)
        if k == "v":
            return self.draw(st.sampled_from([lambda: vt.dot(w, a), lambda: vt.dot(a, a),
                                              lambda: vt.outer(a, a) + w]))()
        return a * 2

    def _nnet(self, a):
        a = vt.tanh(a) * 3                 # logits that no naive formula overflows on
        if _kind(a) != "m":
            return vt.logsumexp(a) if self.draw(st.booleans()) else vt.log(vt.sum(vt.exp(a)))
        e = vt.exp(a)
        rows, y = vt.arange(4), np.array([0, 3, 1, 2])
        return self.draw(st.sampled_from([
            lambda: vt.softmax(a), lambda: vt.log(vt.softmax(a)), lambda: vt.log_softmax(a),
            lambda: vt.categorical_crossentropy(vt.softmax(a), y),
            lambda: -vt.log(vt.softmax(a)[rows, y]),
            lambda: e / vt.sum(e, axis=1, keepdims=True),
            lambda: vt.log(vt.sum(vt.exp(a), axis=0)),
            lambda: vt.binary_crossentropy(vt.sigmoid(a), vt.sigmoid(a.T))]))()

    def _index(self, a):
        k = _kind(a)
        if k == "m":
            return self.draw(st.sampled_from([
                lambda e: e[::-1], lambda e: e[:, ::-1], lambda e: e[[2, 0, 3, 1]],
                lambda e: e.T.T, lambda e: e[:, None].dimshuffle(0, 2)]))(a)
        if k == "v":
            return self.draw(st.sampled_from([
                lambda e: e[::-1], lambda e: e[[3, 1, 2, 0]], lambda e: e[None, :][0]]))(a)
        return a


def _inputs():
    return {"m": vt.matrix("m"), "r": vt.row("r"), "c": vt.col("c"), "v": vt.vector("v"),
            "s": vt.scalar("s"), "w": vt.matrix("w")}


def _values(seed, inputs):
    rng = np.random.default_rng(seed)
    shapes = dict(SHAPES, w=(4, 4))
    return [rng.uniform(-3, 3, shapes[k]) for k in inputs]


@settings(max_examples=50, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_random_graphs_agree_across_modes_and_vms(data):
    inputs = _inputs()
    b = Builder(data, inputs)
    outs = [b.expr(5, leaf_ok=False) for _ in range(data.draw(st.integers(1, 2)))]
    if data.draw(st.integers(0, 3)) == 0:
        cost = vt.sum(outs[0]) if outs[0].type.ndim else outs[0]
        outs.append(vmc.grad(cost, inputs["m"], disconnected_inputs="ignore"))
    args = _values(data.draw(st.integers(0, 2 ** 16)), inputs)
    reference = compile_fn(list(inputs.values()), outs, mode="None")(*args)
    for mode in ("fast_run", "fast_compile"):
        for linker in ("cvm", "py"):
            with vmc.config.change(linker=linker):
                got = compile_fn(list(inputs.values()), outs, mode=mode)(*args)
            for g, r in zip(got, reference):
                assert np.shape(g) == np.shape(r)
                np.testing.assert_allclose(g, r, rtol=1e-9, atol=1e-11,
                                           err_msg=f"mode={mode} linker={linker}")


@settings(max_examples=20, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_random_float32_graphs(data):
    inputs = {k: vt.tensor("float32", v.type.shape, k) for k, v in _inputs().items()}
    b = Builder(data, inputs)
    out = b.expr(4, leaf_ok=False)
    args = [a.astype("float32") for a in _values(data.draw(st.integers(0, 2 ** 16)), inputs)]
    ref = compile_fn(list(inputs.values()), out, mode="None")(*args)
    got = compile_fn(list(inputs.values()), out)(*args)
    assert got.dtype == ref.dtype
    np.testing.assert_allclose(got, ref, rtol=2e-5, atol=1e-5)
