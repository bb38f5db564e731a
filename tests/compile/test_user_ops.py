"""User-defined ops written as Theano users write them (the examples of Theano's
"Creating a new Op" page), ``as_op`` and ``OpFromGraph``; oracles are numpy,
hand values and numerical gradients."""
from __future__ import annotations

import io

import numpy as np
import pytest

import vmc
import vmc.tensor as vt
from vmc.compile.builders import OpFromGraph
from vmc.compile.ops import as_op
from vmc.gradient import verify_grad


class DoubleOp(vmc.Op):
    """Theano's documentation example: ``2 * x``."""
    __props__ = ()
    calls = 0

    def make_node(self, x):
        x = vt.as_tensor_variable(x)
        return vmc.Apply(self, [x], [x.type()])

    def perform(self, node, inputs, output_storage):
        type(self).calls += 1
        output_storage[0][0] = inputs[0] * 2

    def infer_shape(self, node, i0_shapes):
        return i0_shapes

    def grad(self, inputs, output_grads):
        return [output_grads[0] * 2]

    def R_op(self, inputs, eval_points):
        return [None if eval_points[0] is None else eval_points[0] * 2]


class DoubleOpPyTensor(DoubleOp):
    """The same with PyTensor's ``infer_shape(fgraph, node, shapes)``."""
    seen = []

    def infer_shape(self, fgraph, node, shapes):
        type(self).seen.append(fgraph)
        return shapes


class ScaleNoProps(vmc.Op):
    """No ``__props__``: instances compare by identity, as in Theano, so two
    scales never merge."""

    def __init__(self, k):
        self.k = k

    def make_node(self, x):
        x = vt.as_tensor_variable(x)
        return vmc.Apply(self, [x], [x.type()])

    def perform(self, node, inputs, output_storage):
        output_storage[0][0] = inputs[0] * self.k


class AddOneInPlace(vmc.Op):
    """Overwrites its input (``destroy_map``)."""
    __props__ = ()
    destroy_map = {0: [0]}
    ids = []

    def make_node(self, x):
        x = vt.as_tensor_variable(x)
        return vmc.Apply(self, [x], [x.type()])

    def perform(self, node, inputs, output_storage):
        (x,) = inputs
        type(self).ids.append(id(x))
        x += 1
        output_storage[0][0] = x


def test_double_op_runs_and_differentiates():
    x = vt.dmatrix("x")
    f = vmc.function([x], DoubleOp()(x))
    v = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(f(v), 2 * v)
    verify_grad(lambda a: DoubleOp()(a) ** 2, [v + 1])


@pytest.mark.parametrize("cls", [DoubleOp, DoubleOpPyTensor])
def test_shape_rule_replaces_the_computation(cls):
    x = vt.dmatrix("x")
    out = cls()(x)
    f = vmc.function([x], [out.shape[0], out.shape[1]])
    before = DoubleOp.calls
    np.testing.assert_array_equal(f(np.zeros((4, 5))), [4, 5])
    assert DoubleOp.calls == before, "the shape came from infer_shape, not from perform"
    if cls is DoubleOpPyTensor:
        assert DoubleOpPyTensor.seen, "the (fgraph, node, shapes) rule was called"


def test_merge_and_dead_code():
    x = vt.dvector("x")
    a, b = DoubleOp()(x), DoubleOp()(x)         # equal ops on one input: merged
    unused = DoubleOp()(x + 1)                   # noqa: F841  (not an output: never run)
    f = vmc.function([x], a + b)
    before = DoubleOp.calls
    np.testing.assert_array_equal(f(np.ones(3)), 4 * np.ones(3))
    assert DoubleOp.calls - before == 1
    s1, s2 = ScaleNoProps(2.0), ScaleNoProps(3.0)
    g = vmc.function([x], s1(x) + s2(x))
    np.testing.assert_array_equal(g(np.ones(3)), 5 * np.ones(3))


def test_destroy_map_never_changes_a_user_argument():
    x = vt.dvector("x")
    f = vmc.function([x], AddOneInPlace()(x))
    v = np.zeros(3)
    np.testing.assert_array_equal(f(v), np.ones(3))
    np.testing.assert_array_equal(v, np.zeros(3))
    # An intermediate that dies at the op may be destroyed; one read later may not.
    y = x * 2
    g = vmc.function([x], [AddOneInPlace()(y), y])
    out, y_val = g(np.ones(3))
    np.testing.assert_array_equal(out, 3 * np.ones(3))
    np.testing.assert_array_equal(y_val, 2 * np.ones(3))


