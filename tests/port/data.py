"""Small synthetic data sets standing in for the tutorials' (no network here)."""
from __future__ import annotations

import numpy as np

import vmc as theano


def blobs(n, n_in, n_classes, seed=0, spread=0.6, part=0):
    """Gaussian blobs around one prototype per class: ``(x floatX, y int64)``.
    The prototypes depend on ``seed``; each ``part`` (train 0, test 1) draws
    other samples around them."""
    protos = np.random.RandomState(seed).uniform(-1, 1, size=(n_classes, n_in))
    rng = np.random.RandomState([seed, part + 1])
    y = rng.randint(0, n_classes, n)
    x = protos[y] + spread * rng.normal(size=(n, n_in))
    return x.astype(theano.config.floatX), y.astype("int64")


def binary_images(n, side, seed=0):
    """Images of ``side x side`` pixels in {0, 1}: noisy copies of 4 patterns."""
    rng = np.random.RandomState(seed)
    protos = rng.rand(4, side * side) < 0.3
    y = rng.randint(0, 4, n)
    flip = rng.rand(n, side * side) < 0.05
    return (protos[y] ^ flip).astype(theano.config.floatX), y


def bars(n, side, seed=0):
    """``(n, 1, side, side)`` images holding one horizontal (class 0) or
    vertical (class 1) bar at a random place, plus noise."""
    rng = np.random.RandomState(seed)
    x = 0.2 * rng.rand(n, 1, side, side)
    y = rng.randint(0, 2, n)
    for i in range(n):
        k = rng.randint(side)
        if y[i] == 0:
            x[i, 0, k, :] += 1.0
        else:
            x[i, 0, :, k] += 1.0
    return x.astype(theano.config.floatX), y.astype("int64")


def shared_dataset(data_xy, borrow=True):
    """The tutorials' helper: data in shared variables, labels cast to int32."""
    import vmc.tensor as T
    data_x, data_y = data_xy
    shared_x = theano.shared(np.asarray(data_x, dtype=theano.config.floatX), borrow=borrow)
    shared_y = theano.shared(np.asarray(data_y, dtype=theano.config.floatX), borrow=borrow)
    return shared_x, T.cast(shared_y, "int32")
