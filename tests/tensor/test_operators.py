"""The operators and methods of tensor variables, the constructors, and
graph-build-time type errors."""
from __future__ import annotations

import numpy as np
import pytest

import vmc
import vmc.tensor as vt
from vmc.graph.type import TensorType

from .helpers import assert_like_numpy, rand, run, sym

A = rand((3, 4), "float64", 0.5, 3)
B = rand((3, 4), "float64", 0.5, 3)
IA = rand((3, 4), "int64", -5, 5)
IB = rand((3, 4), "int64", 1, 4)

# name -> (function of x, y; numpy of a, b)
BINARY = {
    "add": (lambda x, y: x + y, lambda a, b: a + b),
    "radd": (lambda x, y: 2 + x, lambda a, b: 2 + a),
    "sub": (lambda x, y: x - y, lambda a, b: a - b),
    "rsub": (lambda x, y: 1 - x, lambda a, b: 1 - a),
    "mul": (lambda x, y: x * y, lambda a, b: a * b),
    "rmul": (lambda x, y: 3 * x, lambda a, b: 3 * a),
    "truediv": (lambda x, y: x / y, lambda a, b: a / b),
    "rtruediv": (lambda x, y: 1 / y, lambda a, b: 1 / b),
    "floordiv": (lambda x, y: x // y, lambda a, b: a // b),
    "rfloordiv": (lambda x, y: 7 // y, lambda a, b: 7 // b),
    "mod": (lambda x, y: x % y, lambda a, b: a % b),
    "rmod": (lambda x, y: 5 % y, lambda a, b: 5 % b),
    "pow": (lambda x, y: x ** y, lambda a, b: a ** b),
    "pow_const": (lambda x, y: x ** 2, lambda a, b: a ** 2),
    "rpow": (lambda x, y: 2 ** y, lambda a, b: 2 ** b),
    "neg": (lambda x, y: -x, lambda a, b: -a),
    "pos": (lambda x, y: +x, lambda a, b: +a),
    "abs": (lambda x, y: abs(x - y), lambda a, b: abs(a - b)),
    "lt": (lambda x, y: x < y, lambda a, b: a < b),
    "le": (lambda x, y: x <= y, lambda a, b: a <= b),
    "gt": (lambda x, y: x > y, lambda a, b: a > b),
    "ge": (lambda x, y: x >= y, lambda a, b: a >= b),
    "and": (lambda x, y: (x > 1) & (y > 1), lambda a, b: (a > 1) & (b > 1)),
    "or": (lambda x, y: (x > 1) | (y > 1), lambda a, b: (a > 1) | (b > 1)),
    "xor": (lambda x, y: (x > 1) ^ (y > 1), lambda a, b: (a > 1) ^ (b > 1)),
    "invert": (lambda x, y: ~(x > 1), lambda a, b: ~(a > 1)),
    "T": (lambda x, y: x.T, lambda a, b: a.T),
    "matmul": (lambda x, y: x @ y.T, lambda a, b: a @ b.T),
    "rmatmul": (lambda x, y: A.T @ x, lambda a, b: A.T @ a),
    "array_radd": (lambda x, y: A + x, lambda a, b: A + a),
    "array_rmul": (lambda x, y: np.float64(2.0) * x, lambda a, b: 2.0 * a),
    "clip": (lambda x, y: x.clip(1, 2), lambda a, b: a.clip(1, 2)),
    "astype": (lambda x, y: x.astype("int16"), lambda a, b: a.astype("int16")),
    "argmax": (lambda x, y: x.argmax(axis=1), lambda a, b: a.argmax(axis=1)),
    "argmin": (lambda x, y: x.argmin(), lambda a, b: a.argmin()),
    "reshape": (lambda x, y: x.reshape((2, 6)), lambda a, b: a.reshape((2, 6))),
    "reshape_args": (lambda x, y: x.reshape(6, -1), lambda a, b: a.reshape(6, -1)),
    "flatten": (lambda x, y: x.flatten(), lambda a, b: a.flatten()),
    "dimshuffle": (lambda x, y: x.dimshuffle("x", 1, 0), lambda a, b: a.T[None]),
    "transpose": (lambda x, y: x.transpose(1, 0), lambda a, b: a.transpose(1, 0)),
    "dot": (lambda x, y: x.dot(y.T), lambda a, b: a.dot(b.T)),
    "sum": (lambda x, y: x.sum(axis=0), lambda a, b: a.sum(axis=0)),
    "mean": (lambda x, y: x.mean(keepdims=True), lambda a, b: a.mean(keepdims=True)),
    "var": (lambda x, y: x.var(axis=1), lambda a, b: a.var(axis=1)),
    "std": (lambda x, y: x.std(), lambda a, b: a.std()),
    "max": (lambda x, y: x.max(axis=-1), lambda a, b: a.max(axis=-1)),
    "min": (lambda x, y: x.min(), lambda a, b: a.min()),
    "prod": (lambda x, y: x.prod(axis=0), lambda a, b: a.prod(axis=0)),
    "any": (lambda x, y: (x > 2).any(axis=1), lambda a, b: (a > 2).any(axis=1)),
    "all": (lambda x, y: (x > 0).all(), lambda a, b: (a > 0).all()),
    "repeat": (lambda x, y: x.repeat(2, axis=0), lambda a, b: a.repeat(2, axis=0)),
    "squeeze": (lambda x, y: x[:1].squeeze(0), lambda a, b: a[:1].squeeze(0)),
    "size": (lambda x, y: x.size, lambda a, b: np.int64(a.size)),
    "shape": (lambda x, y: x.shape, lambda a, b: np.array(a.shape)),
    "shape_0": (lambda x, y: x.shape[0] * 2, lambda a, b: np.int64(a.shape[0] * 2)),
    "copy": (lambda x, y: x.copy(), lambda a, b: a.copy()),
    "getitem": (lambda x, y: x[1:, ::-2], lambda a, b: a[1:, ::-2]),
}
INT_OK = {"add", "radd", "sub", "rsub", "mul", "rmul", "floordiv", "rfloordiv", "mod", "rmod",
          "pow_const", "neg", "abs", "lt", "and", "xor", "invert", "T", "matmul", "clip",
          "argmax", "reshape", "flatten", "sum", "max", "prod", "shape"}


@pytest.mark.parametrize("name", sorted(BINARY))
def test_operator(name):
    fn, oracle = BINARY[name]
    pairs = [(A, B)] + ([(IA, IB)] if name in INT_OK else [])
    for a, b in pairs:
        x, y = sym(a), sym(b)
        out = vt.as_tensor_variable(fn(x, y))
        assert_like_numpy(run([x, y], out, a, b), oracle(a, b))


def test_metadata():
    x = vt.tensor("float32", shape=(None, 3, 1), name="x")
    assert x.ndim == 3 and x.dtype == "float32" and x.broadcastable == (False, False, True)
    assert x.type == TensorType("float32", (None, 3, 1))
    assert repr(x) == "x"
    assert vt.ftensor3().type == TensorType("float32", (None,) * 3)
    assert vt.lscalar().dtype == "int64" and vt.bvector().dtype == "int8"
    assert vt.imatrix().dtype == "int32" and vt.dmatrix().dtype == "float64"
    assert vt.row().type.shape == (1, None) and vt.col().type.shape == (None, 1)
    a, b = vt.vectors("a", "b")
    assert (a.name, b.name) == ("a", "b") and a.ndim == 1
    p, q, r = vt.fmatrices(3)
    assert p.dtype == "float32" and p.ndim == 2
    with vmc.config.change(floatX="float32"):
        assert vt.matrix().dtype == "float32"
        assert vt.constant(1.5).dtype == "float32"
    assert vt.scalar(dtype="int8").dtype == "int8"


def test_symbolic_truth_values_and_iteration_are_errors():
    x = vt.vector()
    with pytest.raises(TypeError, match="truth"):
        bool(x > 0)
    with pytest.raises(TypeError):
        iter(x)
    with pytest.raises(TypeError):
        len(x)
    # == is identity (variables are dict keys); vt.eq compares elementwise
    assert (x == x) is True and x != vt.vector()


def test_eval_and_shared():
    x = vt.vector("x")
    assert_like_numpy((x * 2).eval({x: np.arange(3.0)}), np.arange(3.0) * 2)
    w = vmc.shared(np.ones(3), name="w")
    f = vmc.function([x], (w * x).sum(), updates=[(w, w * 2)])
    assert f(np.ones(3)) == 3.0 and f(np.ones(3)) == 6.0
    assert_like_numpy(w.get_value(), np.full(3, 4.0))
    assert vt.constant(np.arange(3)).eval().tolist() == [0, 1, 2]


def test_as_tensor_variable():
    v = vt.as_tensor_variable([1.0, 2.0])
    assert isinstance(v, vt.TensorConstant) and v.dtype == "float64" and v.type.shape == (2,)
    assert vt.as_tensor_variable(3).dtype == "int64"
    assert vt.as_tensor_variable(True).dtype == "bool"
    x = vt.scalar()
    stacked = vt.as_tensor_variable([x, 2 * x])
    assert_like_numpy(run([x], stacked, 1.5), np.array([1.5, 3.0]))
    with pytest.raises(TypeError):
        vt.as_tensor_variable(x, ndim=2)


def test_build_time_type_errors_name_both_operands():
    cases = [
        (lambda: vt.matrix(shape=(3, 4)) + vt.tensor3(shape=(2, 5, 4))),
        (lambda: vt.matrix(shape=(3, 4)) * vt.vector(shape=(5,))),
        (lambda: vt.dot(vt.tensor3(shape=(2, 3, 4)), vt.matrix(shape=(5, 6)))),
        (lambda: vt.dot(vt.matrix(shape=(2, 3)), vt.vector(shape=(4,)))),
        (lambda: vt.matrix(shape=(2, 3)) @ vt.tensor3(shape=(5, 4, 2))),
        (lambda: vt.concatenate([vt.matrix(shape=(2, 3)), vt.matrix(shape=(2, 4))])),
        (lambda: vt.concatenate([vt.matrix(), vt.vector()])),
    ]
    for make in cases:
        with pytest.raises(TypeError) as err:
            make()
        msg = str(err.value)
        assert msg.count("Matrix(") + msg.count("Tensor(") + msg.count("Vector(") >= 2, msg


def test_runtime_errors_name_the_op_and_the_line():
    x, y = vt.matrix(), vt.matrix()
    z = vt.dot(x, y)
    f = vmc.function([x, y], z)
    with pytest.raises(ValueError) as err:
        f(np.ones((2, 3)), np.ones((2, 3)))
    msg = str(err.value)
    assert "dot" in msg.lower() and "test_operators.py" in msg
