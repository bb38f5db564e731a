"""Unsupervised models in the Deep Learning Tutorials' style, written against
Theano's names with only the import renamed: a denoising autoencoder whose
corruption comes from ``MRG_RandomStreams``, and an RBM trained by CD-k and
persistent CD with a Gibbs chain in ``theano.scan``."""
from __future__ import annotations

import numpy

import vmc as theano
import vmc.tensor as T
from vmc.sandbox.rng_mrg import MRG_RandomStreams
from vmc.tensor.shared_randomstreams import RandomStreams

from .data import binary_images


class dA(object):
    def __init__(self, numpy_rng, theano_rng=None, input=None, n_visible=36, n_hidden=20,
                 W=None, bhid=None, bvis=None):
        self.n_visible, self.n_hidden = n_visible, n_hidden
        if not theano_rng:
            theano_rng = MRG_RandomStreams(numpy_rng.randint(2 ** 30))
        if not W:
            bound = 4 * numpy.sqrt(6.0 / (n_hidden + n_visible))
            W = theano.shared(value=numpy.asarray(
                numpy_rng.uniform(low=-bound, high=bound, size=(n_visible, n_hidden)),
                dtype=theano.config.floatX), name="W", borrow=True)
        if not bvis:
            bvis = theano.shared(value=numpy.zeros(n_visible, dtype=theano.config.floatX),
                                 borrow=True)
        if not bhid:
            bhid = theano.shared(value=numpy.zeros(n_hidden, dtype=theano.config.floatX),
                                 name="b", borrow=True)
        self.W, self.b, self.b_prime = W, bhid, bvis
        self.W_prime = self.W.T
        self.theano_rng = theano_rng
        self.x = T.dmatrix(name="input") if input is None else input
        self.params = [self.W, self.b, self.b_prime]

    def get_corrupted_input(self, input, corruption_level):
        return self.theano_rng.binomial(size=input.shape, n=1, p=1 - corruption_level,
                                        dtype=theano.config.floatX) * input

    def get_hidden_values(self, input):
        return T.nnet.sigmoid(T.dot(input, self.W) + self.b)

    def get_reconstructed_input(self, hidden):
        return T.nnet.sigmoid(T.dot(hidden, self.W_prime) + self.b_prime)

    def get_cost_updates(self, corruption_level, learning_rate):
        tilde_x = self.get_corrupted_input(self.x, corruption_level)
        y = self.get_hidden_values(tilde_x)
        z = self.get_reconstructed_input(y)
        L = - T.sum(self.x * T.log(z) + (1 - self.x) * T.log(1 - z), axis=1)
        cost = T.mean(L)
        gparams = T.grad(cost, self.params)
        updates = [(param, param - learning_rate * gparam)
                   for param, gparam in zip(self.params, gparams)]
        return cost, updates


def test_denoising_autoencoder(floatX):
    data, _ = binary_images(300, 6, seed=5)
    train_set_x = theano.shared(data, borrow=True)
    rng = numpy.random.RandomState(123)
    index = T.lscalar()
    x = T.matrix("x")
    da = dA(numpy_rng=rng, theano_rng=MRG_RandomStreams(rng.randint(2 ** 30)), input=x)
    # no corruption: the cost and the tied weights' gradient against numpy
    cost0, _ = da.get_cost_updates(corruption_level=0.0, learning_rate=0.1)
    f = theano.function([x], [cost0, T.grad(cost0, da.W)])
    xs = data[:30].astype("float64")
    W, b, bp = (p.get_value().astype("float64") for p in da.params)
    sig = lambda a: 1 / (1 + numpy.exp(-a))                        # noqa: E731
    h = sig(xs @ W + b)
    z = sig(h @ W.T + bp)
    want = -numpy.mean(numpy.sum(xs * numpy.log(z) + (1 - xs) * numpy.log(1 - z), axis=1))
    dz = (z - xs) / 30
    dW = xs.T @ ((dz @ W) * h * (1 - h)) + dz.T @ h
    c, gW = f(data[:30])
    tol = 2e-4 if floatX == "float32" else 1e-9
    numpy.testing.assert_allclose(c, want, rtol=tol)
    numpy.testing.assert_allclose(gW, dW, rtol=tol, atol=tol)
    # the corruption zeroes about corruption_level of the inputs, anew at each call
    corrupt = theano.function([x], da.get_corrupted_input(x, 0.3))
    ones = numpy.ones((200, 36), dtype=floatX)
    a, b2 = corrupt(ones), corrupt(ones)
    assert abs((a == 0).mean() - 0.3) < 0.02 and not numpy.array_equal(a, b2)
    # training with 30% corruption
    cost, updates = da.get_cost_updates(corruption_level=0.3, learning_rate=0.1)
    train_da = theano.function([index], cost, updates=updates,
                               givens={x: train_set_x[index * 20:(index + 1) * 20]})
    epochs = [numpy.mean([train_da(i) for i in range(15)]) for _ in range(8)]
    assert epochs[-1] < 0.7 * epochs[0]


