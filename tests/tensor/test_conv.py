"""conv2d against a direct loop over output positions (the oracle), over the
border modes, strides, dilations, groups, filter flipping and both float
dtypes, on both linkers (the C thunks of vmc/thunks/_conv.pyx and the numpy
ones); each C algorithm (im2col + gemm in chunks, the direct kernels in both
ISA variants) against the numpy thunks on strided and misaligned inputs; its
gradients with verify_grad; Theano's grad helpers."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import vmc
import vmc.tensor as vt
from vmc._vm import call_thunk
from vmc.gradient import Rop, verify_grad
from vmc.tensor.nnet import conv2d
from vmc.tensor.nnet.abstract_conv import (AbstractConv2d, AbstractConv2d_gradInputs,
                                           AbstractConv2d_gradWeights, conv2d_grad_wrt_inputs,
                                           conv2d_grad_wrt_weights, get_conv_output_shape)
from vmc.thunks import conv as np_conv

from .helpers import check_infer_shape, misaligned, thunk_kinds

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

# Shapes for the C kernels' tiles (vmc/thunks/conv_direct_body.h): rows wider than
# two vectors with a partial last tile, filter counts that leave remainders after
# tiles of 8, 4 and 2, rows that fit one vector (tiles of 8 filters), and a filter
# gradient's vector loop with a scalar tail.
WIDE_CASES = [
    ("valid", (1, 1), True, (1, 1), 1, (2, 3, 7, 37), (5, 3, 3, 3)),     # rows of 35
    ("half", (2, 1), False, (1, 2), 1, (2, 2, 9, 21), (11, 2, 3, 3)),    # 4 + 4 + 2 + 1 filters
    ("valid", (1, 1), False, (1, 1), 2, (2, 4, 6, 10), (18, 2, 3, 3)),   # rows of 8
    ("full", (1, 1), True, (1, 1), 1, (1, 1, 5, 30), (7, 1, 5, 5)),
    ((1, 2), (1, 1), False, (2, 1), 1, (2, 2, 8, 13), (6, 2, 2, 4)),     # rows of 14
]


def _ids(case):
    shape = "x".join(map(str, case[5]))
    return f"{case[0]}-s{case[1]}-flip{int(case[2])}-d{case[3]}-g{case[4]}-{shape}"


def reversed_view(a):
    """``a``'s values through negative strides along its last two dims."""
    return np.ascontiguousarray(a[:, :, ::-1, ::-1])[:, :, ::-1, ::-1]


def permuted_view(a):
    """``a``'s values, laid out with its first two dims swapped."""
    return np.ascontiguousarray(a.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)


@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("linker", ["cvm", "py"])
def test_conv2d_against_loops(case, dtype, linker):
    mode, sub, flip, dil, groups, xs, ws = case
    xv = GEN.standard_normal(xs).astype(dtype)
    wv = GEN.standard_normal(ws).astype(dtype)
    x, w = vt.tensor4("x", dtype=dtype), vt.tensor4("w", dtype=dtype)
    out = conv2d(x, w, border_mode=mode, subsample=sub, filter_flip=flip,
                 filter_dilation=dil, num_groups=groups)
    with vmc.config.change(linker=linker):
        f = vmc.function([x, w], out)
    if linker == "cvm":
        assert thunk_kinds(f)["AbstractConv2d"] == {"c"}
    got = f(xv, wv)
    want = conv_oracle(xv.astype(np.float64), wv.astype(np.float64), mode, sub, flip, dil,
                       groups)
    assert got.dtype == dtype
    tol = 1e-4 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    assert get_conv_output_shape(xs, ws, mode, sub, dil)[2:] == want.shape[2:]
    if dtype == "float64":
        check_infer_shape(out, [x, w], [xv, wv])


@pytest.mark.parametrize("case", CASES + WIDE_CASES,
                         ids=[_ids(c) for c in CASES + WIDE_CASES])
