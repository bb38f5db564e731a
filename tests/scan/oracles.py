"""Hand-written numpy oracles for scan tests."""
import numpy as np


def rnn_sum_bptt(x, w, u, b, h):
    """h_t = tanh(x_t w + h_{t-1} u + b), loss = sum of every h_t: (states, dloss/dw,
    dloss/du) by a numpy loop forward and backpropagation through time."""
    hs, hp = [], h
    for t in range(len(x)):
        hp = np.tanh(x[t] @ w + hp @ u + b)
        hs.append(hp)
    gw, gu, dh = np.zeros_like(w), np.zeros_like(u), np.zeros_like(h)
    for t in reversed(range(len(x))):
        da = (dh + 1.0) * (1 - hs[t] ** 2)
        gw += x[t].T @ da
        gu += (hs[t - 1] if t else h).T @ da
        dh = da @ u.T
    return hs, gw, gu