class RBM(object):
    def __init__(self, input=None, n_visible=36, n_hidden=20, W=None, hbias=None, vbias=None,
                 numpy_rng=None, theano_rng=None):
        self.n_visible, self.n_hidden = n_visible, n_hidden
        if numpy_rng is None:
            numpy_rng = numpy.random.RandomState(1234)
        if theano_rng is None:
            theano_rng = RandomStreams(numpy_rng.randint(2 ** 30))
        if W is None:
            bound = 4 * numpy.sqrt(6.0 / (n_hidden + n_visible))
            W = theano.shared(value=numpy.asarray(
                numpy_rng.uniform(low=-bound, high=bound, size=(n_visible, n_hidden)),
                dtype=theano.config.floatX), name="W", borrow=True)
        if hbias is None:
            hbias = theano.shared(value=numpy.zeros(n_hidden, dtype=theano.config.floatX),
                                  name="hbias", borrow=True)
        if vbias is None:
            vbias = theano.shared(value=numpy.zeros(n_visible, dtype=theano.config.floatX),
                                  name="vbias", borrow=True)
        self.input = input if input else T.matrix("input")
        self.W, self.hbias, self.vbias = W, hbias, vbias
        self.theano_rng = theano_rng
        self.params = [self.W, self.hbias, self.vbias]

    def free_energy(self, v_sample):
        wx_b = T.dot(v_sample, self.W) + self.hbias
        vbias_term = T.dot(v_sample, self.vbias)
        hidden_term = T.sum(T.log(1 + T.exp(wx_b)), axis=1)
        return -hidden_term - vbias_term

    def propup(self, vis):
        pre_sigmoid_activation = T.dot(vis, self.W) + self.hbias
        return [pre_sigmoid_activation, T.nnet.sigmoid(pre_sigmoid_activation)]

    def sample_h_given_v(self, v0_sample):
        pre_sigmoid_h1, h1_mean = self.propup(v0_sample)
        h1_sample = self.theano_rng.binomial(size=h1_mean.shape, n=1, p=h1_mean,
                                             dtype=theano.config.floatX)
        return [pre_sigmoid_h1, h1_mean, h1_sample]

    def propdown(self, hid):
        pre_sigmoid_activation = T.dot(hid, self.W.T) + self.vbias
        return [pre_sigmoid_activation, T.nnet.sigmoid(pre_sigmoid_activation)]

    def sample_v_given_h(self, h0_sample):
        pre_sigmoid_v1, v1_mean = self.propdown(h0_sample)
        v1_sample = self.theano_rng.binomial(size=v1_mean.shape, n=1, p=v1_mean,
                                             dtype=theano.config.floatX)
        return [pre_sigmoid_v1, v1_mean, v1_sample]

    def gibbs_hvh(self, h0_sample):
        pre_sigmoid_v1, v1_mean, v1_sample = self.sample_v_given_h(h0_sample)
        pre_sigmoid_h1, h1_mean, h1_sample = self.sample_h_given_v(v1_sample)
        return [pre_sigmoid_v1, v1_mean, v1_sample, pre_sigmoid_h1, h1_mean, h1_sample]

    def gibbs_vhv(self, v0_sample):
        pre_sigmoid_h1, h1_mean, h1_sample = self.sample_h_given_v(v0_sample)
        pre_sigmoid_v1, v1_mean, v1_sample = self.sample_v_given_h(h1_sample)
        return [pre_sigmoid_h1, h1_mean, h1_sample, pre_sigmoid_v1, v1_mean, v1_sample]

    def get_cost_updates(self, lr=0.1, persistent=None, k=1):
        pre_sigmoid_ph, ph_mean, ph_sample = self.sample_h_given_v(self.input)
        chain_start = ph_sample if persistent is None else persistent
        ([pre_sigmoid_nvs, nv_means, nv_samples, pre_sigmoid_nhs, nh_means, nh_samples],
         updates) = theano.scan(self.gibbs_hvh,
                                outputs_info=[None, None, None, None, None, chain_start],
                                n_steps=k, name="gibbs_hvh")
        chain_end = nv_samples[-1]
        cost = T.mean(self.free_energy(self.input)) - T.mean(self.free_energy(chain_end))
        gparams = T.grad(cost, self.params, consider_constant=[chain_end])
        for gparam, param in zip(gparams, self.params):
            updates[param] = param - gparam * T.cast(lr, dtype=theano.config.floatX)
        if persistent:
            updates[persistent] = nh_samples[-1]
            monitoring_cost = self.get_pseudo_likelihood_cost(updates)
        else:
            monitoring_cost = self.get_reconstruction_cost(pre_sigmoid_nvs[-1])
        return monitoring_cost, updates

    def get_pseudo_likelihood_cost(self, updates):
        bit_i_idx = theano.shared(value=0, name="bit_i_idx")
        xi = T.round(self.input)
        fe_xi = self.free_energy(xi)
        xi_flip = T.set_subtensor(xi[:, bit_i_idx], 1 - xi[:, bit_i_idx])
        fe_xi_flip = self.free_energy(xi_flip)
        cost = T.mean(self.n_visible * T.log(T.nnet.sigmoid(fe_xi_flip - fe_xi)))
        updates[bit_i_idx] = (bit_i_idx + 1) % self.n_visible
        return cost

    def get_reconstruction_cost(self, pre_sigmoid_nv):
        return T.mean(T.sum(self.input * T.log(T.nnet.sigmoid(pre_sigmoid_nv))
                            + (1 - self.input) * T.log(1 - T.nnet.sigmoid(pre_sigmoid_nv)),
                            axis=1))


