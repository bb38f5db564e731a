"""pool_2d against Theano's own reference loop (Pool.perform, window by window),
over modes, padding, strides and ignore_border, on both linkers (the C thunks
of vmc/thunks/_pool.pyx and the numpy ones); each C thunk against the numpy
thunks on strided and misaligned inputs; gradients with verify_grad."""
from __future__ import annotations

import numpy as np
import pytest

import vmc
import vmc.tensor as vt
from vmc._vm import call_thunk
from vmc.gradient import Rop, verify_grad
from vmc.tensor.signal.pool import (AveragePoolGrad, DownsampleFactorMaxGradGrad, MaxPoolGrad,
                                    Pool, pool_2d)
from vmc.thunks import pool as np_pool

from .helpers import check_infer_shape, misaligned, thunk_kinds

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
    ((2, 2), True, (3, 3), (0, 0), (2, 2, 8, 7)),        # gaps between the windows
    ((2, 2), True, (2, 3), (1, 0), (2, 2, 2, 5, 7)),     # padded, gaps, 5-d
    ((2, 2), True, None, (0, 0), (1, 2, 4, 40)),         # rows of 20 windows
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("geo", range(len(GEOMETRIES)))
@pytest.mark.parametrize("linker", ["cvm", "py"])
def test_pool_against_theano_loop(mode, geo, linker):
    ws, ib, st, pad, shape = GEOMETRIES[geo]
    xv = GEN.standard_normal(shape)
    x = vt.tensor("float64", (None,) * len(shape), "x")
    out = pool_2d(x, ws=ws, ignore_border=ib, stride=st, pad=pad, mode=mode)
    with vmc.config.change(linker=linker):
        f = vmc.function([x], out)
        f32 = vt.tensor("float32", (None,) * len(shape), "x")
        g = vmc.function([f32], pool_2d(f32, ws, ib, st, pad, mode))
    if linker == "cvm":
        assert thunk_kinds(f)["Pool"] == thunk_kinds(g)["Pool"] == {"c"}
    got = f(xv)
    np.testing.assert_allclose(got, pool_oracle(xv, ws, ib, st, pad, mode), rtol=1e-12)
    check_infer_shape(out, [x], [xv])
    got32 = g(xv.astype("float32"))
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32, got, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("geo", range(len(GEOMETRIES)))
def test_pool_c_thunks_against_numpy(mode, geo):
    """Every pool op's C thunk against its numpy thunk (which the oracle and
    verify_grad check), with ties between a window's elements (all equal
    maxima get the gradient), on transposed, strided and misaligned inputs,
    and a nan, which is the maximum of its window as np.maximum makes it; the
    inputs are left as they were."""
    from vmc.thunks import _pool
    ws, ib, st, pad, shape = GEOMETRIES[geo]
    kw = dict(ws=ws, ignore_border=ib, stride=st, pad=pad, mode=mode)
    for dtype in ("float64", "float32"):
        gen = np.random.default_rng(3)
        xv = np.round(gen.standard_normal(shape), 1).astype(dtype)    # ties
        xv.flat[5] = np.nan
        out = np_pool.pool_forward(Pool(**kw), xv)
        gz = gen.standard_normal(out.shape).astype(dtype)
        g = gen.standard_normal(shape).astype(dtype)
        if mode == "max":
            cases = [("max_grad", MaxPoolGrad(**kw), (xv, out, gz), np_pool.max_pool_grad),
                     ("max_grad_grad", DownsampleFactorMaxGradGrad(**kw), (xv, out, g),
                      np_pool.max_pool_grad_grad)]
        else:
            cases = [("average_grad", AveragePoolGrad(**kw), (xv, gz),
                      np_pool.average_pool_grad)]
        cases.append(("pool", Pool(**kw), (xv,), np_pool.pool_forward))
        for kind, op, args, ref in cases:
            want = ref(op, *args)
            thunk = _pool.pool_thunk(op, kind, dtype)
            for layout in (lambda a: a, lambda a: np.asfortranarray(a),
                           lambda a: np.repeat(a, 2, axis=-1)[..., ::2], misaligned):
                inputs = [layout(a) for a in args]
                (got,) = call_thunk(thunk, inputs, 1)
                for a, b in zip(inputs, args):      # the inputs are left as they were
                    np.testing.assert_array_equal(a, b)
                assert got.dtype == dtype and got.flags.c_contiguous
                np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6, err_msg=kind)


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


def test_pool_c_thunk_errors():
    """The C thunks check what the graph cannot: the shapes of the gradients."""
    x, out, gz = vt.tensor4("x"), vt.tensor4("out"), vt.tensor4("gz")
    f = vmc.function([x, out, gz], MaxPoolGrad((2, 2))(x, out, gz))
    assert thunk_kinds(f)["MaxPoolGrad"] == {"c"}
    dt = x.type.dtype
    with pytest.raises(ValueError, match="output gradient has shape"):
        f(np.zeros((1, 1, 4, 4), dt), np.zeros((1, 1, 2, 2), dt), np.zeros((1, 1, 2, 3), dt))
    with pytest.raises(ValueError, match="pool's output has shape"):
        f(np.zeros((1, 1, 4, 4), dt), np.zeros((1, 1, 3, 2), dt), np.zeros((1, 1, 3, 2), dt))


def test_pool_names_and_errors():
    x = vt.tensor4("x")
    a = pool_2d(x, ds=(2, 2), st=(1, 1), padding=(1, 1), ignore_border=True)
    b = pool_2d(x, ws=(2, 2), stride=(1, 1), pad=(1, 1), ignore_border=True)
    assert a.owner.op == b.owner.op
    with pytest.raises(ValueError, match="mode"):
        pool_2d(x, (2, 2), mode="median")
    with pytest.raises(NotImplementedError, match="ignore_border"):
        pool_2d(x, (2, 2), ignore_border=False, pad=(1, 1))
