"""Products moved out of the loop body, edge cases, pickling."""
import pickle

import numpy as np
import pytest

import vmc
import vmc.tensor as vt
from vmc.graph.traversal import ancestors
from vmc.scan import Scan, scan
from vmc.tensor.math import Dot

from .oracles import rnn_sum_bptt

RNG = np.random.default_rng(3)


def body_ops(f):
    """Per Scan node of the compiled function, the op classes of its body."""
    out = []
    for n in f.fgraph.toposort():
        if isinstance(n.op, Scan):
            out.append([type(v.owner.op).__name__ for v in ancestors(n.op.inner_outputs)
                        if v.owner is not None])
    return out


def test_sequence_product_moved_out():
    X, W = vt.tensor3("X"), vt.matrix("W")
    h0 = vt.matrix("h0")
    H, _ = scan(lambda x_t, h, W: vt.tanh(vt.dot(x_t, W) + h), sequences=X, outputs_info=h0,
                non_sequences=W)
    f = vmc.function([X, W, h0], H)
    (ops,) = body_ops(f)
    assert "Dot" not in ops and "Gemm" not in ops
    x, w, h = RNG.standard_normal((4, 2, 3)), RNG.standard_normal((3, 5)), np.zeros((2, 5))
    ref, hh = [], h
    for t in range(4):
        hh = np.tanh(x[t] @ w + hh)
        ref.append(hh)
    np.testing.assert_allclose(f(x, w, h), ref)


def test_vector_rows_and_explicit_n_steps():
    X, W = vt.matrix("X"), vt.matrix("W")
    y, _ = scan(lambda x_t, W: vt.dot(x_t, W) * 2, sequences=X, non_sequences=W, n_steps=3)
    f = vmc.function([X, W], y)
    x, w = RNG.standard_normal((5, 3)), RNG.standard_normal((3, 2))
    np.testing.assert_allclose(f(x, w), (x[:3] @ w) * 2)


def test_weight_gradient_accumulation_moved_out():
    X, W, U = vt.tensor3("X"), vt.matrix("W"), vt.matrix("U")
    h0 = vt.matrix("h0")
    H, _ = scan(lambda x_t, h: vt.tanh(vt.dot(x_t, W) + vt.dot(h, U)), sequences=X,
                outputs_info=h0)
    gW, gU = vmc.grad(H.sum(), [W, U])
    f = vmc.function([X, W, U, h0], [gW, gU])
    nodes = [n for n in f.fgraph.toposort() if isinstance(n.op, Scan)]
    backward = nodes[-1]
    assert backward.op.info.n_carry == 1     # only dh is carried; gW, gU are products
    dots = [v for v in ancestors(backward.op.inner_outputs)
            if v.owner is not None and isinstance(v.owner.op, Dot)]
    assert len(dots) <= 1
    x, w, u = (RNG.standard_normal((5, 2, 3)), RNG.standard_normal((3, 4)) * 0.5,
               RNG.standard_normal((4, 4)) * 0.5)
    h = RNG.standard_normal((2, 4)) * 0.1
    _, gw, gu = rnn_sum_bptt(x, w, u, 0.0, h)
    out = f(x, w, u, h)
    np.testing.assert_allclose(out[0], gw, rtol=1e-10)
    np.testing.assert_allclose(out[1], gu, rtol=1e-10)


def test_output_product_moved_out():
    X, V = vt.matrix("X"), vt.matrix("V")
    (h, y), _ = scan(lambda x_t, h, V: (h + x_t, vt.dot(h + x_t, V)), sequences=X,
                     outputs_info=[vt.zeros_like(X[0]), None], non_sequences=V)
    f = vmc.function([X, V], [h, y])
    (ops,) = body_ops(f)
    assert "Dot" not in ops
    x, v = RNG.standard_normal((4, 3)), RNG.standard_normal((3, 2))
    hs = np.cumsum(x, axis=0)
    out = f(x, v)
    np.testing.assert_allclose(out[0], hs)
    np.testing.assert_allclose(out[1], hs @ v)


def test_product_in_lazy_branch_stays_in_the_loop():
    from vmc.ifelse import ifelse
    X, W = vt.matrix("X"), vt.matrix("W")
    y, _ = scan(lambda x_t, W: ifelse(x_t.sum() > 0, vt.dot(x_t, W), vt.zeros((2,))),
                sequences=X, non_sequences=W)
    x = np.array([[1.0, 1.0, 1.0], [-1.0, -1.0, -1.0]])
    w = np.ones((3, 2))
    np.testing.assert_allclose(vmc.function([X, W], y)(x, w), [[3, 3], [0, 0]])


def test_only_updates_and_empty_sequences():
    c = vmc.shared(np.asarray(0.0), name="c")
    outs, updates = scan(lambda: {c: c + 2}, n_steps=5)
    assert outs == []
    vmc.function([], [], updates=updates)()
    assert c.get_value() == 10.0
    x = vt.matrix("x")
    y, _ = scan(lambda r: r * 2, sequences=x)
    assert vmc.function([x], y)(np.zeros((0, 3))).shape[0] == 0


def test_gradient_with_zero_steps():
    x0 = vt.vector("x0")
    n = vt.lscalar("n")
    out, _ = scan(lambda h: h * 2, outputs_info=x0, n_steps=n)
    g = vmc.grad(out.sum() + x0.sum(), x0)
    f = vmc.function([x0, n], g)
    np.testing.assert_allclose(f(np.ones(2), 0), [1, 1])
    np.testing.assert_allclose(f(np.ones(2), 2), [1 + 2 + 4, 1 + 2 + 4])


def test_pickled_function_with_scan():
    x = vt.vector("x")
    y, _ = scan(lambda t, acc: acc + t, sequences=x, outputs_info=vt.constant(0.0))
    g = vmc.grad(y.sum(), x)
    f = vmc.function([x], [y, g])
    f2 = pickle.loads(pickle.dumps(f))
    v = RNG.standard_normal(4)
    for a, b in zip(f(v), f2(v)):
        np.testing.assert_allclose(a, b)


def test_runtime_error_names_step_and_line():
    x = vt.matrix("x")
    w = vt.vector("w")
    y, _ = scan(lambda r, w: r + w, sequences=x, non_sequences=w)
    f = vmc.function([x, w], y)
    with pytest.raises(ValueError, match=r"step 0 of Scan"):
        f(np.ones((2, 3)), np.ones(4))


def test_sequence_gradient_with_zero_steps():
    X = vt.matrix("X")
    y, _ = scan(lambda r: vt.tanh(r) * 2, sequences=X)
    f = vmc.function([X], vmc.grad(y.sum(), X))
    np.testing.assert_allclose(f(np.zeros((2, 3))), 2 * np.ones((2, 3)))
    assert f(np.ones((0, 3))).shape == (0, 3)
