"""Shape ops against numpy: reshape flatten dimshuffle expand_dims squeeze
concatenate stack split repeat tile arange zeros ones full alloc eye
identity_like diag trace nonzero tril triu shape_padleft; their shape rules
and gradients."""
from __future__ import annotations

import numpy as np
import pytest

import vmc.tensor as vt
from vmc.gradient import verify_grad

from .helpers import assert_like_numpy, check_infer_shape, rand, run, sym

V = rand((2, 3, 4))

# name -> (function of x, numpy of the value); checked forward, shape rule and
# (for float x) gradient.
UNARY = {
    "reshape": (lambda x: vt.reshape(x, (4, 6)), lambda v: v.reshape(4, 6)),
    "reshape_m1": (lambda x: x.reshape((-1, 4)), lambda v: v.reshape(-1, 4)),
    "reshape_sym": (lambda x: x.reshape((x.shape[0], -1)), lambda v: v.reshape(2, -1)),
    "reshape_args": (lambda x: x.reshape(3, 8), lambda v: v.reshape(3, 8)),
    "flatten": (lambda x: x.flatten(), lambda v: v.flatten()),
    "flatten2": (lambda x: vt.flatten(x, 2), lambda v: v.reshape(2, -1)),
    "dimshuffle": (lambda x: x.dimshuffle(2, "x", 0, 1), lambda v: v.transpose(2, 0, 1)[:, None]),
    "transpose": (lambda x: x.T, lambda v: v.T),
    "transpose_axes": (lambda x: x.transpose(1, 0, 2), lambda v: v.transpose(1, 0, 2)),
    "expand_dims": (lambda x: vt.expand_dims(x, (0, -1)), lambda v: np.expand_dims(v, (0, -1))),
    "shape_padleft": (lambda x: vt.shape_padleft(x, 2), lambda v: v[None, None]),
    "shape_padright": (lambda x: vt.shape_padright(x), lambda v: v[..., None]),
    "squeeze": (lambda x: vt.squeeze(x[:, :1], 1), lambda v: v[:, 0]),
    "concatenate": (lambda x: vt.concatenate([x, x[:, :1] * 2], axis=1),
                    lambda v: np.concatenate([v, v[:, :1] * 2], axis=1)),
    "concatenate_neg": (lambda x: vt.concatenate([x, x], axis=-1),
                        lambda v: np.concatenate([v, v], axis=-1)),
    "stack": (lambda x: vt.stack([x, 2 * x], axis=1), lambda v: np.stack([v, 2 * v], axis=1)),
    "stack_scalars": (lambda x: vt.stack([x[0, 0, 0], x[1, 2, 3]]),
                      lambda v: np.stack([v[0, 0, 0], v[1, 2, 3]])),
    "split0": (lambda x: vt.split(x, [1, 2], 2, axis=1)[1], lambda v: v[:, 1:]),
    "split_eq": (lambda x: vt.split(x, 2, axis=-1)[0], lambda v: np.split(v, 2, axis=-1)[0]),
    "repeat": (lambda x: vt.repeat(x, 2, axis=1), lambda v: np.repeat(v, 2, axis=1)),
    "repeat_vec": (lambda x: vt.repeat(x, np.array([1, 0, 3]), axis=1),
                   lambda v: np.repeat(v, [1, 0, 3], axis=1)),
    "repeat_flat": (lambda x: x.repeat(2), lambda v: np.repeat(v, 2)),
    "tile": (lambda x: vt.tile(x, (2, 1, 3)), lambda v: np.tile(v, (2, 1, 3))),
    "tile_short": (lambda x: vt.tile(x, 2), lambda v: np.tile(v, 2)),
    "tile_long": (lambda x: vt.tile(x[0], (2, 1, 2)), lambda v: np.tile(v[0], (2, 1, 2))),
    "diag_extract": (lambda x: vt.diag(x[0], 1), lambda v: np.diag(v[0], 1)),
    "diag_extract_neg": (lambda x: vt.diag(x[1], -1), lambda v: np.diag(v[1], -1)),
    "diag_alloc": (lambda x: vt.diag(x[0, 0], -1), lambda v: np.diag(v[0, 0], -1)),
    "diagonal3": (lambda x: vt.diagonal(x, 0, 1, 2), lambda v: np.diagonal(v, 0, 1, 2)),
    "trace": (lambda x: vt.trace(x[0]), lambda v: np.trace(v[0])),
    "trace_off": (lambda x: vt.trace(x[1], 1), lambda v: np.trace(v[1], 1)),
    "tril": (lambda x: vt.tril(x[0]), lambda v: np.tril(v[0])),
    "triu": (lambda x: vt.triu(x, -1), lambda v: np.triu(v, -1)),
    "alloc": (lambda x: vt.alloc(vt.specify_broadcastable(x[0, :1], 0), 3, 5, 4),
              lambda v: np.broadcast_to(v[0, :1], (3, 5, 4))),
    "full_like": (lambda x: vt.full_like(x, 2.5), lambda v: np.full_like(v, 2.5)),
    "zeros_like": (lambda x: vt.zeros_like(x), lambda v: np.zeros_like(v)),
    "ones_like": (lambda x: vt.ones_like(x), lambda v: np.ones_like(v)),
    "identity_like": (lambda x: vt.identity_like(x[0]), lambda v: np.eye(3, 4, dtype=v.dtype)),
}
NO_GRAD = {"zeros_like", "ones_like", "full_like", "identity_like"}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_shape_op_forward(name):
    fn, oracle = UNARY[name]
    for dtype in ("float64", "float32", "int32"):
        v = V.astype(dtype) if dtype != "int32" else (V * 10).astype("int32")
        x = sym(v)
        out = fn(x)
        assert_like_numpy(run([x], out, v), oracle(v))
        # the same with a static input shape: the static output shape is right
        xs = sym(v, static=True)
        exp_shape = np.shape(oracle(v))
        got_static = fn(xs).type.shape
        assert all(s is None or s == e for s, e in zip(got_static, exp_shape)), got_static
    if out.owner is not None:
        check_infer_shape(out, [x], [v])


