"""Supervised models in the Deep Learning Tutorials' style, written against
Theano's names with only the import renamed: logistic regression trained by
minibatch SGD through ``givens``, an MLP, and a LeNet (conv, pool, tanh)."""
from __future__ import annotations

import numpy

import vmc as theano
import vmc.tensor as T
from vmc.tensor.nnet import conv2d
from vmc.tensor.signal import pool

from .data import bars, blobs, shared_dataset


class LogisticRegression(object):
    def __init__(self, input, n_in, n_out):
        self.W = theano.shared(numpy.zeros((n_in, n_out), dtype=theano.config.floatX),
                               name="W", borrow=True)
        self.b = theano.shared(numpy.zeros((n_out,), dtype=theano.config.floatX),
                               name="b", borrow=True)
        self.p_y_given_x = T.nnet.softmax(T.dot(input, self.W) + self.b)
        self.y_pred = T.argmax(self.p_y_given_x, axis=1)
        self.params = [self.W, self.b]
        self.input = input

    def negative_log_likelihood(self, y):
        return -T.mean(T.log(self.p_y_given_x)[T.arange(y.shape[0]), y])

    def errors(self, y):
        if y.ndim != self.y_pred.ndim:
            raise TypeError("y should have the same shape as self.y_pred")
        return T.mean(T.neq(self.y_pred, y))


class HiddenLayer(object):
    def __init__(self, rng, input, n_in, n_out, W=None, b=None, activation=T.tanh):
        self.input = input
        if W is None:
            bound = numpy.sqrt(6.0 / (n_in + n_out))
            W_values = numpy.asarray(rng.uniform(low=-bound, high=bound, size=(n_in, n_out)),
                                     dtype=theano.config.floatX)
            if activation == theano.tensor.nnet.sigmoid:
                W_values *= 4
            W = theano.shared(value=W_values, name="W", borrow=True)
        if b is None:
            b = theano.shared(value=numpy.zeros((n_out,), dtype=theano.config.floatX),
                              name="b", borrow=True)
        self.W, self.b = W, b
        lin_output = T.dot(input, self.W) + self.b
        self.output = lin_output if activation is None else activation(lin_output)
        self.params = [self.W, self.b]


class MLP(object):
    def __init__(self, rng, input, n_in, n_hidden, n_out):
        self.hiddenLayer = HiddenLayer(rng, input, n_in, n_hidden, activation=T.tanh)
        self.logRegressionLayer = LogisticRegression(self.hiddenLayer.output, n_hidden, n_out)
        self.L1 = abs(self.hiddenLayer.W).sum() + abs(self.logRegressionLayer.W).sum()
        self.L2_sqr = (self.hiddenLayer.W ** 2).sum() + (self.logRegressionLayer.W ** 2).sum()
        self.negative_log_likelihood = self.logRegressionLayer.negative_log_likelihood
        self.errors = self.logRegressionLayer.errors
        self.params = self.hiddenLayer.params + self.logRegressionLayer.params
        self.input = input


class LeNetConvPoolLayer(object):
    def __init__(self, rng, input, filter_shape, image_shape, poolsize=(2, 2)):
        assert image_shape[1] == filter_shape[1]
        fan_in = numpy.prod(filter_shape[1:])
        fan_out = filter_shape[0] * numpy.prod(filter_shape[2:]) // numpy.prod(poolsize)
        W_bound = numpy.sqrt(6.0 / (fan_in + fan_out))
        self.W = theano.shared(numpy.asarray(rng.uniform(-W_bound, W_bound, size=filter_shape),
                                             dtype=theano.config.floatX), borrow=True)
        self.b = theano.shared(numpy.zeros((filter_shape[0],), dtype=theano.config.floatX),
                               borrow=True)
        conv_out = conv2d(input=input, filters=self.W, filter_shape=filter_shape,
                          input_shape=image_shape)
        pooled_out = pool.pool_2d(input=conv_out, ws=poolsize, ignore_border=True)
        self.output = T.tanh(pooled_out + self.b.dimshuffle("x", 0, "x", "x"))
        self.params = [self.W, self.b]
        self.input = input