def test_user_op_in_profile():
    x = vt.dvector("x")
    f = vmc.function([x], DoubleOp()(x) + 1, profile=True)
    f(np.ones(3))
    buf = io.StringIO()
    f.profile.summary(file=buf)
    assert "DoubleOp" in buf.getvalue()


def test_r_op_of_user_op():
    x, v = vt.dvector("x"), vt.dvector("v")
    jv = vmc.gradient.Rop(DoubleOp()(x) ** 2, x, v)
    f = vmc.function([x, v], jv)
    xv, vv = np.array([1.0, 2.0]), np.array([3.0, 5.0])
    np.testing.assert_allclose(f(xv, vv), 8 * xv * vv)      # d(4x^2) v


@as_op(itypes=[vt.dmatrix, vt.dmatrix], otypes=[vt.dmatrix])
def numpy_dot(a, b):
    return np.dot(a, b)


def test_as_op():
    x, y = vt.dmatrix("x"), vt.dmatrix("y")
    f = vmc.function([x, y], numpy_dot(x, y) + 1)
    a, b = np.arange(6.0).reshape(2, 3), np.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(f(a, b), a @ b + 1)
    with pytest.raises(TypeError, match="input 0"):
        numpy_dot(vt.dvector("v"), y)


def test_as_op_shape_rule():
    op = as_op([vt.dvector], [vt.dvector],
               infer_shape=lambda node, shapes: [shapes[0]])(np.cumsum)
    x = vt.dvector("x")
    f = vmc.function([x], [op(x), op(x + 1).shape[0]])
    got, n = f(np.arange(4.0))
    np.testing.assert_array_equal(got, np.cumsum(np.arange(4.0)))
    assert n == 4
    assert sum(isinstance(v.op, type(op)) for v in f.fgraph.toposort()) == 1


def test_op_from_graph_theano_example():
    x, y, z = vt.dscalars("x", "y", "z")
    e = x + y * z
    op = OpFromGraph([x, y, z], [e])
    e2 = op(x, y, z) + op(z, y, x)
    f = vmc.function([x, y, z], e2)
    assert f(1.0, 2.0, 3.0) == (1 + 2 * 3) + (3 + 2 * 1)
    gx, gy = vmc.grad(e2, [x, y])
    g = vmc.function([x, y, z], [gx, gy])
    np.testing.assert_allclose(g(1.0, 2.0, 3.0), [1 + 2, 3 + 1])


@pytest.mark.parametrize("inline", [False, True])
def test_op_from_graph_matrices_shared_and_grad(inline):
    x = vt.dmatrix("x")
    w = vmc.shared(np.array([[1.0, -1.0], [0.5, 2.0]]), name="w")
    op = OpFromGraph([x], [vt.tanh(vt.dot(x, w)), vt.exp(x)], inline=inline)
    a, b = op(x)
    f = vmc.function([x], a.sum() + b.sum())
    v = np.array([[0.1, 0.2], [0.3, -0.4]])
    np.testing.assert_allclose(f(v), np.tanh(v @ w.get_value()).sum() + np.exp(v).sum())
    verify_grad(lambda t: op(t)[0] * op(t)[1], [v])
    gw = vmc.function([x], vmc.grad(a.sum(), w))
    t = np.tanh(v @ w.get_value())
    np.testing.assert_allclose(gw(v), v.T @ (1 - t ** 2))
    names = {type(n.op).__name__ for n in f.fgraph.toposort()}
    assert ("OpFromGraph" in names) == (not inline)


def test_inlining_leaves_no_dead_nodes_for_unread_outputs():
    # only output 1 of the op is read: output 0's inner graph (dot, tanh) must not
    # join the graph as dead nodes (check_graph compares apply_nodes with the toposort)
    x = vt.dmatrix("x")
    w = vmc.shared(np.eye(2), name="w")
    _, a = OpFromGraph([x], [vt.tanh(vt.dot(x, w)), vt.exp(x)], inline=True)(x)
    with vmc.config.change(check_graph=True):
        f = vmc.function([x], a.sum())
    assert f.fgraph.apply_nodes == set(f.fgraph.toposort())
    np.testing.assert_allclose(f(np.ones((2, 2))), 4 * np.e)
