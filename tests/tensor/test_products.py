"""dot in every vector/matrix combination, matmul (stacked, broadcasting),
outer, tensordot, batched_dot: values, dtypes, shape rules, gradients and
build-time type errors."""
from __future__ import annotations

import numpy as np
import pytest

import vmc.tensor as vt
from vmc.gradient import verify_grad

from .helpers import assert_like_numpy, check_infer_shape, rand, run, sym

DOT_SHAPES = [((4,), (4,)), ((3, 4), (4,)), ((4,), (4, 2)), ((3, 4), (4, 2)),
              ((), (3, 4)), ((3, 4), ())]


@pytest.mark.parametrize("sa,sb", DOT_SHAPES)
@pytest.mark.parametrize("dtypes", [("float64", "float64"), ("float32", "float32"),
                                    ("int32", "int32"), ("float32", "float64"),
                                    ("int64", "float32")])
def test_dot(sa, sb, dtypes):
    a, b = rand(sa, dtypes[0]), rand(sb, dtypes[1])
    x, y = sym(a), sym(b)
    out = vt.dot(x, y)
    assert_like_numpy(run([x, y], out, a, b), np.dot(a, b))
    assert_like_numpy(run([x, y], x.dot(y), a, b), np.dot(a, b))
    if a.ndim and b.ndim:
        check_infer_shape(out, [x, y], [a, b])


@pytest.mark.parametrize("sa,sb", DOT_SHAPES[:4])
def test_dot_grad(sa, sb):
    verify_grad(vt.dot, [rand(sa), rand(sb)])


MATMUL_SHAPES = [((2, 3, 4), (2, 4, 5)), ((2, 3, 4), (4, 5)), ((3, 4), (2, 4, 5)),
                 ((2, 3, 4), (4,)), ((4,), (2, 4, 5)), ((2, 1, 3, 4), (5, 4, 2)),
                 ((3, 4), (4, 2)), ((4,), (4, 2))]


def _broadcastable_sym(v):
    return vt.tensor(v.dtype, tuple(1 if s == 1 else None for s in v.shape))


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES)
def test_matmul(sa, sb):
    a, b = rand(sa), rand(sb)
    x, y = _broadcastable_sym(a), _broadcastable_sym(b)
    out = x @ y
    assert_like_numpy(run([x, y], out, a, b), np.matmul(a, b))
    assert_like_numpy(run([x, y], vt.matmul(x, y), a, b), np.matmul(a, b))
    check_infer_shape(out, [x, y], [a, b])

    def fn(p, q):
        # restore the broadcastable dims verify_grad's inputs do not have
        p = vt.specify_shape(p, x.type.shape)
        q = vt.specify_shape(q, y.type.shape)
        return vt.matmul(p, q)
    verify_grad(fn, [a, b])


def test_matmul_dtypes_and_errors():
    a, b = rand((2, 3, 4), "float32"), rand((2, 4, 2), "int32")
    x, y = sym(a), sym(b)
    assert_like_numpy(run([x, y], x @ y, a, b), a @ b)
    with pytest.raises(TypeError, match="scalar"):
        vt.matmul(vt.scalar(), vt.matrix())
    p, q = vt.tensor3(shape=(2, 3, 4)), vt.tensor3(shape=(2, 5, 2))
    with pytest.raises(TypeError) as err:
        p @ q
    assert str(p.type) in str(err.value) and str(q.type) in str(err.value)
    with pytest.raises(TypeError, match="batch"):
        vt.tensor3(shape=(2, 3, 4)) @ vt.tensor3(shape=(3, 4, 2))
    # A batch dim that is 1 only at run time does not broadcast.
    with pytest.raises(ValueError, match="broadcast"):
        run([x, y], x @ y, rand((1, 3, 4), "float32"), b)


def test_dot_above_two_dims_is_numpys_dot():
    """Theano's (and numpy's) dot of N-d tensors: a sum over the last axis of
    the first and the second-to-last of the second (the lstm's 3-d x 2-d)."""
    for sa, sb in (((2, 3, 4), (4, 5)), ((5, 3), (2, 3, 4)), ((2, 3, 4), (2, 5, 4, 6)),
                   ((3,), (2, 3, 4))):
        a, b = rand(sa), rand(sb)
        x, y = sym(a), sym(b)
        assert_like_numpy(run([x, y], vt.dot(x, y), a, b), np.dot(a, b))
        verify_grad(vt.dot, [a, b])
    p, q = vt.tensor3(shape=(2, 3, 4)), vt.matrix(shape=(5, 6))
    with pytest.raises(TypeError) as err:
        vt.dot(p, q)
    assert str(p.type) in str(err.value) and str(q.type) in str(err.value)
    with pytest.raises(TypeError, match="inner dimensions"):
        vt.dot(vt.matrix(shape=(2, 3)), vt.matrix(shape=(4, 2)))


def test_outer():
    a, b = rand((3,)), rand((2, 2))
    x, y = sym(a), sym(b)
    assert_like_numpy(run([x, y], vt.outer(x, y), a, b), np.outer(a, b))
    verify_grad(vt.outer, [rand((3,)), rand((4,))])


TENSORDOT_CASES = [((2, 3, 4), (3, 4, 5), 2), ((2, 3, 4), (4, 5), 1), ((3, 4), (3, 4), 2),
                   ((2, 3), (4, 5), 0), ((2, 3, 4), (4, 2, 3), ([0, 1], [1, 2])),
                   ((3, 4), (4, 3), ([1, 0], [0, 1])), ((2, 3, 4), (3,), ([1], [0]))]


@pytest.mark.parametrize("sa,sb,axes", TENSORDOT_CASES)
def test_tensordot(sa, sb, axes):
    a, b = rand(sa), rand(sb)
    x, y = sym(a), sym(b)
    out = vt.tensordot(x, y, axes)
    assert_like_numpy(run([x, y], out, a, b), np.tensordot(a, b, axes))
    # with static shapes the result's static shape is known
    xs, ys = sym(a, static=True), sym(b, static=True)
    assert vt.tensordot(xs, ys, axes).type.shape == np.tensordot(a, b, axes).shape
    verify_grad(lambda p, q: vt.tensordot(p, q, axes), [a, b])


def test_tensordot_errors():
    with pytest.raises(TypeError, match="differ in length"):
        vt.tensordot(vt.matrix(shape=(2, 3)), vt.matrix(shape=(4, 2)), 1)
    with pytest.raises(ValueError):
        vt.tensordot(vt.matrix(), vt.matrix(), ([0], [0, 1]))


BATCHED = [((3, 2, 4), (3, 4, 5)), ((3, 2, 4), (3, 4)), ((3, 4), (3, 4, 5)), ((3, 4), (3, 4))]


@pytest.mark.parametrize("sa,sb", BATCHED)
def test_batched_dot(sa, sb):
    a, b = rand(sa), rand(sb)
    x, y = sym(a), sym(b)
    expected = np.einsum({(3, 3): "bij,bjk->bik", (3, 2): "bij,bj->bi",
                          (2, 3): "bj,bjk->bk", (2, 2): "bj,bj->b"}[(a.ndim, b.ndim)], a, b)
    assert_like_numpy(run([x, y], vt.batched_dot(x, y), a, b), expected)
    verify_grad(vt.batched_dot, [a, b])
    with pytest.raises(TypeError):
        vt.batched_dot(vt.vector(), vt.matrix())
