"""stabilize: the rewritten graphs, and their numbers where the naive ones overflow."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.special as sps

import vmc
import vmc.tensor as vt
from vmc.tensor.nnet import CrossentropySoftmaxArgmax, CrossentropySoftmaxDx, crossentropy_softmax
from vmc.tensor.nnet import LogSoftmax, Softmax

from opt_helpers import absent, NOFUSE, all_scalar_ops, compile_fn, nodes, op_names

LOGITS = np.array([[1000.0, 0.0, -1000.0], [1.0, 2.0, 3.0], [-5.0, 2000.0, 7.0]])
TARGETS = np.array([2, 0, 0])

# A rewrite loop must fail the test, not just slow it down.
pytestmark = pytest.mark.filterwarnings("error:vmc.opt:UserWarning")


def op_types(f):
    return [type(n.op) for n in nodes(f)]


def test_log_softmax():
    x = vt.matrix("x")
    f = compile_fn([x], vt.log(vt.softmax(x)))                # log(softmax(x)) -> log_softmax
    assert op_types(f) == [LogSoftmax]
    out = f(LOGITS)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, sps.log_softmax(LOGITS, axis=1))
    with np.errstate(all="ignore"):
        assert np.isinf(compile_fn([x], vt.log(vt.softmax(x)), mode="None")(LOGITS)).any()


def test_log_softmax_through_indexing():
    x = vt.matrix("x")
    i = vt.vector("i", dtype="int64")
    f = compile_fn([x, i], vt.log(vt.softmax(x)[vt.arange(3), i]), mode=NOFUSE)
    assert LogSoftmax in op_types(f) and Softmax not in op_types(f)
    np.testing.assert_allclose(f(LOGITS, TARGETS),
                               sps.log_softmax(LOGITS, axis=1)[np.arange(3), TARGETS])


def test_nll_becomes_crossentropy_op():
    x = vt.matrix("x")
    y = vt.vector("y", dtype="int64")
    nll = -vt.log(vt.softmax(x))[vt.arange(y.shape[0]), y]
    f = compile_fn([x, y], nll)
    assert CrossentropySoftmaxArgmax in op_types(f)
    assert LogSoftmax not in op_types(f)
    absent(f, "Subtensor")
    expected = -sps.log_softmax(LOGITS, axis=1)[np.arange(3), TARGETS]
    np.testing.assert_allclose(f(LOGITS, TARGETS), expected)
    # categorical_crossentropy builds the same graph
    f2 = compile_fn([x, y], vt.categorical_crossentropy(vt.softmax(x), y))
    assert CrossentropySoftmaxArgmax in op_types(f2)
    np.testing.assert_allclose(f2(LOGITS, TARGETS), expected)


def test_crossentropy_gradient_is_one_op_and_finite_at_large_logits():
    x = vt.matrix("x")
    y = vt.vector("y", dtype="int64")
    cost = vt.mean(vt.categorical_crossentropy(vt.softmax(x), y))
    g = vmc.grad(cost, x)
    f = compile_fn([x, y], [cost, g])
    types = op_types(f)
    assert CrossentropySoftmaxDx in types and Softmax not in types
    absent(f, "IncSubtensor")
    c, gx = f(LOGITS, TARGETS)
    sm = sps.softmax(LOGITS, axis=1)
    onehot = np.eye(3)[TARGETS]
    assert np.all(np.isfinite(gx))
    np.testing.assert_allclose(gx, (sm - onehot) / 3, atol=1e-15)
    np.testing.assert_allclose(c, -sps.log_softmax(LOGITS, axis=1)[np.arange(3), TARGETS].mean())
    with np.errstate(all="ignore"):
        _, g_none = compile_fn([x, y], [cost, g], mode="None")(LOGITS, TARGETS)
    assert not np.all(np.isfinite(g_none))                     # what it replaced


def test_log_softmax_nll_gradient_is_one_op_and_finite_at_large_logits():
    # The loss written with log_softmax (as the demo does): its gradient reads
    # exp(log_softmax(x)), which is the cross-entropy op's softmax.
    x = vt.matrix("x")
    y = vt.vector("y", dtype="int64")
    cost = -vt.mean(vt.log_softmax(x)[vt.arange(y.shape[0]), y])
    f = compile_fn([x, y], [cost, vmc.grad(cost, x)])
    types = op_types(f)
    assert CrossentropySoftmaxDx in types and LogSoftmax not in types
    assert types.count(CrossentropySoftmaxArgmax) == 1             # shared with the loss
    absent(f, "IncSubtensor", "Alloc")
    c, gx = f(LOGITS, TARGETS)
    assert np.all(np.isfinite(gx))
    np.testing.assert_allclose(gx, (sps.softmax(LOGITS, axis=1) - np.eye(3)[TARGETS]) / 3,
                               atol=1e-15)
    np.testing.assert_allclose(c, -sps.log_softmax(LOGITS, axis=1)[np.arange(3), TARGETS].mean())
    xs = np.random.default_rng(1).standard_normal((4, 5))
    vmc.gradient.verify_grad(
        lambda a: -vt.mean(vt.log_softmax(a)[vt.arange(4), np.array([1, 0, 4, 2])]), [xs])


@pytest.mark.parametrize("through", [vt.softmax, vt.log_softmax])
def test_argmax_reads_the_logits(through):
    x = vt.matrix("x")
    y = vt.vector("y", dtype="int64")
    f = compile_fn([x], vt.argmax(through(x), axis=1))
    assert op_types(f) == [type(vt.argmax(x, axis=1).owner.op)]   # softmax is not computed
    ties = np.array([[3.0, 3.0, 1.0], [-1e300, -np.inf, -2e300]])
    np.testing.assert_array_equal(f(LOGITS), np.argmax(LOGITS, axis=1))
    np.testing.assert_array_equal(f(ties), [0, 0])
    # next to a loss, the cross-entropy op's own argmax serves: no second pass
    loss = -vt.mean(through(x)[vt.arange(y.shape[0]), y]) if through is vt.log_softmax else \
        vt.mean(vt.categorical_crossentropy(vt.softmax(x), y))
    g = compile_fn([x, y], [loss, vt.mean(vt.eq(vt.argmax(through(x), axis=1), y))])
    assert CrossentropySoftmaxArgmax in op_types(g)
    absent(g, "Argmax")
    acc = g(LOGITS, TARGETS)[1]
    np.testing.assert_allclose(acc, np.mean(np.argmax(LOGITS, axis=1) == TARGETS))


def test_crossentropy_op_used_directly_has_a_gradient():
    x = vt.matrix("x")
    y = vt.vector("y", dtype="int64")
    cost = vt.sum(crossentropy_softmax(x, y) * vt.arange(1, 4))
    f = compile_fn([x, y], vmc.grad(cost, x))
    sm = sps.softmax(LOGITS, axis=1)
    w = np.arange(1, 4)[:, None]
    np.testing.assert_allclose(f(LOGITS, TARGETS), w * (sm - np.eye(3)[TARGETS]), atol=1e-12)
    xs = np.random.default_rng(0).standard_normal((4, 5))
    vmc.gradient.verify_grad(lambda a: vt.sum(crossentropy_softmax(a, np.array([1, 0, 4, 2]))),
                             [xs])


@pytest.mark.parametrize("make, ref, name, points", [
    (lambda x: vt.log(1 + x), np.log1p, "log1p", [1e-20, -0.5, 3.0]),
    (lambda x: vt.log(1 - x), lambda v: np.log1p(-v), "log1p", [1e-20, 0.5]),
    (lambda x: vt.exp(x) - 1, np.expm1, "expm1", [1e-20, -2.0, 3.0]),
    (lambda x: vt.log(1 + vt.exp(x)), lambda v: np.logaddexp(0, v), "softplus",
     [800.0, -800.0, 0.5]),
    (lambda x: vt.log1p(vt.exp(x)), lambda v: np.logaddexp(0, v), "softplus", [800.0, -3.0]),
    (lambda x: vt.log(vt.sigmoid(x)), lambda v: -np.logaddexp(0, -v), "softplus",
     [-800.0, 800.0, 0.3]),
    (lambda x: vt.log(1 - vt.sigmoid(x)), lambda v: -np.logaddexp(0, v), "softplus",
     [800.0, -800.0, 0.3]),
])
def test_elementwise_stabilizations(make, ref, name, points):
    x = vt.vector("x")
    f = compile_fn([x], make(x))
    ops = all_scalar_ops(f)
    assert name in ops and "log" not in ops and "exp" not in ops, ops
    v = np.array(points)
    out = f(v)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, ref(v), rtol=1e-14)


def test_logsumexp():
    x = vt.matrix("x")
    f = compile_fn([x], vt.log(vt.sum(vt.exp(x), axis=1)), mode=NOFUSE)
    assert "Max" in op_names(f)                                 # shifted by the max
    np.testing.assert_allclose(f(LOGITS), sps.logsumexp(LOGITS, axis=1))
    f = compile_fn([x], vt.log(vt.sum(vt.exp(x), axis=0, keepdims=True)))
    np.testing.assert_allclose(f(LOGITS), sps.logsumexp(LOGITS, axis=0, keepdims=True))
    f = compile_fn([x], vt.log(vt.sum(vt.exp(x))))
    np.testing.assert_allclose(f(LOGITS), sps.logsumexp(LOGITS))


def test_softmax_from_exp():
    x = vt.matrix("x")
    e = vt.exp(x)
    f = compile_fn([x], e / vt.sum(e, axis=1, keepdims=True))
    assert op_types(f) == [Softmax]
    np.testing.assert_allclose(f(LOGITS), sps.softmax(LOGITS, axis=1))
    f = compile_fn([x], e / vt.sum(e, axis=0, keepdims=True))
    assert op_types(f) == [Softmax]
    np.testing.assert_allclose(f(LOGITS), sps.softmax(LOGITS, axis=0))


def test_softmax_gradient_cancels_the_division():
    x = vt.matrix("x")
    w = vt.matrix("w")
    sm = vt.softmax(x)
    g = vmc.grad(vt.sum(vt.log(sm) * w), x)           # d/dx of sum(w * log_softmax(x))
    f = compile_fn([x, w], g)
    assert "true_div" not in all_scalar_ops(f)
    wv = np.arange(9.0).reshape(3, 3)
    s = sps.softmax(LOGITS, axis=1)
    expected = wv - s * wv.sum(axis=1, keepdims=True)
    out = f(LOGITS, wv)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, expected, atol=1e-12)


def test_distribute_over_sum_when_it_cancels():
    x, y, z = vt.vectors("x", "y", "z")
    f = compile_fn([x, y, z], x * (y / x - z), mode=NOFUSE)      # -> y - x * z
    assert sorted(op_names(f)) == ["mul", "sub"]
    v = np.array([0.0, 2.0, -1.0])
    np.testing.assert_allclose(f(v, v + 1, v + 2), (v + 1) - v * (v + 2))


def test_distribute_inside_a_longer_product():
    # The rewrite fires at the outermost mul of a product (an inner mul's
    # factors are all the outer one's): x * (y / x - z) * w -> y * w - x * z * w
    x, y, z, w = vt.vectors("x", "y", "z", "w")
    f = compile_fn([x, y, z, w], x * (y / x - z) * w, mode=NOFUSE)
    absent(f, "true_div")
    v = np.array([0.0, 2.0, -1.0])
    np.testing.assert_allclose(f(v, v + 1, v + 2, v + 3), ((v + 1) - v * (v + 2)) * (v + 3))


def test_long_product_is_flattened_once_per_change():
    # The gradient of a 1000-step chain is a 500-factor product: each mul of
    # it used to flatten the whole product below it (quadratic: a 4000-step
    # chain's gradient took about a minute to compile).
    from vmc.opt import chains
    x = vt.dscalar("x")
    y = x
    for i in range(1000):
        y = vt.sin(y) if i % 2 else -y
    leaves = []
    real = chains.flatten_single

    def counting(*args):
        out = real(*args)
        leaves.append(len(out or ()))
        return out
    chains.flatten_single = counting
    try:
        f = compile_fn([x], vmc.grad(y, x), mode=NOFUSE)
    finally:
        chains.flatten_single = real
    assert sum(leaves) < 20_000        # 3,000 now; was about 128,000
    yv, dy = 0.5, 1.0
    for i in range(1000):
        yv, dy = (np.sin(yv), dy * np.cos(yv)) if i % 2 else (-yv, -dy)
    np.testing.assert_allclose(f(0.5), dy, rtol=1e-10)


def test_sigmoid_binary_crossentropy_and_gradient_are_finite():
    x, t = vt.vectors("x", "t")
    cost = vt.sum(vt.binary_crossentropy(vt.sigmoid(x), t))
    f = compile_fn([x, t], [cost, vmc.grad(cost, x)])
    assert "log" not in all_scalar_ops(f)
    xv = np.array([-800.0, -30.0, 0.5, 30.0, 800.0])
    tv = np.array([1.0, 0.0, 1.0, 1.0, 0.0])
    c, g = f(xv, tv)
    np.testing.assert_allclose(c, np.sum(np.logaddexp(0, xv) - tv * xv))
    np.testing.assert_allclose(g, sps.expit(xv) - tv, atol=1e-12)
    g_from_logits = vmc.grad(vt.sum(vt.sigmoid_binary_crossentropy(x, t)), x)
    np.testing.assert_allclose(compile_fn([x, t], g_from_logits)(xv, tv), g, atol=1e-12)