@pytest.mark.parametrize("algo", ["gemm", "direct", "direct-baseline", "auto"])
def test_conv2d_c_algorithms_against_numpy(case, algo):
    """Each op's C thunk with one algorithm, against the numpy thunks (which
    the loop oracle checks above): a batch of 3 in chunks of 2 images (gemm),
    inputs transposed, strided or misaligned, both dtypes; the inputs are left
    as they were. 'direct' falls back to gemm where the direct kernels do not
    apply (column stride, the input gradient), so every case runs."""
    from vmc.thunks import _conv
    mode, sub, flip, dil, groups, xs, ws = case
    xs = (3,) + xs[1:]
    kw = dict(border_mode=mode, subsample=sub, filter_flip=flip, filter_dilation=dil,
              num_groups=groups)
    name, isa = (algo.split("-") + ["best"])[:2]
    for dtype in ("float64", "float32"):
        gen = np.random.default_rng(7)
        xv = gen.standard_normal(xs).astype(dtype)
        wv = gen.standard_normal(ws).astype(dtype)
        ops = [AbstractConv2d(**kw), AbstractConv2d_gradInputs(**kw),
               AbstractConv2d_gradWeights(**kw)]
        y = np_conv.conv_forward(ops[0], xv, wv)
        top = gen.standard_normal(y.shape).astype(dtype)
        hw_x, hw_w = np.array(xs[2:]), np.array(ws[2:])
        want = [y, np_conv.conv_grad_inputs(ops[1], wv, top, hw_x),
                np_conv.conv_grad_weights(ops[2], xv, top, hw_w)]
        per_image = xs[1] * ws[2] * ws[3] * y.shape[2] * y.shape[3] * xv.itemsize
        layouts = [(xv, wv, top),
                   (np.asfortranarray(xv), reversed_view(wv), permuted_view(top)),
                   (np.repeat(xv, 2, axis=3)[..., ::2], wv, top),
                   (misaligned(xv), misaligned(wv), misaligned(top))]
        _conv.set_direct_isa(isa)
        _conv.set_threads(1)            # 'auto' picks direct kernels only with one thread
        try:
            # chunks of two images (the second chunk is short), and one image per
            # gemm (the default with AVX-512 BLAS, when 'auto' never goes direct)
            for (x_in, w_in, t_in), (chunk, wide) in itertools.product(
                    layouts, ((2 * per_image, False), (0, True))):
                _conv.set_blas_wide(wide)
                args = [(x_in, w_in), (w_in, t_in, hw_x), (x_in, t_in, hw_w)]
                for op, kind, a, ref in zip(ops, ("forward", "grad_inputs", "grad_weights"),
                                            args, want):
                    thunk = _conv.conv_thunk(op, kind, dtype, name, chunk)
                    before = [np.array(v, copy=True) for v in a]
                    (got,) = call_thunk(thunk, a, 1)
                    for v, b in zip(a, before):
                        np.testing.assert_array_equal(v, b)
                    assert got.dtype == dtype and got.flags.c_contiguous
                    tol = 1e-4 if dtype == "float32" else 1e-12
                    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol,
                                               err_msg=f"{kind} {dtype}")
        finally:
            _conv.set_direct_isa("best")
            _conv.set_threads(vmc.config.threads)
            _conv.set_blas_wide(np_conv._blas_runs_avx512())


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


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_conv_pool_net_gradients_run_c_thunks(dtype):
    """A small LeNet's loss and gradients: every conv and pool op (forward and
    gradient) runs as a C thunk under the C VM, with the results of the numpy
    thunks (linker='py'). With one thread on an AVX2 machine the rule picks
    the direct kernels for both forward convolutions and the first layer's
    filter gradient (one input channel, rows of 17), gemm for the rest."""
    from vmc.tensor.signal.pool import pool_2d
    gen = np.random.default_rng(2)
    x = vt.tensor4("x", dtype=dtype)
    w1 = vmc.shared((gen.standard_normal((4, 1, 5, 5)) * 0.3).astype(dtype))
    w2 = vmc.shared((gen.standard_normal((6, 4, 3, 3)) * 0.3).astype(dtype))
    h = pool_2d(vt.tanh(conv2d(x, w1, filter_flip=False)), (2, 2))
    h = pool_2d(conv2d(h, w2, border_mode="half"), (2, 2), mode="average_exc_pad")
    loss = vt.sum(h ** 2)
    outs = [loss] + vmc.grad(loss, [x, w1, w2])
    xv = gen.standard_normal((5, 1, 16, 21)).astype(dtype)   # rows of 17: direct gw
    results = {}
    for linker in ("cvm", "py"):
        with vmc.config.change(linker=linker, threads=1):
            f = vmc.function([x], outs)
            results[linker] = f(xv)
        if linker == "cvm":
            kinds = thunk_kinds(f)
            for op in ("AbstractConv2d", "AbstractConv2d_gradInputs",
                       "AbstractConv2d_gradWeights", "Pool", "MaxPoolGrad", "AveragePoolGrad"):
                assert kinds[op] == {"c"}, op
    tol = 2e-4 if dtype == "float32" else 1e-10
    for got, want in zip(results["cvm"], results["py"]):
        assert got.dtype == want.dtype == dtype
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())


