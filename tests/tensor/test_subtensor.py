"""Indexing against numpy: basic slices with steps, negative indices, None,
Ellipsis, integer-array and boolean-mask indexing, set_subtensor and
inc_subtensor (repeated indices accumulate as np.add.at); shape rules and
gradients."""
from __future__ import annotations

import numpy as np
import pytest

import vmc
import vmc.tensor as vt
from vmc.gradient import verify_grad

from .helpers import assert_like_numpy, check_infer_shape, rand, run, sym

V = rand((4, 5, 3))
I0 = np.array([3, 0, 3, 1])           # repeated entries on purpose
I1 = np.array([[0, 4], [2, 2]])
MASK = V[:, :, 0] > 0

# name -> index(k, m): ``k`` is 1 or the symbolic int scalar given the value 1,
# ``m`` is numpy or vmc.tensor (for arange).
INDEXES = {
    "int": lambda k, m: 2,
    "neg_int": lambda k, m: -1,
    "sym_int": lambda k, m: k,
    "slice": lambda k, m: slice(1, 3),
    "step": lambda k, m: (slice(None, None, 2), slice(1, None, 3)),
    "neg_step": lambda k, m: (slice(None, None, -1), slice(-2, 0, -2)),
    "neg_bounds": lambda k, m: (slice(-3, -1), -2),
    "big_bounds": lambda k, m: (slice(-10, 10), slice(7, None)),
    "sym_slice": lambda k, m: (slice(k, None), slice(None, -k, k + 1)),
    "sym_neg_step": lambda k, m: slice(None, None, -k - 1),
    "sym_neg_start": lambda k, m: (slice(-k - 2, None, -k), slice(k * 9, -k * 9, -1)),
    "none": lambda k, m: (None, 1, None, slice(None, 2)),
    "ellipsis": lambda k, m: (Ellipsis, 1),
    "ellipsis_mid": lambda k, m: (0, Ellipsis, slice(1, None)),
    "array": lambda k, m: I0,
    "array_2d": lambda k, m: (slice(None), I1),
    "array_pair": lambda k, m: (I0, I0 % 3 + 1),
    "arange_pair": lambda k, m: (m.arange(4), np.array([0, 1, 4, 2])),
    "array_int_apart": lambda k, m: (I0, slice(None), 2),
    "array_none_apart": lambda k, m: (I0[:2], None, I0[:2] % 3),
    "array_last": lambda k, m: (Ellipsis, np.array([2, 0])),
    "mask_2d": lambda k, m: MASK,
    "mask_1d": lambda k, m: (slice(None), V[0, :, 1] > 0),
    "mask_and_slice": lambda k, m: (MASK, slice(0, 2)),
}


@pytest.mark.parametrize("name", sorted(INDEXES))
def test_getitem(name):
    k = vt.lscalar("k")
    index = INDEXES[name](k, vt)
    for dtype in ("float64", "int32"):
        v = V.astype(dtype)
        x = sym(v)
        out = x[index]
        expected = v[INDEXES[name](1, np)]
        assert_like_numpy(run([x, k], out, v, 1), expected)
    check_infer_shape(out, [x, k], [v, 1])
    xs = sym(V, static=True)
    static = xs[INDEXES[name](k, vt)].type.shape
    assert len(static) == expected.ndim
    assert all(s is None or s == e for s, e in zip(static, expected.shape)), static


@pytest.mark.parametrize("name", sorted(INDEXES))
def test_getitem_grad(name):
    index = INDEXES[name](1, vt)
    verify_grad(lambda x: x[index], [V])


SETS = {
    "slice": lambda k: (slice(1, 3),),
    "step": lambda k: (slice(None, None, 2), -1),
    "int_sym": lambda k: (k,),
    "array": lambda k: (I0,),
    "array_pair": lambda k: (I0, np.array([0, 0, 0, 4])),
    "mask": lambda k: (MASK,),
}


@pytest.mark.parametrize("name", sorted(SETS))
@pytest.mark.parametrize("mode", ["set", "inc"])
def test_set_and_inc_subtensor(name, mode):
    k = vt.lscalar("k")
    index = SETS[name](k)
    np_index = SETS[name](1)
    x = sym(V)
    target_shape = V[np_index].shape
    y_val = rand(target_shape[-1:], "float64", 1, 3)       # broadcasts over the rest
    y = sym(y_val)
    write = vt.set_subtensor if mode == "set" else vt.inc_subtensor
    out = write(x[index], y)
    expected = V.copy()
    if mode == "set":
        expected[np_index] = y_val
    else:
        np.add.at(expected, np_index, y_val)
    assert_like_numpy(run([x, y, k], out, V, y_val, 1), expected)
    check_infer_shape(out, [x, y, k], [V, y_val, 1])
    verify_grad(lambda a, b: write(a[np_index], b), [V, y_val])


def test_inc_subtensor_accumulates_repeated_indices():
    x = vt.vector()
    idx = vt.lvector()
    out = vt.inc_subtensor(x[idx], 1.0)
    got = run([x, idx], out, np.zeros(4), np.array([0, 2, 2, 2, 3, 0]))
    assert_like_numpy(got, np.array([2.0, 0.0, 3.0, 1.0]))
    # the input value is not changed
    v = np.zeros(4)
    run([x, idx], out, v, np.array([1]))
    assert not v.any()


def test_log_prob_of_targets():
    # the idiom of classification losses: log(p)[arange(n), t]
    p, t = vt.matrix(), vt.lvector()
    n = p.shape[0]
    nll = -vt.mean(vt.log(p)[vt.arange(n), t])
    pv = rand((5, 3), "float64", 0.1, 1.0)
    tv = np.array([0, 2, 1, 1, 0])
    assert_like_numpy(run([p, t], nll, pv, tv), -np.mean(np.log(pv)[np.arange(5), tv]))
    g = run([p, t], vmc.grad(nll, p), pv, tv)
    expected = np.zeros_like(pv)
    expected[np.arange(5), tv] = -1.0 / (5 * pv[np.arange(5), tv])
    assert_like_numpy(g, expected)


def test_index_errors():
    x = vt.matrix(shape=(2, 3))
    with pytest.raises(IndexError):
        x[0, 0, 0]
    with pytest.raises(TypeError):
        x[1.5]
    with pytest.raises(TypeError, match="indexed"):
        vt.set_subtensor(x, 1.0)
    with pytest.raises(TypeError):
        vt.set_subtensor(x[0], vt.matrix())
