"""vt.random.RandomStream: seeded reproducibility, fresh values per call,
distribution sanity (means within a few standard errors), shapes and dtypes,
shared state left unchanged by a failed call, reparametrized gradients."""
from __future__ import annotations

import numpy as np
import pytest

import vmc
import vmc.tensor as vt
from vmc.gradient import NullGradientError
from vmc.tensor.random import RandomGeneratorType

from .helpers import assert_like_numpy, check_infer_shape


def _draws(seed):
    s = vt.random.RandomStream(seed)
    return [s.uniform(-1, 2, size=(3, 2)), s.normal(1.0, 2.0, size=(4,)),
            s.integers(0, 10, size=(5,)), s.binomial(5, 0.3, size=(2, 2)),
            s.choice(7, size=(3,), replace=False), s.permutation(6),
            s.choice(vt.constant(np.array([10, 20, 30])), size=4, p=[0.2, 0.3, 0.5])]


def test_same_seed_same_sequence_and_fresh_values_per_call():
    f, g = vmc.function([], _draws(42)), vmc.function([], _draws(42))
    first, second = f(), f()
    for a, b in zip(first, g()):
        assert_like_numpy(a, b)                     # same seed, same values
    for a, b in zip(second, g()):
        assert_like_numpy(a, b)                     # ... and the same sequence
    assert not np.array_equal(first[0], second[0])  # fresh values per call
    assert not np.array_equal(first[1], second[1])
    other = vmc.function([], _draws(43))()
    assert not np.array_equal(first[1], other[1])


def test_dtypes_and_shapes():
    s = vt.random.RandomStream(0)
    n = vt.lscalar()
    cases = [
        (s.uniform(size=(2, 3)), "float64", (2, 3)),
        (s.uniform(0, 1, size=(2,), dtype="float32"), "float32", (2,)),
        (s.normal(size=(n, 2)), "float64", (5, 2)),
        (s.normal(vt.constant(np.zeros(3)), 1.0), "float64", (3,)),
        (s.normal(vt.constant(np.zeros((2, 1))), vt.constant(np.ones(3))), "float64", (2, 3)),
        (s.integers(5, size=n), "int64", (5,)),
        (s.integers(-3, 3, size=(n,), dtype="int32"), "int32", (5,)),
        (s.binomial(10, 0.5), "int64", ()),
        (s.choice(vt.constant(np.array([1.5, 2.5])), size=(n, 2)), "float64", (5, 2)),
        (s.choice(n), "int64", ()),
        (s.permutation(n), "int64", (5,)),
        (s.permutation(vt.constant(np.arange(6.0).reshape(3, 2))), "float64", (3, 2)),
    ]
    f = vmc.function([n], [c[0] for c in cases])
    for (out, dtype, shape), got in zip(cases, f(5)):
        assert out.type.dtype == dtype and got.dtype == dtype, (out, got.dtype)
        assert got.shape == shape
        assert all(s is None or s == g for s, g in zip(out.type.shape, shape))
    with vmc.config.change(floatX="float32"):
        assert s.normal(size=(2,)).type.dtype == "float32"
    check_infer_shape(cases[2][0], [n], [5])
    check_infer_shape(cases[4][0], [n], [5])
    check_infer_shape(cases[10][0], [n], [5])


def _mean_ok(samples, mean, var, k=5.0):
    se = np.sqrt(var / samples.size)
    assert abs(samples.mean() - mean) < k * se, (samples.mean(), mean, se)


def test_distributions():
    s = vt.random.RandomStream(123)
    n = 20000
    u = s.uniform(-1.0, 3.0, size=(n,))
    z = s.normal(2.0, 0.5, size=(n,))
    i = s.integers(0, 10, size=(n,))
    b = s.binomial(8, 0.25, size=(n,))
    c = s.choice(3, size=(n,), p=vt.constant(np.array([0.1, 0.6, 0.3])))
    p = s.permutation(50)
    us, zs, is_, bs, cs, ps = vmc.function([], [u, z, i, b, c, p])()
    assert us.min() >= -1 and us.max() < 3
    _mean_ok(us, 1.0, 16 / 12)
    _mean_ok(zs, 2.0, 0.25)
    assert abs(zs.std() - 0.5) < 0.02
    assert is_.min() == 0 and is_.max() == 9
    _mean_ok(is_, 4.5, (100 - 1) / 12)
    _mean_ok(bs, 2.0, 8 * 0.25 * 0.75)
    for k, pk in enumerate([0.1, 0.6, 0.3]):
        _mean_ok((cs == k).astype(float), pk, pk * (1 - pk))
    assert sorted(ps) == list(range(50))


