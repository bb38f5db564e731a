"""I. Convolutional nets: a LeNet training step, and conv2d forward alone.

LeNet: 28x28x1 input, conv 5x5x20, max pool 2, conv 5x5x50, max pool 2, dense 500 (tanh),
10 outputs (softmax, mean negative log-likelihood), SGD on all parameters (lr 0.01), batch
64, float32. Convolutions are cross-correlations with no padding (``filter_flip=False`` in
vmc, as ``lax.conv`` and ``torch.conv2d`` compute). numpy: forward and backward by hand
(sliding windows and tensordot), the oracle. JAX: ``jit`` of a step returning the new
parameters. PyTorch: an eager step with manual SGD, and the same with the loss
``torch.compile``d. vmc: one ``function([X, y], loss, updates=...)``.

conv2d forward: 64x64x32 input, 3x3x64 filters ('half' padding), batch 32, float32,
reported in GFLOP/s (2 * N * F * oh * ow * C * kh * kw flops). Its yardstick is this
machine's BLAS on the GEMM that im2col makes of it, (64 x 288) @ (288 x 131072), timed in
the same rounds (a baseline row): vmc's target is at least 0.7 of that rate.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from bench import peers
from bench.harness import Case, Impl, Runner

TITLE = "Convolutional nets, float32 (lower time is better)"
BLURB = ("vmc's targets (issue 17): LeNet step at least 1.0x the best peer's steps/s; conv2d "
         "forward at least 0.7 of the im2col GEMM's BLAS rate (`of gemm`).")
COLUMNS = ("steps/s", "GFLOP/s", "of gemm")
BATCH, LR = 64, 0.01
CONV = dict(n=32, c=32, h=64, w=64, f=64, k=3)


def cases(cfg) -> list:
    d = lenet_data(16 if cfg.quick else BATCH)
    lenet = Case(f"LeNet step b{d.X.shape[0]}", lambda: numpy_lenet_step(d),
                 [Impl("numpy", lambda: numpy_runner(d)),
                  Impl("jax jit", lambda: jax_runner(d)),
                  Impl("torch eager", lambda: torch_runner(d, compiled=False)),
                  Impl("torch.compile", lambda: torch_runner(d, compiled=True)),
                  Impl("vmc", lambda: vmc_runner(d))],
                 rtol=2e-3, atol=2e-4)
    c = dict(CONV, n=4) if cfg.quick else CONV
    x, w = conv_data(c)
    flops = 2 * c["n"] * c["f"] * c["h"] * c["w"] * c["c"] * c["k"] ** 2
    a = np.random.default_rng(1).standard_normal((c["f"], c["c"] * c["k"] ** 2)).astype("f4")
    b = np.random.default_rng(2).standard_normal((c["c"] * c["k"] ** 2,
                                                  c["n"] * c["h"] * c["w"])).astype("f4")
    conv = Case(f"conv2d fwd {c['n']}x{c['c']}x{c['h']}x{c['w']} * {c['f']}x3x3",
                lambda: numpy_conv(x, w),
                [Impl("im2col GEMM (BLAS)", lambda: Runner(np.dot, (a, b)), baseline=True),
                 Impl("jax jit", lambda: jax_conv_runner(x, w)),
                 Impl("torch eager", lambda: torch_conv_runner(x, w)),
                 Impl("vmc", lambda: vmc_conv_runner(x, w))],
                rtol=1e-3, atol=1e-3, meta={"flops": flops})
    return [lenet, conv]


# -- data and the numpy oracle ---------------------------------------------------------------
def lenet_data(batch, seed=0):
    g = np.random.default_rng(seed)

    def init(*shape, fan_in):
        return (g.standard_normal(shape) / np.sqrt(fan_in)).astype("float32")
    params = [init(20, 1, 5, 5, fan_in=25), np.zeros(20, "f4"),
              init(50, 20, 5, 5, fan_in=500), np.zeros(50, "f4"),
              init(800, 500, fan_in=800), np.zeros(500, "f4"),
              init(500, 10, fan_in=500), np.zeros(10, "f4")]
    return SimpleNamespace(X=g.random((batch, 1, 28, 28), dtype="float32"),
                           y=g.integers(0, 10, batch).astype("int64"), params=params, lr=LR)


def conv_data(c, seed=3):
    g = np.random.default_rng(seed)
    return (g.standard_normal((c["n"], c["c"], c["h"], c["w"])).astype("f4"),
            (g.standard_normal((c["f"], c["c"], c["k"], c["k"])) * 0.1).astype("f4"))


def _windows(x, k):
    return np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))


def _corr(x, w):             # (N, C, H, W) x (F, C, k, k) -> (N, F, oh, ow), no padding
    return np.tensordot(_windows(x, w.shape[2]), w, axes=([1, 4, 5], [1, 2, 3])) \
        .transpose(0, 3, 1, 2)


def _corr_grads(x, w, g):
    k = w.shape[2]
    gw = np.tensordot(g, _windows(x, k), axes=([0, 2, 3], [0, 2, 3]))        # (F, C, k, k)
    gp = np.pad(g, ((0, 0), (0, 0), (k - 1, k - 1), (k - 1, k - 1)))
    gx = _corr(gp, w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    return gx, gw


def _pool(x):
    n, c, h, w = x.shape
    r = x.reshape(n, c, h // 2, 2, w // 2, 2)
    out = r.max(axis=(3, 5))
    mask = r == out[:, :, :, None, :, None]
    return out, mask


def numpy_lenet_step(d, params=None):
    """Loss and the parameters after one SGD step (the oracle)."""
    params = [p.copy() for p in d.params] if params is None else params
    w1, b1, w2, b2, w3, b3, w4, b4 = params
    X, y = d.X, d.y
    a1 = _corr(X, w1) + b1[:, None, None]
    p1, m1 = _pool(a1)
    a2 = _corr(p1, w2) + b2[:, None, None]
    p2, m2 = _pool(a2)
    flat = p2.reshape(len(X), -1)
    h = np.tanh(flat @ w3 + b3)
    z = h @ w4 + b4
    z = z - z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=1))
    loss = np.mean(lse - z[np.arange(len(y)), y])
    dz = np.exp(z - lse[:, None])
    dz[np.arange(len(y)), y] -= 1
    dz /= len(y)
    gw4, gb4 = h.T @ dz, dz.sum(0)
    dh = (dz @ w4.T) * (1 - h * h)
    gw3, gb3 = flat.T @ dh, dh.sum(0)
    dp2 = (dh @ w3.T).reshape(p2.shape)
    da2 = (m2 * dp2[:, :, :, None, :, None]).reshape(a2.shape)
    dp1, gw2 = _corr_grads(p1, w2, da2)
    gb2 = da2.sum((0, 2, 3))
    da1 = (m1 * dp1[:, :, :, None, :, None]).reshape(a1.shape)
    _, gw1 = _corr_grads(X, w1, da1)
    gb1 = da1.sum((0, 2, 3))
    for p, g in zip(params, [gw1, gb1, gw2, gb2, gw3, gb3, gw4, gb4]):
        p -= d.lr * g.astype(p.dtype)
    return [np.float32(loss)] + params


def numpy_runner(d) -> Runner:
    params = [p.copy() for p in d.params]
    return Runner(lambda: numpy_lenet_step(d, params)[0],
                  result=lambda loss: [loss] + params)


def numpy_conv(x, w):
    pad = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    return _corr(pad, w)


# -- vmc -------------------------------------------------------------------------------------
def vmc_runner(d) -> Runner:
    import vmc
    import vmc.tensor as vt
    from vmc.tensor.nnet import conv2d
    from vmc.tensor.signal.pool import pool_2d
    shared = [vmc.shared(p.copy()) for p in d.params]
    w1, b1, w2, b2, w3, b3, w4, b4 = shared
    X, y = vt.tensor4("X", dtype="float32"), vt.lvector("y")
    h = pool_2d(conv2d(X, w1, filter_flip=False) + b1.dimshuffle("x", 0, "x", "x"), (2, 2))
    h = pool_2d(conv2d(h, w2, filter_flip=False) + b2.dimshuffle("x", 0, "x", "x"), (2, 2))
    h = vt.tanh(vt.dot(vt.flatten(h, 2), w3) + b3)
    lsm = vt.log_softmax(vt.dot(h, w4) + b4)
    loss = -vt.mean(lsm[vt.arange(y.shape[0]), y])
    grads = vmc.grad(loss, shared)
    f = vmc.function([X, y], loss, updates=[(p, p - np.float32(d.lr) * g)
                                            for p, g in zip(shared, grads)])
    return Runner(f, (d.X, d.y), result=lambda loss: [loss] + [s.get_value() for s in shared])


def vmc_conv_runner(x, w) -> Runner:
    import vmc
    import vmc.tensor as vt
    from vmc.tensor.nnet import conv2d
    X, W = vt.tensor4("x", dtype="float32"), vt.tensor4("w", dtype="float32")
    f = vmc.function([X, W], conv2d(X, W, border_mode="half", filter_flip=False))
    return Runner(f, (x, w))


# -- JAX and PyTorch -------------------------------------------------------------------------
def _jax_conv(jax, x, w, pad="VALID"):
    return jax.lax.conv_general_dilated(x, w, (1, 1), pad,
                                        dimension_numbers=("NCHW", "OIHW", "NCHW"))


def jax_runner(d) -> Runner:
    jax, jnp = peers.jax()

    def pool(a):
        return jax.lax.reduce_window(a, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2),
                                     "VALID")

    def loss_fn(ps, X, y):
        w1, b1, w2, b2, w3, b3, w4, b4 = ps
        h = pool(_jax_conv(jax, X, w1) + b1[:, None, None])
        h = pool(_jax_conv(jax, h, w2) + b2[:, None, None])
        h = jnp.tanh(h.reshape(X.shape[0], -1) @ w3 + b3)
        lsm = jax.nn.log_softmax(h @ w4 + b4)
        return -jnp.mean(lsm[jnp.arange(y.shape[0]), y])

    @jax.jit
    def step(ps, X, y):
        loss, gs = jax.value_and_grad(loss_fn)(ps, X, y)
        return loss, [p - d.lr * g for p, g in zip(ps, gs)]
    state = {"p": [jax.device_put(p.copy()) for p in d.params]}
    X, y = jax.device_put(d.X), jax.device_put(d.y)

    def call():
        loss, state["p"] = step(state["p"], X, y)
        jax.block_until_ready(state["p"])
        return loss.block_until_ready()
    return Runner(call, result=lambda loss: [loss] + [np.asarray(p) for p in state["p"]])


def jax_conv_runner(x, w) -> Runner:
    jax, _ = peers.jax()
    f = jax.jit(lambda a, b: _jax_conv(jax, a, b, ((1, 1), (1, 1))))
    X, W = jax.device_put(x), jax.device_put(w)
    return Runner(lambda: f(X, W).block_until_ready())


def torch_runner(d, compiled: bool) -> Runner:
    torch = peers.torch()
    F = torch.nn.functional
    params = [torch.tensor(p.copy(), requires_grad=True) for p in d.params]

    def loss_fn(ps, X, y):
        w1, b1, w2, b2, w3, b3, w4, b4 = ps
        h = F.max_pool2d(F.conv2d(X, w1, b1), 2)
        h = F.max_pool2d(F.conv2d(h, w2, b2), 2)
        h = torch.tanh(h.reshape(X.shape[0], -1) @ w3 + b3)
        return F.cross_entropy(h @ w4 + b4, y)
    if compiled:
        loss_fn = peers.torch_compile(loss_fn)
    X, y = torch.from_numpy(d.X), torch.from_numpy(d.y)

    def step():
        loss = loss_fn(params, X, y)
        for p in params:
            p.grad = None
        loss.backward()
        with torch.no_grad():
            for p in params:
                p -= d.lr * p.grad
        return loss.detach()
    return Runner(step, result=lambda loss: [loss] + [p.detach() for p in params])


def torch_conv_runner(x, w) -> Runner:
    torch = peers.torch()
    X, W = torch.from_numpy(x), torch.from_numpy(w)

    def call():
        with torch.no_grad():
            return torch.nn.functional.conv2d(X, W, padding=1)
    return Runner(call)


def derive(rows) -> None:
    gemm = {r.case: r.median for r in rows if r.ok and r.impl.startswith("im2col GEMM")}
    for r in rows:
        if not r.ok:
            continue
        if r.case.startswith("LeNet"):
            r.cols["steps/s"] = f"{1.0 / r.median:.1f}"
            continue
        flops = r.meta.get("flops")
        if flops:
            r.cols["GFLOP/s"] = f"{flops / r.median / 1e9:.1f}"
            if r.case in gemm:
                r.cols["of gemm"] = f"{gemm[r.case] / r.median:.2f}"