def sgd_train(classifier, cost, x, y, train_set, test_set, batch_size, learning_rate,
              n_epochs):
    """The tutorials' loop: minibatches chosen by an index through ``givens``.
    Returns the costs of each epoch and the final test error."""
    train_x, train_y = train_set
    test_x, test_y = test_set
    index = T.lscalar()
    gparams = [T.grad(cost, param) for param in classifier.params]
    updates = [(param, param - learning_rate * gparam)
               for param, gparam in zip(classifier.params, gparams)]
    train_model = theano.function(
        inputs=[index], outputs=cost, updates=updates,
        givens={x: train_x[index * batch_size:(index + 1) * batch_size],
                y: train_y[index * batch_size:(index + 1) * batch_size]})
    test_model = theano.function(inputs=[], outputs=classifier.errors(y),
                                 givens={x: test_x, y: test_y})
    n_batches = train_x.get_value(borrow=True).shape[0] // batch_size
    epoch_costs = []
    for epoch in range(n_epochs):
        epoch_costs.append(numpy.mean([train_model(i) for i in range(n_batches)]))
    return epoch_costs, float(test_model())


def test_logistic_regression(floatX):
    train, test = blobs(600, 20, 4, seed=1), blobs(200, 20, 4, seed=1, part=1)
    x, y = T.matrix("x"), T.ivector("y")
    classifier = LogisticRegression(input=x, n_in=20, n_out=4)
    cost = classifier.negative_log_likelihood(y)
    # the cost and its gradient against numpy, at non-trivial parameters
    rng = numpy.random.RandomState(0)
    W0, b0 = rng.normal(size=(20, 4)) * 0.3, rng.normal(size=4) * 0.3
    classifier.W.set_value(W0.astype(floatX))
    classifier.b.set_value(b0.astype(floatX))
    f = theano.function([x, y], [cost] + T.grad(cost, classifier.params))
    xs, ys = train[0][:50], train[1][:50]
    c, gW, gb = f(xs, ys.astype("int32"))
    logits = xs.astype("float64") @ W0 + b0
    p = numpy.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    onehot = numpy.eye(4)[ys]
    tol = 1e-4 if floatX == "float32" else 1e-10
    numpy.testing.assert_allclose(c, -numpy.mean(numpy.log(p[numpy.arange(50), ys])), rtol=tol)
    numpy.testing.assert_allclose(gW, xs.T.astype("float64") @ (p - onehot) / 50, atol=tol)
    numpy.testing.assert_allclose(gb, (p - onehot).mean(0), atol=tol)
    assert c.dtype == gW.dtype == floatX
    # training
    classifier.W.set_value(numpy.zeros((20, 4), dtype=floatX))
    classifier.b.set_value(numpy.zeros(4, dtype=floatX))
    costs, test_error = sgd_train(classifier, cost, x, y, shared_dataset(train),
                                  shared_dataset(test), 50, 0.13, 8)
    assert costs[-1] < 0.5 * costs[0]
    assert test_error < 0.1


def test_mlp(floatX):
    train, test = (blobs(600, 10, 3, seed=2, spread=0.5),
                   blobs(200, 10, 3, seed=2, spread=0.5, part=1))
    rng = numpy.random.RandomState(1234)
    x, y = T.matrix("x"), T.ivector("y")
    classifier = MLP(rng=rng, input=x, n_in=10, n_hidden=30, n_out=3)
    cost = classifier.negative_log_likelihood(y) + 0.0 * classifier.L1 \
        + 0.0001 * classifier.L2_sqr
    # the gradient of the hidden layer's weights against numpy
    f = theano.function([x, y], T.grad(cost, classifier.hiddenLayer.W))
    xs, ys = train[0][:40].astype("float64"), train[1][:40]
    W1, b1 = classifier.hiddenLayer.W.get_value(), classifier.hiddenLayer.b.get_value()
    W2, b2 = classifier.logRegressionLayer.W.get_value(), classifier.logRegressionLayer.b.get_value()
    h = numpy.tanh(xs @ W1 + b1)
    logits = h @ W2 + b2
    p = numpy.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    dlogits = (p - numpy.eye(3)[ys]) / 40
    dW1 = xs.T @ ((dlogits @ W2.T) * (1 - h ** 2)) + 0.0002 * W1
    numpy.testing.assert_allclose(f(xs.astype(floatX), ys.astype("int32")), dW1,
                                  atol=1e-4 if floatX == "float32" else 1e-10)
    costs, test_error = sgd_train(classifier, cost, x, y, shared_dataset(train),
                                  shared_dataset(test), 20, 0.1, 10)
    assert costs[-1] < 0.6 * costs[0]
    assert test_error < 0.1


