"""An LSTM sentence classifier in the style of the tutorials' lstm.py, written
against Theano's names with only the import renamed: parameters in an
OrderedDict of shared variables, a masked LSTM step in ``theano.scan`` over
a 3-d by 2-d ``T.dot``, mean pooling, dropout from ``MRG_RandomStreams``
switched by a shared flag, adadelta, and a learning rate given as a Python
float (float32 under floatX=float32)."""
from __future__ import annotations

from collections import OrderedDict

import numpy

import vmc as theano
import vmc.tensor as tensor
from vmc import config
from vmc.sandbox.rng_mrg import MRG_RandomStreams as RandomStreams


def numpy_floatX(data):
    return numpy.asarray(data, dtype=config.floatX)


def ortho_weight(rng, ndim):
    W = rng.randn(ndim, ndim)
    u, s, v = numpy.linalg.svd(W)
    return u.astype(config.floatX)


def init_params(options, rng):
    params = OrderedDict()
    params["Wemb"] = (0.01 * rng.rand(options["n_words"], options["dim_proj"])).astype(
        config.floatX)
    dim = options["dim_proj"]
    params["lstm_W"] = numpy.concatenate([ortho_weight(rng, dim) for _ in range(4)], axis=1)
    params["lstm_U"] = numpy.concatenate([ortho_weight(rng, dim) for _ in range(4)], axis=1)
    params["lstm_b"] = numpy.zeros((4 * dim,)).astype(config.floatX)
    params["U"] = 0.01 * rng.randn(dim, options["ydim"]).astype(config.floatX)
    params["b"] = numpy.zeros((options["ydim"],)).astype(config.floatX)
    return params


def init_tparams(params):
    tparams = OrderedDict()
    for kk, pp in params.items():
        tparams[kk] = theano.shared(params[kk], name=kk)
    return tparams


def _slice(_x, n, dim):
    if _x.ndim == 3:
        return _x[:, :, n * dim:(n + 1) * dim]
    return _x[:, n * dim:(n + 1) * dim]


def lstm_layer(tparams, state_below, options, mask=None):
    nsteps = state_below.shape[0]
    n_samples = state_below.shape[1] if state_below.ndim == 3 else 1
    assert mask is not None
    dim = options["dim_proj"]

    def _step(m_, x_, h_, c_):
        preact = tensor.dot(h_, tparams["lstm_U"])
        preact += x_
        i = tensor.nnet.sigmoid(_slice(preact, 0, dim))
        f = tensor.nnet.sigmoid(_slice(preact, 1, dim))
        o = tensor.nnet.sigmoid(_slice(preact, 2, dim))
        c = tensor.tanh(_slice(preact, 3, dim))
        c = f * c_ + i * c
        c = m_[:, None] * c + (1. - m_)[:, None] * c_
        h = o * tensor.tanh(c)
        h = m_[:, None] * h + (1. - m_)[:, None] * h_
        return h, c

    state_below = (tensor.dot(state_below, tparams["lstm_W"]) + tparams["lstm_b"])
    rval, updates = theano.scan(
        _step, sequences=[mask, state_below],
        outputs_info=[tensor.alloc(numpy_floatX(0.), n_samples, dim),
                      tensor.alloc(numpy_floatX(0.), n_samples, dim)],
        name="lstm_layers", n_steps=nsteps)
    return rval[0]


def dropout_layer(state_before, use_noise, trng):
    return tensor.switch(use_noise,
                         (state_before * trng.binomial(state_before.shape, p=0.5, n=1,
                                                       dtype=state_before.dtype)),
                         state_before * 0.5)


def build_model(tparams, options):
    trng = RandomStreams(1234)
    use_noise = theano.shared(numpy_floatX(0.))
    x = tensor.matrix("x", dtype="int64")
    mask = tensor.matrix("mask", dtype=config.floatX)
    y = tensor.vector("y", dtype="int64")
    n_timesteps, n_samples = x.shape[0], x.shape[1]
    emb = tparams["Wemb"][x.flatten()].reshape([n_timesteps, n_samples, options["dim_proj"]])
    proj = lstm_layer(tparams, emb, options, mask=mask)
    proj = (proj * mask[:, :, None]).sum(axis=0)
    proj = proj / mask.sum(axis=0)[:, None]
    proj = dropout_layer(proj, use_noise, trng)
    pred = tensor.nnet.softmax(tensor.dot(proj, tparams["U"]) + tparams["b"])
    f_pred_prob = theano.function([x, mask], pred, name="f_pred_prob")
    f_pred = theano.function([x, mask], pred.argmax(axis=1), name="f_pred")
    off = 1e-8 if pred.dtype != "float16" else 1e-6
    cost = -tensor.log(pred[tensor.arange(n_samples), y] + off).mean()
    return use_noise, x, mask, y, f_pred_prob, f_pred, cost


