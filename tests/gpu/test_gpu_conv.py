"""conv2d (forward, input and filter gradients) and pool_2d (forward, gradients,
the max pool's grad-grad) on the device against the CPU, and a LeNet-style
training step."""
import numpy as np
import pytest

import vmc
import vmc.tensor as vt
from vmc.tensor.nnet import conv2d
from vmc.tensor.signal.pool import pool_2d

from .helpers import assert_close, compile_both, ops_on

RNG = np.random.default_rng(5)
CONV_OPS = {"AbstractConv2d", "AbstractConv2d_gradInputs", "AbstractConv2d_gradWeights"}


def _conv_case(device, dtype, img_shape, kern_shape, **kw):
    x, w = vt.tensor4("x", dtype=dtype), vt.tensor4("w", dtype=dtype)
    y = conv2d(x, w, **kw)
    r = vt.tensor4("r", dtype=dtype)
    cost = (y * r).sum()
    f, g = compile_both([x, w, r], [y] + vmc.grad(cost, [x, w]), device)
    on, _ = ops_on(f, device)
    assert CONV_OPS <= set(on), on
    xv = RNG.standard_normal(img_shape).astype(dtype)
    wv = RNG.standard_normal(kern_shape).astype(dtype)
    yv = conv2d(vt.constant(xv), vt.constant(wv), **kw).eval()
    rv = RNG.standard_normal(yv.shape).astype(dtype)
    close_sums(f(xv, wv, rv), g(xv, wv, rv))
    return f, g, (xv, wv, rv)


def close_sums(got, want):
    """Sums of many terms: float32's error is relative to the largest (a sum that
    nearly cancels keeps the terms' absolute error), float64 as assert_close."""
    for a, b in zip(got, want):
        if b.dtype == np.float32:
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-6 * np.abs(b).max())
        else:
            assert_close(a, b)


# (image shape, filter shape, conv2d arguments): every border mode, strides,
# dilation, groups, cross-correlation; small shapes
CASES = [
    ((2, 3, 7, 6), (4, 3, 3, 2), dict(border_mode="valid")),
    ((2, 2, 5, 5), (3, 2, 3, 3), dict(border_mode="full", filter_flip=False)),
    ((1, 3, 6, 7), (2, 3, 3, 3), dict(border_mode="half", subsample=(2, 1))),
    ((2, 2, 8, 7), (2, 2, 2, 3), dict(border_mode=(1, 2), subsample=(2, 3),
                                      filter_dilation=(2, 1))),
    ((3, 4, 6, 6), (6, 2, 3, 3), dict(border_mode="half", num_groups=2,
                                      filter_dilation=(1, 2))),
]


@pytest.mark.parametrize("img_shape,kern_shape,kw", CASES)
def test_conv2d_and_its_gradients_match_the_cpu(device, img_shape, kern_shape, kw):
    _conv_case(device, "float64", img_shape, kern_shape, **kw)


def test_conv2d_float32_in_chunks_of_images(device, monkeypatch):
    """A batch whose columns exceed the budget runs image by image (the filter
    gradient summed over the chunks), with the same results."""
    from vmc.gpu.thunks import conv
    args = ((5, 3, 6, 6), (4, 3, 3, 3))
    f1, _, vals = _conv_case(device, "float32", *args, border_mode="half")
    monkeypatch.setattr(conv, "COL_BYTES", 1)
    f2, g, _ = _conv_case(device, "float32", *args, border_mode="half")
    close_sums(f2(*vals), f1(*vals))
    monkeypatch.setattr(conv, "COL_BYTES", 2 * (27 + 4) * 36 * 4)     # two images a chunk
    f3, _, _ = _conv_case(device, "float32", *args, border_mode="half")
    close_sums(f3(*vals), g(*vals))


def test_conv2d_of_strided_views(device):
    """Inputs that are views (a transposed image, filters reversed along a dim) on the device."""
    x, w = vt.dtensor4("x"), vt.dtensor4("w")
    y = conv2d(x.dimshuffle(0, 1, 3, 2), w[:, :, ::-1], border_mode="full")
    cost = (y * y).sum()
    f, g = compile_both([x, w], [y] + vmc.grad(cost, [x, w]), device)
    xv, wv = RNG.standard_normal((2, 3, 5, 4)), RNG.standard_normal((2, 3, 2, 3))
    assert_close(f(xv, wv), g(xv, wv))


def test_conv2d_shape_errors_name_the_shapes(device):
    x, w = vt.dtensor4("x"), vt.dtensor4("w")
    with vmc.config.change(device=device):
        f = vmc.function([x, w], conv2d(x, w))
    with pytest.raises(ValueError, match=r"\(2, 3, 5, 5\).*\(4, 2, 3, 3\).*do not fit"):
        f(np.zeros((2, 3, 5, 5)), np.zeros((4, 2, 3, 3)))
    with pytest.raises(ValueError, match="do not fit the input"):
        f(np.zeros((2, 3, 2, 2)), np.zeros((4, 3, 3, 3)))