def test_lenet(floatX):
    batch_size, side = 20, 12
    train, test = bars(400, side, seed=3), bars(100, side, seed=4)
    rng = numpy.random.RandomState(23455)
    x, y = T.matrix("x"), T.ivector("y")
    layer0_input = x.reshape((batch_size, 1, side, side))
    layer0 = LeNetConvPoolLayer(rng, input=layer0_input, image_shape=(batch_size, 1, side, side),
                                filter_shape=(4, 1, 3, 3), poolsize=(2, 2))
    layer1 = LeNetConvPoolLayer(rng, input=layer0.output, image_shape=(batch_size, 4, 5, 5),
                                filter_shape=(6, 4, 2, 2), poolsize=(2, 2))
    layer2 = HiddenLayer(rng, input=layer1.output.flatten(2), n_in=6 * 2 * 2, n_out=20,
                         activation=T.tanh)
    layer3 = LogisticRegression(input=layer2.output, n_in=20, n_out=2)
    cost = layer3.negative_log_likelihood(y)
    params = layer3.params + layer2.params + layer1.params + layer0.params
    # the first layer against a direct numpy convolution (flipped filters), pool and tanh
    first = theano.function([x], layer0.output)
    xs = train[0][:batch_size].reshape(batch_size, -1)
    W = layer0.W.get_value().astype("float64")
    img = xs.reshape(batch_size, 1, side, side).astype("float64")
    conv = numpy.zeros((batch_size, 4, side - 2, side - 2))
    for i in range(side - 2):
        for j in range(side - 2):
            patch = img[:, :, i:i + 3, j:j + 3]
            conv[:, :, i, j] = numpy.einsum("bcij,fcij->bf", patch, W[:, :, ::-1, ::-1])
    pooled = conv.reshape(batch_size, 4, 5, 2, 5, 2).max(axis=(3, 5))
    numpy.testing.assert_allclose(first(xs), numpy.tanh(pooled),
                                  atol=1e-5 if floatX == "float32" else 1e-12)

    train_x = theano.shared(train[0].reshape(len(train[0]), -1), borrow=True)
    train_y = T.cast(theano.shared(train[1].astype(floatX)), "int32")
    index = T.lscalar()
    updates = [(p, p - 0.1 * g) for p, g in zip(params, T.grad(cost, params))]
    train_model = theano.function(
        [index], cost, updates=updates,
        givens={x: train_x[index * batch_size:(index + 1) * batch_size],
                y: train_y[index * batch_size:(index + 1) * batch_size]})
    errors = theano.function([x, y], layer3.errors(y))
    test_x = test[0].reshape(len(test[0]), -1)
    test_y = test[1].astype("int32")
    before = numpy.mean([errors(test_x[i:i + batch_size], test_y[i:i + batch_size])
                         for i in range(0, 100, batch_size)])
    costs = [numpy.mean([train_model(i) for i in range(400 // batch_size)]) for _ in range(12)]
    after = numpy.mean([errors(test_x[i:i + batch_size], test_y[i:i + batch_size])
                        for i in range(0, 100, batch_size)])
    assert costs[-1] < 0.3 * costs[0]
    assert after < 0.1 and after < before
