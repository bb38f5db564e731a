"""pool_2d against Theano's own reference loop (Pool.perform, window by window),
over modes, padding, strides and ignore_border; gradients with verify_grad."""
from __future__ import annotations

import numpy as np
import pytest

import vmc
import vmc.tensor as vt
from vmc.gradient import Rop, verify_grad
from vmc.tensor.signal.pool import pool_2d

from .helpers import check_infer_shape

GEN = np.random.default_rng(5)


def pool_oracle(x, ws, ignore_border, stride, pad, mode):
    """Theano's Pool.perform, transcribed."""
    stride = stride or ws
    h, w = x.shape[-2:]
    if ignore_border:
        oh, ow = ((n + 2 * p - k) // s + 1 for n, k, s, p in zip((h, w), ws, stride, pad))
    else:
        oh, ow = (((n - 1) // s + 1) if s >= k else max(0, (n - 1 - k + s) // s) + 1
                  for n, k, s in zip((h, w), ws, stride))
    rows, cols = h + 2 * pad[0], w + 2 * pad[1]
    y = np.zeros(x.shape[:-2] + (rows, cols))
    y[..., pad[0]:pad[0] + h, pad[1]:pad[1] + w] = x
    inc_pad = mode == "average_inc_pad"
    out = np.zeros(x.shape[:-2] + (oh, ow))
    for r in range(oh):
        r0, r1 = r * stride[0], min(r * stride[0] + ws[0], rows)
        if not inc_pad:
            r0, r1 = max(r0, pad[0]), min(r1, h + pad[0])
        for c in range(ow):
            c0, c1 = c * stride[1], min(c * stride[1] + ws[1], cols)
            if not inc_pad:
                c0, c1 = max(c0, pad[1]), min(c1, w + pad[1])
            win = y[..., r0:r1, c0:c1]
            if mode == "max":
                out[..., r, c] = win.max(axis=(-2, -1))
            elif mode == "sum":
                out[..., r, c] = win.sum(axis=(-2, -1))
            else:
                out[..., r, c] = win.mean(axis=(-2, -1))
    return out


MODES = ["max", "sum", "average_inc_pad", "average_exc_pad"]
GEOMETRIES = [
    # ws, ignore_border, stride, pad, shape
    ((2, 2), True, None, (0, 0), (2, 3, 6, 6)),
    ((3, 2), False, None, (0, 0), (1, 2, 7, 5)),
    ((3, 3), True, (2, 1), (1, 2), (2, 1, 6, 7)),
    ((2, 3), False, (1, 2), (0, 0), (3, 5, 6)),
    ((3, 3), False, (2, 2), (0, 0), (4, 5)),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("geo", range(len(GEOMETRIES)))
def test_pool_against_theano_loop(mode, geo):
    ws, ib, st, pad, shape = GEOMETRIES[geo]
    xv = GEN.standard_normal(shape)
    x = vt.tensor("float64", (None,) * len(shape), "x")
    out = pool_2d(x, ws=ws, ignore_border=ib, stride=st, pad=pad, mode=mode)
    got = vmc.function([x], out)(xv)
    np.testing.assert_allclose(got, pool_oracle(xv, ws, ib, st, pad, mode), rtol=1e-12)
    check_infer_shape(out, [x], [xv])
    f32 = vt.tensor("float32", (None,) * len(shape), "x")
    got32 = vmc.function([f32], pool_2d(f32, ws, ib, st, pad, mode))(xv.astype("float32"))
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32, got, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("geo", range(len(GEOMETRIES)))
def test_pool_gradient(mode, geo):
    ws, ib, st, pad, shape = GEOMETRIES[geo]
    # distinct values, far apart: no ties and no max switching under the differences
    xv = GEN.permutation(np.prod(shape)).reshape(shape) * 0.1
    verify_grad(lambda a: pool_2d(a, ws, ib, st, pad, mode), [xv], n_tests=1)


@pytest.mark.parametrize("mode", ["max", "average_exc_pad"])
def test_pool_grad_of_grad_and_rop(mode):
    xv = GEN.permutation(36).reshape(1, 1, 6, 6) * 0.1
    gv = GEN.standard_normal((1, 1, 3, 3))
    # the gradient is linear in the output gradient: check its own gradient there
    verify_grad(lambda gz: vmc.grad(None, [x_c := vt.constant(xv)],
                                    known_grads={pool_2d(x_c, (2, 2), mode=mode): gz})[0]
                * vt.constant(GEN.standard_normal(xv.shape)), [gv], n_tests=1)
    x, v = vt.tensor4("x", dtype="float64"), vt.tensor4("v", dtype="float64")
    out = pool_2d(x, (2, 2), mode=mode)
    jv = vmc.function([x, v], Rop(out, x, v), on_unused_input="ignore")   # avg: linear in x
    f = vmc.function([x], out)
    vv = GEN.standard_normal(xv.shape)
    eps = 1e-6
    np.testing.assert_allclose(jv(xv, vv), (f(xv + eps * vv) - f(xv - eps * vv)) / (2 * eps),
                               rtol=1e-6, atol=1e-8)


def test_pool_names_and_errors():
    x = vt.tensor4("x")
    a = pool_2d(x, ds=(2, 2), st=(1, 1), padding=(1, 1), ignore_border=True)
    b = pool_2d(x, ws=(2, 2), stride=(1, 1), pad=(1, 1), ignore_border=True)
    assert a.owner.op == b.owner.op
    with pytest.raises(ValueError, match="mode"):
        pool_2d(x, (2, 2), mode="median")
    with pytest.raises(NotImplementedError, match="ignore_border"):
        pool_2d(x, (2, 2), ignore_border=False, pad=(1, 1))