def test_choice_without_replacement():
    s = vt.random.RandomStream(5)
    c = s.choice(vt.constant(np.arange(10) * 3), size=(10,), replace=False)
    f = vmc.function([], c)
    for _ in range(3):
        assert sorted(f()) == list(range(0, 30, 3))


def test_symbolic_parameters():
    s = vt.random.RandomStream(9)
    loc, scale = vt.vector(), vt.scalar()
    out = s.normal(loc, scale, size=(1000, 3))
    got = vmc.function([loc, scale], out)(np.array([-5.0, 0.0, 5.0]), 0.1)
    np.testing.assert_allclose(got.mean(axis=0), [-5.0, 0.0, 5.0], atol=0.02)
    # a parameter dim that is 1 only at run time does not broadcast
    with pytest.raises(ValueError, match="broadcast"):
        vmc.function([loc, scale], out)(np.array([1.0]), 0.1)
    with pytest.raises(TypeError):
        s.normal(vt.constant(np.zeros(4)), 1.0, size=(2, 3))
    with pytest.raises(TypeError):
        s.integers(0.5, 3)


def test_a_failed_call_leaves_the_generator_unchanged():
    s = vt.random.RandomStream(7)
    x = vt.vector()
    u = s.uniform(size=(3,))
    f = vmc.function([x], [u, vt.reshape(x, (2, 2))])
    g = vmc.function([], _first_uniform(7))
    with pytest.raises(ValueError):
        f(np.ones(3))                                   # the reshape fails
    assert_like_numpy(f(np.ones(4))[0], g())           # the first draw comes now


def _first_uniform(seed):
    return vt.random.RandomStream(seed).uniform(size=(3,))


def test_state_is_a_shared_generator():
    s = vt.random.RandomStream(3)
    u = s.uniform(size=(2,))
    (rng, new_rng), = s.state_updates
    assert isinstance(rng.type, RandomGeneratorType) and rng.default_update is new_rng
    assert isinstance(rng.get_value(), np.random.Generator)
    saved = rng.get_value()
    f = vmc.function([], u)
    a = f()
    rng.set_value(saved)
    assert_like_numpy(f(), a)                           # restoring the state replays
    with pytest.raises(TypeError):
        rng.set_value(np.zeros(3))
    s.seed(3)
    assert_like_numpy(f(), a)                           # so does reseeding
    # without default updates the state does not move
    h = vmc.function([], u, no_default_updates=True)
    assert_like_numpy(h(), h())


def test_function_copy_has_its_own_generator():
    s = vt.random.RandomStream(1)
    f = vmc.function([], s.normal(size=(2,)))
    f()
    g = f.copy()
    assert_like_numpy(f(), g())


def test_pickled_function_carries_the_generator_state():
    import pickle
    s = vt.random.RandomStream(4)
    f = vmc.function([], s.uniform(size=(2,)))
    f()
    g = pickle.loads(pickle.dumps(f))
    assert_like_numpy(f(), g())


def test_reparametrized_gradients():
    s = vt.random.RandomStream(2)
    loc, scale = vt.scalar(), vt.scalar()
    z = s.normal(loc, scale, size=(5,))
    lo, hi = vt.scalar(), vt.scalar()
    u = s.uniform(lo, hi, size=(5,))
    grads = vmc.grad(vt.sum(z) + vt.sum(u * u), [loc, scale, lo, hi])
    f = vmc.function([loc, scale, lo, hi], [z, u] + grads)
    zv, uv, gl, gs, glo, ghi = f(1.0, 2.0, -1.0, 3.0)
    assert_like_numpy(gl, np.float64(5.0))
    assert_like_numpy(gs, np.sum((zv - 1.0) / 2.0))
    t = (uv + 1.0) / 4.0
    assert_like_numpy(glo, np.sum(2 * uv * (1 - t)))
    assert_like_numpy(ghi, np.sum(2 * uv * t))


def test_draws_without_a_gradient_say_so():
    s = vt.random.RandomStream(2)
    p = vt.vector()
    c = s.choice(vt.constant(np.array([1.0, 2.0, 3.0])), size=(2,), p=p)
    with pytest.raises(NullGradientError):
        vmc.grad(vt.sum(c), p)
    # an integer sample carries no gradient at all
    q = vt.scalar()
    b = s.binomial(3, q, size=(2,))
    assert b.type.dtype == "int64"
    g = vmc.grad(vt.sum(b).astype("float64") * q, q)      # only the product rule's term
    bv, gv = vmc.function([q], [b, g])(0.5)
    assert_like_numpy(gv, np.float64(bv.sum()))
