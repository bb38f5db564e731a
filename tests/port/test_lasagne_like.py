"""Networks built with a Lasagne-style layer library (tests/port/lasagne_like.py,
written against Theano's names): a CNN with dropout trained by nesterov
momentum, and a recurrent net with gradient clipping trained by adam."""
from __future__ import annotations

import numpy as np

import vmc as theano
import vmc.tensor as T

from . import lasagne_like as L
from .data import bars


def test_cnn_with_dropout(floatX):
    x_train, y_train = bars(240, 10, seed=8)
    x_test, y_test = bars(100, 10, seed=9)
    input_var, target_var = T.tensor4("inputs"), T.ivector("targets")
    net = L.InputLayer((None, 1, 10, 10), input_var=input_var)
    net = L.Conv2DLayer(net, num_filters=4, filter_size=(3, 3), pad="same")
    net = L.MaxPool2DLayer(net, pool_size=2)
    net = L.DropoutLayer(net, p=0.2)
    net = L.DenseLayer(net, num_units=2, nonlinearity=T.nnet.softmax)
    assert net.input_layer.input_layer.output_shape == (None, 4, 5, 5)
    prediction = L.get_output(net)
    loss = L.categorical_crossentropy(prediction, target_var).mean()
    params = L.get_all_params(net, trainable=True)
    shared_vars = L.collect_shared_vars(loss)     # the parameters and dropout's generator
    assert [v for v in shared_vars if v in params] == params and len(shared_vars) == 5
    updates = L.nesterov_momentum(loss, params, learning_rate=0.05, momentum=0.9)
    test_prediction = L.get_output(net, deterministic=True)
    test_acc = T.mean(T.eq(T.argmax(test_prediction, axis=1), target_var),
                      dtype=theano.config.floatX)
    train_fn = theano.function([input_var, target_var], loss, updates=updates)
    val_fn = theano.function([input_var, target_var], test_acc)
    # dropout is on in training (two calls differ), off in the deterministic output
    out = theano.function([input_var], [prediction, test_prediction])
    (p1, d1), (p2, d2) = out(x_test[:8]), out(x_test[:8])
    assert not np.allclose(p1, p2) and np.array_equal(d1, d2)
    yt, ytest = y_train.astype("int32"), y_test.astype("int32")
    losses = [np.mean([train_fn(x_train[i:i + 20], yt[i:i + 20]) for i in range(0, 240, 20)])
              for _ in range(5)]
    acc = val_fn(x_test, ytest)
    assert acc.dtype == floatX
    assert losses[-1] < 0.5 * losses[0] and acc > 0.9


def _adding_problem(n, length, rng):
    """Lasagne's recurrent example: sum the two values marked in each sequence."""
    values = rng.uniform(0, 1, size=(n, length))
    marks = np.zeros((n, length))
    for i in range(n):
        a, b = rng.choice(length, 2, replace=False)
        marks[i, [a, b]] = 1
    x = np.stack([values, marks], axis=-1).astype(theano.config.floatX)
    return x, (values * marks).sum(axis=1).astype(theano.config.floatX)


def test_recurrent_net_with_grad_clipping(floatX):
    rng = np.random.RandomState(10)
    x_train, y_train = _adding_problem(400, 8, rng)
    x_test, y_test = _adding_problem(100, 8, rng)
    l_in = L.InputLayer((None, 8, 2))
    l_rec = L.RecurrentLayer(l_in, 20, grad_clipping=10.0, learn_init=True)
    assert l_rec.hid_init.broadcastable == (True, False)
    hidden = L.get_output(l_rec)
    w_out = theano.shared(L.glorot_uniform((20, 1)), broadcastable=(False, True))
    prediction = T.dot(hidden[:, -1, :], w_out)[:, 0]
    target = T.vector("target")
    cost = T.mean((prediction - target) ** 2)
    params = L.get_all_params(l_rec, trainable=True) + [w_out]
    assert l_rec.hid_init in params
    updates = L.adam(cost, params, learning_rate=0.02)
    train = theano.function([l_in.input_var, target], cost, updates=updates)
    compute_cost = theano.function([l_in.input_var, target], cost)
    # the forward pass against numpy
    W_in, W_hid, b, h0 = (p.get_value().astype("float64") for p in
                          (l_rec.W_in_to_hid, l_rec.W_hid_to_hid, l_rec.b, l_rec.hid_init))
    h = np.repeat(h0, 5, axis=0)
    for t in range(8):
        h = np.tanh(h @ W_hid + x_test[:5, t].astype("float64") @ W_in + b)
    want = np.mean((h @ w_out.get_value()[:, 0] - y_test[:5]) ** 2)
    np.testing.assert_allclose(compute_cost(x_test[:5], y_test[:5]), want,
                               rtol=1e-4 if floatX == "float32" else 1e-9)
    before = compute_cost(x_test, y_test)
    for _ in range(25):
        for i in range(0, 400, 40):
            train(x_train[i:i + 40], y_train[i:i + 40])
    after = compute_cost(x_test, y_test)
    assert after < 0.3 * before