@pytest.mark.parametrize("name", sorted(set(UNARY) - NO_GRAD))
def test_shape_op_grad(name):
    verify_grad(UNARY[name][0], [V])


def test_static_shapes_are_kept():
    x = vt.tensor3(shape=(2, 3, 4))
    assert x.reshape((4, -1)).type.shape == (4, 6)
    assert x.flatten().type.shape == (24,)
    assert vt.tile(x, (2, 1, 3)).type.shape == (4, 3, 12)
    assert vt.repeat(x, 2, axis=0).type.shape == (4, 3, 4)
    assert vt.split(x, [1, 2], 2, axis=1)[1].type.shape == (2, 2, 4)
    assert vt.diag(x[0]).type.shape == (3,)
    assert vt.concatenate([x, x], axis=2).type.shape == (2, 3, 8)
    assert x[::2, 1:, -1].type.shape == (1, 2)
    assert vt.matmul(x, vt.matrix(shape=(4, 5))).type.shape == (2, 3, 5)


def test_squeeze_checks_unknown_dims_at_run_time():
    x = vt.matrix()
    out = vt.squeeze(x, 0)
    assert out.type.ndim == 1
    assert_like_numpy(run([x], out, np.ones((1, 3))), np.ones(3))
    with pytest.raises(ValueError):
        run([x], out, np.ones((2, 3)))
    with pytest.raises(ValueError, match="not 1"):
        vt.squeeze(vt.matrix(shape=(2, 3)), 0)
    # axis=None drops the dims known to be 1
    assert vt.squeeze(vt.tensor(shape=(1, None, 1))).type.ndim == 1