def test_conv_c_thunk_errors():
    """The C thunks' errors name the op and the shapes: filters that do not fit
    the input, an output gradient of the wrong shape, a spatial shape of the
    wrong length."""
    from vmc.thunks import _conv
    x, w = vt.tensor4("x"), vt.tensor4("w")
    dt = x.type.dtype
    f = vmc.function([x, w], conv2d(x, w, filter_dilation=(2, 1)))
    assert thunk_kinds(f)["AbstractConv2d"] == {"c"}
    with pytest.raises(ValueError, match=r"AbstractConv2d.*do not fit the input of shape "
                                         r"\(1, 2, 4, 6\)"):
        f(np.zeros((1, 2, 4, 6), dt), np.zeros((3, 2, 3, 3), dt))
    op = AbstractConv2d_gradWeights()
    thunk = _conv.conv_thunk(op, "grad_weights", "float64")
    xv = np.zeros((2, 3, 6, 6))
    with pytest.raises(ValueError, match=r"output gradient has shape \(2, 4, 3, 4\), "
                                         r"expected \(2, 4, 4, 4\)"):
        call_thunk(thunk, (xv, np.zeros((2, 4, 3, 4)), np.array([3, 3])), 1)
    with pytest.raises(ValueError, match="spatial shape must have 2 entries"):
        call_thunk(thunk, (xv, np.zeros((2, 4, 4, 4)), np.array([3, 3, 3])), 1)
    with pytest.raises(TypeError, match="only float32 and float64"):
        _conv.conv_thunk(op, "grad_weights", "int32")


def test_conv_c_thunk_never_overwrites_returned_arrays():
    """A C thunk reuses its output buffer across calls only when the caller
    dropped the last result: results the user holds keep their values."""
    x, w = vt.tensor4("x", dtype="float32"), vt.tensor4("w", dtype="float32")
    f = vmc.function([x, w], conv2d(x, w, border_mode="half"))
    gen = np.random.default_rng(4)
    args = [(gen.standard_normal((2, 3, 6, 7)).astype("f4"),
             gen.standard_normal((4, 3, 3, 3)).astype("f4")) for _ in range(3)]
    kept = [f(*a) for a in args]
    for got, (xv, wv) in zip(kept, args):
        want = conv_oracle(xv.astype(np.float64), wv.astype(np.float64), "half", (1, 1),
                           True, (1, 1), 1)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("threads", [1, 2])
def test_conv_c_thunks_follow_config_threads(threads):
    """config.threads changes the algorithm rule (direct kernels only with one
    thread), not the numbers: forward and both gradients against the oracle
    and the numpy thunks."""
    x, w = vt.tensor4("x", dtype="float32"), vt.tensor4("w", dtype="float32")
    out = conv2d(x, w, filter_flip=False)
    outs = [out] + vmc.grad(vt.sum(out ** 2), [x, w])
    gen = np.random.default_rng(6)
    xv = gen.standard_normal((4, 2, 9, 20)).astype("f4")
    wv = gen.standard_normal((5, 2, 3, 3)).astype("f4")
    with vmc.config.change(threads=threads):
        f = vmc.function([x, w], outs)
        got = f(xv, wv)
    with vmc.config.change(linker="py"):
        want = vmc.function([x, w], outs)(xv, wv)
    np.testing.assert_allclose(got[0], conv_oracle(xv.astype(np.float64), wv.astype(np.float64),
                                                   "valid", (1, 1), False, (1, 1), 1),
                               rtol=1e-4, atol=1e-4)
    for g, r in zip(got, want):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-4 * np.abs(r).max())
