"""Theano's random streams (``shared_randomstreams.RandomStreams`` and
``sandbox.rng_mrg.MRG_RandomStreams``): size first, Theano's parameter
names and positions, Theano's dtypes; the samples checked by their moments
with fixed seeds (so the checks are deterministic)."""
from __future__ import annotations

import numpy as np
import pytest

import vmc as theano
import vmc.tensor as T
from vmc.sandbox.rng_mrg import MRG_RandomStreams
from vmc.tensor.shared_randomstreams import RandomStreams

STREAMS = [RandomStreams, MRG_RandomStreams]


@pytest.mark.parametrize("Streams", STREAMS)
def test_positional_arguments_mean_what_they_meant_in_theano(Streams):
    srng = Streams(1234)
    n = 20000
    u = srng.uniform((n,), 2.0, 5.0)
    z = srng.normal((n,), 1.0, 3.0)
    b = srng.binomial((n,), 1, 0.25)
    f = theano.function([], [u, z, b])
    uv, zv, bv = f()
    assert uv.shape == zv.shape == bv.shape == (n,)
    assert 2.0 <= uv.min() and uv.max() < 5.0 and abs(uv.mean() - 3.5) < 0.05
    assert abs(zv.mean() - 1.0) < 0.1 and abs(zv.std() - 3.0) < 0.1
    assert bv.dtype == np.int64 and set(np.unique(bv)) == {0, 1} and abs(bv.mean() - 0.25) < 0.02


@pytest.mark.parametrize("Streams", STREAMS)
@pytest.mark.parametrize("floatX", ["float64", "float32"])
def test_dtypes_follow_theano(Streams, floatX):
    with theano.config.change(floatX=floatX):
        srng = Streams(5)
        x = T.matrix()
        u = srng.uniform(x.shape)
        z = srng.normal(size=x.shape, avg=T.dscalar())
        b = srng.binomial(size=x.shape, p=0.5, dtype=theano.config.floatX)
        assert u.dtype == floatX and b.dtype == floatX and z.dtype == "float64"
        assert u.broadcastable == x.broadcastable


@pytest.mark.parametrize("Streams", STREAMS)
def test_a_seed_gives_one_sequence_and_each_call_draws_anew(Streams):
    def draws(seed):
        srng = Streams(seed)
        f = theano.function([], srng.uniform((4,)))
        return f(), f(), srng, f

    a1, a2, srng, f = draws(7)
    b1, b2, _, _ = draws(7)
    np.testing.assert_array_equal(a1, b1)
    np.testing.assert_array_equal(a2, b2)
    assert not np.array_equal(a1, a2)
    srng.seed(7)                            # restarts every stream made so far
    np.testing.assert_array_equal(f(), a1)
    assert not np.array_equal(draws(8)[0], a1)


def test_shared_streams_other_distributions():
    srng = RandomStreams(3)
    n = 20000
    ri = srng.random_integers((n,), 1, 3)
    bn = srng.binomial((n,), 5, 0.3)
    ch = srng.choice((n,), 4)
    perm = srng.permutation(n=6)
    perms = srng.permutation((300, 2), 4)
    mu = srng.multinomial((n,), 3, [0.2, 0.5, 0.3])
    riv, bnv, chv, pv, muv, psv = theano.function([], [ri, bn, ch, perm, mu, perms])()
    assert psv.shape == (300, 2, 4) and (np.sort(psv, axis=-1) == np.arange(4)).all()
    assert abs((psv[..., 0] == 3).mean() - 0.25) < 0.05         # each first value alike
    assert set(np.unique(riv)) == {1, 2, 3}                      # high is included
    assert abs(bnv.mean() - 1.5) < 0.05 and bnv.max() <= 5
    assert set(np.unique(chv)) == {0, 1, 2, 3}
    assert sorted(pv) == list(range(6))
    assert muv.shape == (n, 3) and (muv.sum(axis=1) == 3).all()
    np.testing.assert_allclose(muv.mean(axis=0), [0.6, 1.5, 0.9], atol=0.05)


def test_mrg_multinomial_choice_and_truncated_normal():
    srng = MRG_RandomStreams(11)
    p = T.dmatrix()
    P = np.array([[0.1, 0.2, 0.7], [0.5, 0.25, 0.25]])
    counts = srng.multinomial(pvals=p, n=2)
    picks = srng.choice(2, p=p, replace=False)
    tn = srng.truncated_normal((20000,), 1.0, 2.0)
    cut = srng.normal((20000,), 0.0, 1.0, truncate=True)
    f = theano.function([p], [counts, picks])
    runs = [f(P) for _ in range(400)]
    c = np.array([r[0] for r in runs])
    assert c.shape == (400, 2, 3) and (c.sum(axis=2) == 2).all()
    np.testing.assert_allclose(c.mean(axis=0), 2 * P, atol=0.1)
    k = np.array([r[1] for r in runs])
    assert (k[:, :, 0] != k[:, :, 1]).all()                     # without replacement
    assert abs((k[:, 0, 0] == 2).mean() - 0.7) < 0.06            # the first pick follows p
    tnv, cutv = theano.function([], [tn, cut])()
    assert abs(tnv.mean() - 1.0) < 0.05 and abs(tnv.std() - 2.0) < 0.05
    assert np.abs(cutv).max() <= 2.0 and abs(cutv.std() - 0.87962566) < 0.02


def test_mrg_rejects_what_theano_rejected():
    with pytest.raises(ValueError):
        MRG_RandomStreams(0)
    with pytest.raises(ValueError):
        MRG_RandomStreams([0, 0, 0, 1, 2, 3])
    srng = MRG_RandomStreams()
    with pytest.raises(NotImplementedError, match="without replacement"):
        srng.choice(2, p=np.ones((1, 3)) / 3)
    with pytest.raises(TypeError, match="unexpected keyword"):
        srng.uniform((2,), colour="red")
    with pytest.raises(ValueError, match="size"):
        srng.multinomial(size=(3,), pvals=np.ones((3, 2)) / 2)


def test_dropout_mask_as_lasagne_draws_it():
    """Lasagne's dropout: ``binomial(mask_shape, p=retain, dtype=input.dtype)``
    with a shape tuple taken from ``input.shape`` (1 on shared axes), then
    ``patternbroadcast`` to broadcast the mask along them."""
    srng = MRG_RandomStreams(42)
    x = T.tensor3()
    shared_axes = (2,)
    mask_shape = tuple(1 if a in shared_axes else s for a, s in enumerate(x.shape))
    mask = srng.binomial(mask_shape, p=0.8, dtype=x.dtype)
    mask = T.patternbroadcast(mask, tuple(a in shared_axes for a in range(x.ndim)))
    out = x * mask / 0.8
    xv = np.ones((50, 40, 5))
    ov = theano.function([x], out)(xv)
    assert ov.shape == xv.shape
    assert (ov == ov[:, :, :1]).all()                             # shared along axis 2
    assert set(np.unique(ov)) == {0.0, 1.25} and abs((ov > 0).mean() - 0.8) < 0.03


def test_draws_inside_scan_advance_the_stream():
    srng = RandomStreams(9)
    v0 = T.dvector()

    def gibbs(v):
        return srng.binomial(size=v.shape, n=1, p=T.nnet.sigmoid(v), dtype="float64")

    chain, updates = theano.scan(gibbs, outputs_info=[v0], n_steps=3)
    f = theano.function([v0], chain, updates=updates)
    a, b = f(np.zeros(500)), f(np.zeros(500))
    assert a.shape == (3, 500) and not np.array_equal(a, b)
    assert abs(a[0].mean() - 0.5) < 0.08
