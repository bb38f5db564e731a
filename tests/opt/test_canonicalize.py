"""canonicalize: each rewrite's graph, and its numbers against numpy."""
from __future__ import annotations

import numpy as np
import pytest

import vmc.tensor as vt
from vmc.tensor.math import CAReduce
from vmc.tensor.shape import Reshape, Shape, ShapeI

from opt_helpers import absent, NOFUSE, compile_fn, nodes, op_names

X = np.array([[0.5, -1.5, 2.0], [3.0, 0.25, -0.75]])
V = np.array([0.5, -1.5, 2.0, 4.0])

# A rewrite loop must fail the test, not just slow it down.
pytestmark = pytest.mark.filterwarnings("error:vmc.opt:UserWarning")


def check(inputs, expr, values, expected, ops, mode=NOFUSE, rtol=1e-12):
    """Compile; the node names (in any order) and the numbers must match."""
    f = compile_fn(inputs, expr, mode=mode)
    assert sorted(op_names(f)) == sorted(ops), op_names(f)
    np.testing.assert_allclose(f(*values), expected, rtol=rtol)
    return f


@pytest.mark.parametrize("make, expected, ops", [
    (lambda x: x * 1, lambda v: v, []),                                   # x*1 -> x
    (lambda x: 1 * x, lambda v: v, []),
    (lambda x: x + 0, lambda v: v, []),                                   # x+0 -> x
    (lambda x: 0 + x - 0, lambda v: v, []),
    (lambda x: -(-x), lambda v: v, []),                                   # --x -> x
    (lambda x: (x + 1) + 2, lambda v: v + 3, ["add"]),                    # fold constants
    (lambda x: 2 * (x * 3), lambda v: 6 * v, ["mul"]),
    (lambda x: (x * 2) / 4, lambda v: v / 2, ["mul"]),
    (lambda x: x * -1, lambda v: -v, ["neg"]),
    (lambda x: (x + 1) - 1, lambda v: v, []),
    (lambda x: x - (1 - x) + 1, lambda v: 2 * v, ["add"]),               # x + x, flattened
])
def test_add_mul_chains(make, expected, ops):
    x = vt.vector("x")
    check([x], make(x), [V], expected(V), ops)


def test_cancellation_gives_broadcast_constant():
    x = vt.vector("x")
    # x - x -> zeros of x's shape; x / x -> ones
    check([x], x - x, [V], np.zeros(4), ["Shape_i", "Alloc"])
    check([x], x / x, [V], np.ones(4), ["Shape_i", "Alloc"])
    y = vt.vector("y")
    check([x, y], x * y - y * x + y, [V, V + 1], V + 1, [])       # a*b merges with b*a


def test_cancellation_through_a_shared_quotient():
    x, y = vt.vectors("x", "y")
    q = x / y
    f = check([x, y], vt.stack([vt.sum(q * y), vt.sum(q)]), [V, V + 3],
              [V.sum(), (V / (V + 3)).sum()],
              ["Sum", "true_div", "Sum", "MakeVector"])
    # sum(q * y) became sum(x): one of the sums reads x itself
    assert any(n.inputs[0] is f.fgraph.inputs[0] for n in nodes(f)
               if isinstance(n.op, CAReduce))


def test_chain_with_other_dtype_is_left_alone():
    i = vt.vector("i", dtype="int8")
    x = vt.vector("x")
    e = (i + i) + x                        # int8 overflow first, then float: keep the order
    f = compile_fn([i, x], e, mode=NOFUSE)
    iv = np.array([100, -100, 1], dtype="int8")
    xv = np.zeros(3)
    np.testing.assert_allclose(f(iv, xv), (iv + iv).astype(float))


def test_double_transpose_and_identity_dimshuffle():
    x = vt.matrix("x")
    check([x], x.T.T, [X], X, [])
    check([x], x.dimshuffle(1, "x", 0).dimshuffle(2, 0), [X], X, [])
    f = check([x], x.dimshuffle(1, "x", 0).dimshuffle(2, 1, 0), [X], X.T[:, None].T,
              ["DimShuffle"])
    assert nodes(f)[0].op.new_order == (0, "x", 1)


def test_useless_reshape_and_reshape_of_reshape():
    x = vt.matrix("x")
    check([x], vt.reshape(x, (x.shape[0], x.shape[1])), [X], X, [])
    f = compile_fn([x], vt.reshape(vt.reshape(x, (-1,)), (3, 2)), mode=NOFUSE)
    assert [type(n.op) for n in nodes(f)] == [Reshape]
    np.testing.assert_array_equal(f(X), X.reshape(3, 2))


def test_useless_cast():
    x = vt.vector("x", dtype="float32")
    check([x], vt.cast(vt.cast(x, "float64"), "int32"), [V.astype("float32")],
          V.astype("float32").astype("int32"), ["cast"])
    i = vt.vector("i", dtype="int32")
    # int32 -> int8 -> float64 keeps both casts (the first one truncates)
    iv = np.array([300, -5, 7], dtype="int32")
    check([i], vt.cast(vt.cast(i, "int8"), "float64"), [iv],
          iv.astype("int8").astype("float64"), ["cast", "cast"])