POOLS = [
    dict(ws=(2, 2), mode="max"),
    dict(ws=(3, 2), stride=(2, 1), mode="max", ignore_border=False),
    dict(ws=(3, 3), stride=(2, 2), pad=(1, 2), mode="max"),
    dict(ws=(2, 3), mode="sum", ignore_border=False),
    dict(ws=(3, 3), stride=(2, 2), pad=(1, 1), mode="average_inc_pad"),
    dict(ws=(3, 2), stride=(1, 2), pad=(2, 1), mode="average_exc_pad"),
    dict(ws=(3, 3), stride=(2, 2), mode="average_exc_pad", ignore_border=False),
]


@pytest.mark.parametrize("kw", POOLS)
def test_pool_2d_and_its_gradient_match_the_cpu(device, kw):
    x, r = vt.dtensor4("x"), vt.dtensor4("r")
    y = pool_2d(x, **kw)
    outs = [y] + vmc.grad((y * r).sum(), [x])
    f, g = compile_both([x, r], outs, device)
    on, _ = ops_on(f, device)
    assert "Pool" in on and ("MaxPoolGrad" in on or "AveragePoolGrad" in on), on
    xv = RNG.standard_normal((2, 3, 7, 8))
    xv[0, 0, :2, :2] = 1.5                   # ties: every maximum gets the gradient
    rv = RNG.standard_normal(pool_2d(vt.constant(xv), **kw).eval().shape)
    assert_close(f(xv, rv), g(xv, rv))


def test_max_pool_grad_grad_nan_and_other_ranks(device):
    """The max pool's second derivative (DownsampleFactorMaxGradGrad), a nan in a
    window, float32, 3-d and 5-d inputs, and leading dims that do not collapse."""
    x3, x5 = vt.ftensor3("x3"), vt.TensorType("float32", (None,) * 5)("x5")
    kw = dict(ws=(2, 2), stride=(1, 2), ignore_border=False)
    y3 = pool_2d(x3, **kw)
    gx = vmc.grad((y3 * y3).sum(), x3)            # MaxPoolGrad
    ggx = vmc.grad((gx * gx).sum(), x3)           # through its gradient: the grad-grad
    y5 = pool_2d(x5.dimshuffle(2, 0, 1, 3, 4), **kw)
    f, g = compile_both([x3, x5], [y3, gx, ggx, y5, vmc.grad(y5.sum(), x5)], device)
    on, _ = ops_on(f, device)
    assert "DownsampleFactorMaxGradGrad" in on, on
    x3v = RNG.standard_normal((3, 5, 5)).astype("float32")
    x5v = RNG.standard_normal((2, 3, 2, 4, 5)).astype("float32")
    assert_close(f(x3v, x5v), g(x3v, x5v))
    x3v[1, 2, 2] = np.nan
    got, want = f(x3v, x5v)[0], g(x3v, x5v)[0]
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert np.isnan(got).any()


def _lenet(params, lr=np.float32(0.05)):
    x, y = vt.ftensor4("x"), vt.lvector("y")
    shared = [vmc.shared(p.copy(), name=f"p{i}") for i, p in enumerate(params)]
    w1, b1, w2, b2, w3, b3 = shared
    h = vt.tanh(conv2d(x, w1, border_mode="half") + b1.dimshuffle("x", 0, "x", "x"))
    h = pool_2d(h, (2, 2))
    h = vt.maximum(conv2d(h, w2) + b2.dimshuffle("x", 0, "x", "x"), 0)
    h = pool_2d(h, (2, 2), mode="average_exc_pad", ignore_border=False)
    p = vt.softmax(vt.dot(h.flatten(2), w3) + b3)
    loss = -vt.mean(vt.log(p)[vt.arange(y.shape[0]), y])
    grads = vmc.grad(loss, shared)
    step = vmc.function([x, y], loss, updates=[(s, s - lr * g) for s, g in zip(shared, grads)])
    return step, shared


def test_lenet_training_steps_match_the_cpu(device):
    shapes = [(4, 1, 5, 5), (4,), (6, 4, 3, 3), (6,), (6 * 3 * 3, 10), (10,)]
    params = [(RNG.standard_normal(s) * (0.3 if len(s) > 1 else 0.1)).astype("float32")
              for s in shapes]
    with vmc.config.change(device=device):
        step_d, shared_d = _lenet(params)
    step_c, shared_c = _lenet(params)
    on, off = ops_on(step_d, device)
    assert CONV_OPS | {"Pool", "MaxPoolGrad", "AveragePoolGrad"} <= set(on), on
    for _ in range(3):
        xv = RNG.standard_normal((16, 1, 14, 14)).astype("float32")
        yv = RNG.integers(0, 10, 16)
        np.testing.assert_allclose(step_d(xv, yv), step_c(xv, yv), rtol=1e-4)
    for a, b in zip(shared_d, shared_c):
        np.testing.assert_allclose(a.get_value(), b.get_value(), rtol=1e-4, atol=1e-5)
