"""A small CNN learns: conv, relu, max pool, dense, softmax on a synthetic
image task (which of 4 oriented bars is drawn into noise), trained with SGD
through vmc.function updates; test accuracy must pass 90%."""
from __future__ import annotations

import numpy as np

import vmc
import vmc.tensor as vt
from vmc.tensor.nnet import conv2d
from vmc.tensor.signal.pool import pool_2d


def bars(n, gen):
    """(n, 1, 10, 10) images with a horizontal, vertical or diagonal bar at a
    random place, in noise; the label is the bar's orientation."""
    x = gen.standard_normal((n, 1, 10, 10)).astype("float32") * 0.6
    y = gen.integers(0, 4, n)
    for k in range(n):
        r, c = gen.integers(2, 8, 2)
        idx = np.arange(-2, 3)
        rows, cols = {0: (r + 0 * idx, c + idx), 1: (r + idx, c + 0 * idx),
                      2: (r + idx, c + idx), 3: (r + idx, c - idx)}[y[k]]
        x[k, 0, rows, cols] += 2.0
    return x, y.astype("int64")


def test_small_cnn_learns():
    gen = np.random.default_rng(0)
    xtr, ytr = bars(512, gen)
    xte, yte = bars(256, gen)
    with vmc.config.change(floatX="float32"):
        w1 = vmc.shared((gen.standard_normal((8, 1, 3, 3)) * 0.3).astype("float32"))
        b1 = vmc.shared(np.zeros((1, 8, 1, 1), "float32"), shape=(1, None, 1, 1))
        w2 = vmc.shared((gen.standard_normal((8 * 4 * 4, 4)) * 0.1).astype("float32"))
        b2 = vmc.shared(np.zeros(4, "float32"))
        x, y = vt.tensor4("x", dtype="float32"), vt.lvector("y")
        h = vt.nnet.relu(conv2d(x, w1) + b1)                       # (n, 8, 8, 8)
        h = pool_2d(h, (2, 2), ignore_border=True)                 # (n, 8, 4, 4)
        p = vt.nnet.softmax(vt.dot(vt.flatten(h, 2), w2) + b2)
        cost = vt.mean(vt.nnet.categorical_crossentropy(p, y))
        params = [w1, b1, w2, b2]
        grads = vmc.grad(cost, params)
        step = vmc.function([x, y], cost,
                            updates=[(v, v - np.float32(0.3) * g) for v, g in zip(params, grads)])
        predict = vmc.function([x], vt.argmax(p, axis=1))
    for epoch in range(12):
        order = gen.permutation(len(xtr))
        for k in range(0, len(xtr), 32):
            i = order[k:k + 32]
            step(xtr[i], ytr[i])
    accuracy = np.mean(predict(xte) == yte)
    assert accuracy > 0.9, accuracy