def adadelta(lr, tparams, grads, x, mask, y, cost):
    zipped_grads = [theano.shared(p.get_value() * numpy_floatX(0.), name="%s_grad" % k)
                    for k, p in tparams.items()]
    running_up2 = [theano.shared(p.get_value() * numpy_floatX(0.), name="%s_rup2" % k)
                   for k, p in tparams.items()]
    running_grads2 = [theano.shared(p.get_value() * numpy_floatX(0.), name="%s_rgrad2" % k)
                      for k, p in tparams.items()]
    zgup = [(zg, g) for zg, g in zip(zipped_grads, grads)]
    rg2up = [(rg2, 0.95 * rg2 + 0.05 * (g ** 2)) for rg2, g in zip(running_grads2, grads)]
    f_grad_shared = theano.function([x, mask, y], cost, updates=zgup + rg2up,
                                    name="adadelta_f_grad_shared")
    updir = [-tensor.sqrt(ru2 + 1e-6) / tensor.sqrt(rg2 + 1e-6) * zg
             for zg, ru2, rg2 in zip(zipped_grads, running_up2, running_grads2)]
    ru2up = [(ru2, 0.95 * ru2 + 0.05 * (ud ** 2)) for ru2, ud in zip(running_up2, updir)]
    param_up = [(p, p + ud) for p, ud in zip(tparams.values(), updir)]
    f_update = theano.function([lr], [], updates=ru2up + param_up, on_unused_input="ignore",
                               name="adadelta_f_update")
    return f_grad_shared, f_update


def prepare_data(seqs, labels):
    lengths = [len(s) for s in seqs]
    maxlen = numpy.max(lengths)
    x = numpy.zeros((maxlen, len(seqs))).astype("int64")
    x_mask = numpy.zeros((maxlen, len(seqs))).astype(config.floatX)
    for idx, s in enumerate(seqs):
        x[:lengths[idx], idx] = s
        x_mask[:lengths[idx], idx] = 1.
    return x, x_mask, numpy.asarray(labels, dtype="int64")


def sentences(n, seed):
    """Sentences of 3..9 words from 20; the label says whether word 3 occurs."""
    rng = numpy.random.RandomState(seed)
    seqs, labels = [], []
    for _ in range(n):
        s = list(rng.randint(4, 20, rng.randint(3, 10)))
        label = rng.randint(2)
        if label:
            s[rng.randint(len(s))] = 3
        seqs.append(s)
        labels.append(label)
    return seqs, labels


def _numpy_forward(params, x, mask):
    """The same network in numpy (dropout off: the projection is halved)."""
    sig = lambda a: 1 / (1 + numpy.exp(-a))                       # noqa: E731
    p = {k: v.astype("float64") for k, v in params.items()}
    d = p["lstm_U"].shape[0]
    h = numpy.zeros((x.shape[1], d))
    c = numpy.zeros_like(h)
    hs = []
    for t in range(x.shape[0]):
        pre = h @ p["lstm_U"] + p["Wemb"][x[t]] @ p["lstm_W"] + p["lstm_b"]
        i, f, o = sig(pre[:, :d]), sig(pre[:, d:2 * d]), sig(pre[:, 2 * d:3 * d])
        m = mask[t][:, None]
        c = m * (f * c + i * numpy.tanh(pre[:, 3 * d:])) + (1 - m) * c
        h = m * (o * numpy.tanh(c)) + (1 - m) * h
        hs.append(h)
    proj = (numpy.array(hs) * mask[:, :, None]).sum(0) / mask.sum(0)[:, None] * 0.5
    logits = proj @ p["U"] + p["b"]
    e = numpy.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_lstm_classifier(floatX):
    options = dict(n_words=20, dim_proj=8, ydim=2)
    rng = numpy.random.RandomState(1)
    params = init_params(options, rng)
    tparams = init_tparams(params)
    use_noise, x, mask, y, f_pred_prob, f_pred, cost = build_model(tparams, options)
    grads = tensor.grad(cost, wrt=list(tparams.values()))
    lr = tensor.scalar(name="lr")
    f_grad_shared, f_update = adadelta(lr, tparams, grads, x, mask, y, cost)
    train, test = sentences(200, 2), sentences(100, 3)
    # the forward pass against numpy
    xb, mb, yb = prepare_data(*sentences(5, 4))
    numpy.testing.assert_allclose(f_pred_prob(xb, mb), _numpy_forward(params, xb, mb),
                                  rtol=1e-4 if floatX == "float32" else 1e-9)
    costs = []
    for epoch in range(30):
        use_noise.set_value(1.)
        epoch_costs = []
        for start in range(0, 200, 16):
            xb, mb, yb = prepare_data(train[0][start:start + 16], train[1][start:start + 16])
            epoch_costs.append(f_grad_shared(xb, mb, yb))
            f_update(0.0001)                      # a Python float: floatX, as in Theano
        costs.append(numpy.mean(epoch_costs))
    use_noise.set_value(0.)
    xt, mt, yt = prepare_data(*test)
    accuracy = (f_pred(xt, mt) == yt).mean()
    assert costs[-1] < 0.6 * costs[0]
    assert accuracy > 0.85
