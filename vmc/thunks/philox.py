"""The CPU side of Philox draws (``vmc.tensor.philox``): Philox4x32-10 in numpy,
vectorized over the blocks of a draw. The GPU runs the same rounds from the
same constants (``vmc/gpu/thunks/random.py``); tests check that uniforms agree
bit for bit."""
from __future__ import annotations

import numpy as np

from vmc.tensor.philox import M0, M1, ROUNDS, W0, W1, PhiloxDraw

from .broadcast import broadcast_shape, fixed_dims
from .registry import register

_MASK = np.uint64(0xFFFFFFFF)


def blocks(key: int, counter: int, n: int):
    """The words ``(w0, w1, w2, w3)`` (uint32 arrays) of blocks counter .. counter+n-1."""
    ctr = np.uint64(counter) + np.arange(n, dtype=np.uint64)
    c0 = (ctr & _MASK).astype(np.uint32)
    c1 = (ctr >> np.uint64(32)).astype(np.uint32)
    c2 = np.zeros(n, np.uint32)
    c3 = np.zeros(n, np.uint32)
    k0, k1 = key & 0xFFFFFFFF, key >> 32
    for r in range(ROUNDS):
        p0 = np.uint64(M0) * c0.astype(np.uint64)
        p1 = np.uint64(M1) * c2.astype(np.uint64)
        hi0, lo0 = (p0 >> np.uint64(32)).astype(np.uint32), (p0 & _MASK).astype(np.uint32)
        hi1, lo1 = (p1 >> np.uint64(32)).astype(np.uint32), (p1 & _MASK).astype(np.uint32)
        c0, c1, c2, c3 = hi1 ^ c1 ^ np.uint32(k0), lo1, hi0 ^ c3 ^ np.uint32(k1), lo0
        if r < ROUNDS - 1:
            k0, k1 = (k0 + W0) & 0xFFFFFFFF, (k1 + W1) & 0xFFFFFFFF
    return c0, c1, c2, c3


def _u53(a, b):
    return ((a >> np.uint32(5)).astype(np.float64) * 67108864.0
            + (b >> np.uint32(6)).astype(np.float64)) * (1.0 / 9007199254740992.0)


def sample(dist, dtype, words, params):
    """The sample of ``dist`` from ``words`` (each element's block), as the kernel does."""
    w0, w1, w2, w3 = words
    dtype = np.dtype(dtype)
    if dist == "uniform":
        low, high = params
        if dtype == np.float32:
            u = (w0 >> np.uint32(8)).astype(np.float32) * np.float32(2.0 ** -24)
            return (np.float32(low) + (np.float32(high) - np.float32(low)) * u).astype(dtype)
        return (low + (high - low) * _u53(w0, w1)).astype(dtype)
    if dist == "normal":
        loc, scale = params
        u1, u2 = 1.0 - _u53(w0, w1), _u53(w2, w3)
        z = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
        return (loc + scale * z).astype(dtype)
    if dist == "integers":
        low, high = (np.asarray(p, np.int64) for p in params)
        r = (w1.astype(np.uint64) << np.uint64(32)) | w0.astype(np.uint64)
        span = (high - low).astype(np.uint64)
        return (low + (r % np.maximum(span, np.uint64(1))).astype(np.int64)).astype(dtype)
    (p,) = params
    return (_u53(w0, w1) < p).astype(dtype)


@register(PhiloxDraw)
def philox_draw_thunk(node, destroyable):
    op = node.op
    fixed = [fixed_dims(v.type.shape) for v in node.inputs[2:]]

    def thunk(state, size, *params):
        key, counter = int(state[0]), int(state[1])
        shape = (tuple(int(s) for s in size) if op.has_size else
                 broadcast_shape(op, [np.shape(p) for p in params], fixed))
        params = [np.broadcast_to(p, shape) for p in params]
        if op.dist == "integers" and np.any(params[1] <= params[0]):
            raise ValueError(f"{op}: low >= high")
        n = int(np.prod(shape))
        words = blocks(key, counter, n)
        out = sample(op.dist, op.dtype, words, [p.reshape(-1) for p in params])
        new = np.array([key, (counter + n) % 2 ** 64], dtype=np.uint64)
        return new, out.reshape(shape)
    return thunk