def test_split_forms_and_checks():
    v = rand((6, 2))
    x = sym(v)
    pieces = vt.split(x, 3)
    for got, exp in zip(run([x], pieces, v), np.split(v, 3)):
        assert_like_numpy(got, exp)
    sizes = vt.lvector()
    pieces = vt.split(x, sizes, 2)
    got = run([x, sizes], pieces, v, np.array([4, 2]))
    assert_like_numpy(got[0], v[:4])
    assert_like_numpy(got[1], v[4:])
    with pytest.raises(ValueError, match="sizes"):
        run([x, sizes], pieces, v, np.array([4, 1]))
    with pytest.raises(ValueError):
        run([x], vt.split(x, 4), v)                      # 6 rows do not cut in 4
    check_infer_shape(pieces[0], [x, sizes], [v, np.array([4, 2])])
    # the gradient flows into each piece's rows, also from only one piece
    verify_grad(lambda a: vt.split(a, [2, 4], 2)[1] * 3, [v])


def test_creation_ops():
    n = vt.lscalar()
    cases = [
        (vt.arange(n), lambda k: np.arange(k)),
        (vt.arange(1, n, 2), lambda k: np.arange(1, k, 2)),
        (vt.arange(n, 0, -1), lambda k: np.arange(k, 0, -1)),
        (vt.arange(0.5, n), lambda k: np.arange(0.5, k)),
        (vt.zeros((n, 2)), lambda k: np.zeros((k, 2))),
        (vt.ones(n, dtype="int32"), lambda k: np.ones(k, dtype="int32")),
        (vt.full((2, n), 3), lambda k: np.full((2, k), 3)),
        (vt.full((2, n), 1.5), lambda k: np.full((2, k), 1.5)),
        (vt.full((2, n), n), lambda k: np.full((2, k), k)),
        (vt.eye(n), lambda k: np.eye(k)),
        (vt.eye(n, 3, 1, dtype="int8"), lambda k: np.eye(k, 3, 1, dtype="int8")),
        (vt.alloc(vt.constant(np.arange(3.0)), 2, 3), lambda k: np.tile(np.arange(3.0), (2, 1))),
    ]
    for out, oracle in cases:
        for k in (0, 1, 5):
            assert_like_numpy(run([n], out, k), oracle(k))
        check_infer_shape(out, [n], [5])
    m = vt.matrix()
    full = vt.full(m.shape, 7.0)
    assert_like_numpy(run([m], full, np.ones((2, 3))), np.full((2, 3), 7.0))


def test_identity_like_needs_a_matrix():
    with pytest.raises(TypeError, match="matrix"):
        vt.identity_like(vt.vector())


def test_alloc_broadcasts_only_static_ones():
    v = vt.vector()
    with pytest.raises(ValueError, match="broadcast"):
        run([v], vt.alloc(v, 2, 3), np.ones(1))
    assert_like_numpy(run([v], vt.alloc(v, 2, 3), np.ones(3)), np.ones((2, 3)))


def test_nonzero():
    v = np.array([[0, 1.5, 0], [2, 0, -1]])
    x = sym(v)
    idx = vt.nonzero(x)
    got = run([x], list(idx), v)
    for g, e in zip(got, np.nonzero(v)):
        assert_like_numpy(g, e.astype("int64"))
    assert_like_numpy(run([x], vt.nonzero(x, return_matrix=True), v),
                      np.array(np.nonzero(v), dtype="int64"))
    assert_like_numpy(run([x], vt.flatnonzero(x), v), np.flatnonzero(v))
    assert_like_numpy(run([x], vt.nonzero_values(x), v), v[v != 0])
    assert_like_numpy(run([x], x.nonzero()[1], v), np.nonzero(v)[1])
    check_infer_shape(idx[0], [x], [v])
    with pytest.raises(TypeError):
        vt.nonzero(vt.scalar())


def test_repeat_errors_and_shape_rule():
    x = vt.matrix()
    r = vt.lvector()
    out = vt.repeat(x, r, axis=0)
    v = rand((3, 2))
    assert_like_numpy(run([x, r], out, v, np.array([2, 0, 1])), np.repeat(v, [2, 0, 1], axis=0))
    check_infer_shape(out, [x, r], [v, np.array([2, 0, 1])])
    check_infer_shape(out, [x, r], [v, np.array([3])])
    with pytest.raises(TypeError):
        vt.repeat(x, 1.5)