def _reconstruction_error(rbm, data):
    W, hb, vb = (p.get_value().astype("float64") for p in rbm.params)
    sig = lambda a: 1 / (1 + numpy.exp(-a))                        # noqa: E731
    v = sig(sig(data @ W + hb) @ W.T + vb)
    return -numpy.mean(numpy.sum(data * numpy.log(v) + (1 - data) * numpy.log(1 - v), axis=1))


def test_rbm_cd_and_persistent_cd(floatX):
    data, _ = binary_images(200, 6, seed=6)
    train_set_x = theano.shared(data, borrow=True)
    index = T.lscalar()
    x = T.matrix("x")
    rng = numpy.random.RandomState(123)
    rbm = RBM(input=x, numpy_rng=rng, theano_rng=RandomStreams(rng.randint(2 ** 30)))
    # the free energy against numpy
    fe = theano.function([x], rbm.free_energy(x))
    W, hb, vb = (p.get_value().astype("float64") for p in rbm.params)
    want = -numpy.log1p(numpy.exp(data[:10] @ W + hb)).sum(axis=1) - data[:10] @ vb
    numpy.testing.assert_allclose(fe(data[:10]), want, rtol=1e-5 if floatX == "float32" else 1e-10)
    # CD-3
    before = _reconstruction_error(rbm, data)
    cost, updates = rbm.get_cost_updates(lr=0.1, persistent=None, k=3)
    train_rbm = theano.function([index], cost, updates=updates,
                                givens={x: train_set_x[index * 20:(index + 1) * 20]})
    for _ in range(10):
        for i in range(10):
            train_rbm(i)
    after_cd = _reconstruction_error(rbm, data)
    assert after_cd < 0.8 * before
    # persistent CD-1: the chain is a shared variable (``if persistent:``)
    persistent_chain = theano.shared(numpy.zeros((20, 20), dtype=theano.config.floatX),
                                     borrow=True)
    pl_cost, updates = rbm.get_cost_updates(lr=0.05, persistent=persistent_chain, k=1)
    train_pcd = theano.function([index], pl_cost, updates=updates,
                                givens={x: train_set_x[index * 20:(index + 1) * 20]})
    pls = [numpy.mean([train_pcd(i) for i in range(10)]) for _ in range(5)]
    assert numpy.isfinite(pls).all() and max(pls) < 0
    assert not numpy.array_equal(persistent_chain.get_value(), numpy.zeros((20, 20)))
    assert _reconstruction_error(rbm, data) < before
    # sampling: a Gibbs chain of 5 steps from the data, a fresh chain at each call
    chain_in = theano.shared(data[:8], borrow=False)
    ([_, _, _, _, vis_mfs, vis_samples], updates) = theano.scan(
        rbm.gibbs_vhv, outputs_info=[None, None, None, None, None, chain_in], n_steps=5,
        name="gibbs_vhv")
    updates.update({chain_in: vis_samples[-1]})
    sample_fn = theano.function([], [vis_mfs[-1], vis_samples[-1]], updates=updates)
    mf, sample = sample_fn()
    assert mf.shape == (8, 36) and set(numpy.unique(sample)) <= {0.0, 1.0}
    assert ((mf > 0) & (mf < 1)).all() and mf.dtype == floatX
    numpy.testing.assert_array_equal(chain_in.get_value(), sample)