def test_exp_log_inverses():
    x = vt.vector("x")
    check([x], vt.exp(vt.log(x)), [np.abs(V)], np.abs(V), [])          # exp(log x) -> x
    check([x], vt.log(vt.exp(x)), [V], V, [])                          # log(exp x) -> x


def test_shape_of_known_shape_ops():
    x = vt.matrix("x")
    y = vt.matrix("y")
    d = vt.dot(vt.tanh(x), y)
    f = compile_fn([x, y], d.shape[0] + d.shape[1], mode=NOFUSE)
    # Shape_i of dot(tanh(x), y) reads x and y directly: nothing is computed
    assert all(n.inputs[0] in (f.fgraph.inputs[0], f.fgraph.inputs[1])
               for n in nodes(f) if isinstance(n.op, ShapeI))
    absent(f, "Dot", "tanh")
    assert f(X, X.T) == 4
    s = vt.matrix("s", shape=(2, 3))
    # static: a constant (copied out, as every constant output is: op_names
    # leaves that copy out)
    check([s], s.shape[1] * 2, [X], 6, [])
    check([s], vt.shape(s), [X], [2, 3], [])
    assert [type(n.op).__name__ for n in f_nodes([s], vt.shape(s))] == ["OutputCopy"]


def test_subtensor_of_shape_is_shape_i():
    x = vt.matrix("x")
    f = compile_fn([x], x.shape[1], mode=NOFUSE)
    assert [type(n.op) for n in nodes(f)] == [ShapeI]
    assert f(X) == 3
    f = compile_fn([x], x.shape[-2], mode=NOFUSE)
    assert [type(n.op) for n in nodes(f)] == [ShapeI] and f(X) == 2
    assert not any(isinstance(n.op, Shape) for n in nodes(f))


def test_sums_and_means_of_constants():
    x = vt.matrix("x")
    ones = vt.ones_like(x)
    check([x], vt.sum(ones * 2.5), [X], 15.0,
          ["Shape_i", "Shape_i", "cast", "cast", "mul", "mul"])     # 2.5 * rows * cols
    f = compile_fn([x], vt.mean(vt.zeros_like(x) + 4.0), mode=NOFUSE)
    absent(f, "Alloc", "Sum")    # 4*rows*cols/size
    np.testing.assert_allclose(f(X), 4.0)
    f = compile_fn([x], vt.sum(vt.ones_like(x), axis=0), mode=NOFUSE)
    absent(f, "Sum")
    np.testing.assert_allclose(f(X), [2.0, 2.0, 2.0])


def test_sum_of_scaled():
    x = vt.matrix("x")
    s = vt.scalar("s")
    check([x], vt.sum(x * 3.0), [X], 3 * X.sum(), ["Sum", "mul"])       # sum(x*c) -> c*sum(x)
    check([x, s], vt.sum(x * s, axis=1), [X, 0.5], 0.5 * X.sum(axis=1),
          ["Sum", "DimShuffle", "mul"])
    check([x], vt.sum(x / 4.0, axis=0), [X], X.sum(axis=0) / 4, ["Sum", "mul"])
    check([x], vt.sum(-x), [X], -X.sum(), ["Sum", "neg"])


def test_reduce_over_broadcast_dims_and_sum_of_sum():
    r = vt.row("r")
    check([r], vt.sum(r, axis=0), [X[:1]], X[0], ["DimShuffle"])
    x = vt.tensor3("x")
    t = np.arange(24.0).reshape(2, 3, 4)
    f = check([x], vt.sum(vt.sum(x, axis=1), axis=1), [t], t.sum(axis=(1, 2)), ["Sum"])
    assert nodes(f)[0].op.axis == (1, 2)


def test_alloc_feeding_elementwise_is_broadcast():
    x = vt.matrix("x")
    e = x + vt.alloc(vt.constant(2.0), x.shape[0], x.shape[1])
    check([x], e, [X], X + 2, ["add"])


def test_constants_through_dimshuffles_that_drop_and_reorder_dims():
    # const_data folds DimShuffles of a constant with the op's own view_of
    # (it once transposed by the undropped dim numbers, and raised here)
    from vmc.tensor.elemwise import const_data
    c = vt.constant(np.arange(6.0).reshape(3, 1, 2))
    d = c.dimshuffle(2, "x", 0)
    np.testing.assert_array_equal(const_data(d), np.arange(6.0).reshape(3, 1, 2)[:, 0, :].T[:, None, :])
    x = vt.dvector("x")
    row = vt.constant(np.array([[2.0, 3.0, 4.0]])).dimshuffle(1)
    f = compile_fn([x], x * row * 2.0)
    np.testing.assert_allclose(f(np.array([1.0, -1.0, 0.5])), [4.0, -6.0, 4.0])


def f_nodes(inputs, outputs):
    return compile_fn(inputs, outputs).fgraph.toposort()
