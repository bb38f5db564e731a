"""conv2d against a direct loop over output positions (the oracle), over the
border modes, strides, dilations, groups, filter flipping and both float
dtypes; its gradients with verify_grad; Theano's grad helpers."""
from __future__ import annotations

import numpy as np
import pytest

import vmc
import vmc.tensor as vt
from vmc.gradient import Rop, verify_grad
from vmc.tensor.nnet import conv2d
from vmc.tensor.nnet.abstract_conv import (conv2d_grad_wrt_inputs, conv2d_grad_wrt_weights,
                                           get_conv_output_shape)

from .helpers import check_infer_shape

GEN = np.random.default_rng(11)


def conv_oracle(x, w, border_mode, subsample, flip, dilation, groups):
    """Theano's conv2d, one output element at a time."""
    n, c, h, wd = x.shape
    f, cg, kh, kw = w.shape
    dh, dw = dilation
    ekh, ekw = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    if border_mode == "valid":
        ph = pw = 0
    elif border_mode == "full":
        ph, pw = ekh - 1, ekw - 1
    elif border_mode == "half":
        ph, pw = ekh // 2, ekw // 2
    elif isinstance(border_mode, int):
        ph = pw = border_mode
    else:
        ph, pw = border_mode
    xp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw), x.dtype)
    xp[:, :, ph:ph + h, pw:pw + wd] = x
    if flip:
        w = w[:, :, ::-1, ::-1]
    oh = (h + 2 * ph - ekh) // subsample[0] + 1
    ow = (wd + 2 * pw - ekw) // subsample[1] + 1
    out = np.zeros((n, f, oh, ow), np.float64)
    fg = f // groups
    for b in range(n):
        for o in range(f):
            g = o // fg
            for r in range(oh):
                for s in range(ow):
                    total = 0.0
                    for k in range(cg):
                        for i in range(kh):
                            for j in range(kw):
                                total += (xp[b, g * cg + k, r * subsample[0] + i * dh,
                                             s * subsample[1] + j * dw] * w[o, k, i, j])
                    out[b, o, r, s] = total
    return out


CASES = [
    # border_mode, subsample, flip, dilation, groups, x shape, w shape
    ("valid", (1, 1), True, (1, 1), 1, (2, 3, 6, 5), (4, 3, 3, 2)),
    ("full", (1, 1), True, (1, 1), 1, (1, 2, 4, 4), (3, 2, 3, 3)),
    ("half", (1, 1), False, (1, 1), 1, (2, 2, 5, 6), (2, 2, 3, 3)),
    ("half", (1, 1), True, (1, 1), 1, (1, 1, 5, 5), (2, 1, 4, 2)),       # even kernel
    (1, (2, 2), True, (1, 1), 1, (2, 2, 7, 6), (3, 2, 3, 3)),
    ((2, 1), (1, 2), False, (1, 1), 1, (1, 3, 5, 5), (2, 3, 2, 3)),
    ("valid", (1, 1), True, (2, 2), 1, (1, 2, 7, 7), (2, 2, 3, 3)),
    ("full", (2, 1), False, (2, 1), 1, (2, 1, 5, 6), (2, 1, 2, 3)),
    ("valid", (1, 1), True, (1, 1), 2, (2, 4, 5, 5), (6, 2, 3, 3)),
    ("half", (2, 2), False, (1, 2), 3, (1, 6, 6, 7), (3, 2, 3, 3)),
]


def _ids(case):
    return f"{case[0]}-s{case[1]}-flip{int(case[2])}-d{case[3]}-g{case[4]}"


@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_conv2d_against_loops(case, dtype):
    mode, sub, flip, dil, groups, xs, ws = case
    xv = GEN.standard_normal(xs).astype(dtype)
    wv = GEN.standard_normal(ws).astype(dtype)
    x, w = vt.tensor4("x", dtype=dtype), vt.tensor4("w", dtype=dtype)
    out = conv2d(x, w, border_mode=mode, subsample=sub, filter_flip=flip,
                 filter_dilation=dil, num_groups=groups)
    got = vmc.function([x, w], out)(xv, wv)
    want = conv_oracle(xv.astype(np.float64), wv.astype(np.float64), mode, sub, flip, dil,
                       groups)
    assert got.dtype == dtype
    tol = 1e-4 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    assert get_conv_output_shape(xs, ws, mode, sub, dil)[2:] == want.shape[2:]
    if dtype == "float64":
        check_infer_shape(out, [x, w], [xv, wv])


@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
def test_conv2d_gradients(case):
    mode, sub, flip, dil, groups, xs, ws = case
    xv, wv = GEN.standard_normal(xs), GEN.standard_normal(ws)
    kw = dict(border_mode=mode, subsample=sub, filter_flip=flip, filter_dilation=dil,
              num_groups=groups)
    verify_grad(lambda a, b: conv2d(a, b, **kw), [xv, wv], n_tests=1)


def test_conv2d_static_shapes_and_grad_helpers():
    x = vt.tensor("float64", (2, 3, 8, 8), "x")
    w = vt.tensor("float64", (4, 3, 3, 3), "w")
    out = conv2d(x, w, input_shape=(2, 3, 8, 8), filter_shape=(4, 3, 3, 3), subsample=(2, 2))
    assert out.type.shape == (2, 4, 3, 3)
    g = vt.tensor4("g", dtype="float64")
    gi = conv2d_grad_wrt_inputs(g, w, (2, 3, 8, 8), subsample=(2, 2))
    gw = conv2d_grad_wrt_weights(x, g, (4, 3, 3, 3), subsample=(2, 2))
    f = vmc.function([x, w, g], [gi, gw])
    xv, wv, gv = GEN.standard_normal((2, 3, 8, 8)), GEN.standard_normal((4, 3, 3, 3)), \
        GEN.standard_normal((2, 4, 3, 3))
    # the helpers are the adjoints: <conv(x, w), g> = <x, gi> = <w, gw>
    got_i, got_w = f(xv, wv, gv)
    inner = np.sum(conv_oracle(xv, wv, "valid", (2, 2), True, (1, 1), 1) * gv)
    np.testing.assert_allclose(np.sum(xv * got_i), inner, rtol=1e-12)
    np.testing.assert_allclose(np.sum(wv * got_w), inner, rtol=1e-12)
    with pytest.raises(ValueError, match="input_shape"):
        conv2d(x, w, input_shape=(2, 3, 9, 8))


def test_conv2d_errors():
    x, w = vt.tensor4("x"), vt.tensor4("w")
    with pytest.raises(ValueError, match="border_mode"):
        conv2d(x, w, border_mode="same")
    f = vmc.function([x, w], conv2d(x, w, num_groups=2))
    with pytest.raises(ValueError, match="group"):
        f(np.zeros((1, 3, 4, 4), x.type.dtype), np.zeros((2, 3, 2, 2), x.type.dtype))


def test_conv2d_second_order_and_rop():
    xv, wv = GEN.standard_normal((1, 2, 5, 5)), GEN.standard_normal((2, 2, 3, 3))

    def grad_wrt_w(a):
        w = vt.constant(wv)
        return vmc.grad(vt.sum(vt.tanh(conv2d(a, w, border_mode="half")) ** 2), a)
    verify_grad(grad_wrt_w, [xv], n_tests=1)
    x, v = vt.tensor4("x", dtype="float64"), vt.tensor4("v", dtype="float64")
    w = vt.constant(wv)
    out = conv2d(x, w, subsample=(2, 1))
    jv = vmc.function([x, v], Rop(out, x, v), on_unused_input="ignore")   # linear in x
    vv = GEN.standard_normal(xv.shape)
    np.testing.assert_allclose(jv(xv, vv), conv_oracle(vv, wv, "valid", (2, 1), True, (1, 1),
                                                       1), rtol=1e-12, atol=1e-12)
