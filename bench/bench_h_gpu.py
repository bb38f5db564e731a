"""H. GPU: vmc with ``device=cuda`` against CuPy (and PyTorch where installed) on the same
GPU; without a CUDA GPU, on an OpenCL device (PoCL on the CPU), against vmc on the CPU.

The device is CUDA when pycuda sees a CUDA device, else the first OpenCL device, else every
row is ``skipped``. Rows:

- a device-to-device copy (the bandwidth yardstick, ``baseline``) and
  ``exp(-x*x)*y + tanh(z)*0.5`` on 100M float32 (10M with --quick; 1M on OpenCL), inputs
  in device shared variables, the output kept on the device (``vmc.Out(..., borrow=True)``),
  against CuPy's unfused expression (``GB/s``, ``of copy``);
- MLP 784-4096-4096-10 training step, batch 1024, float32 (784-256-256-10 b128 on
  OpenCL or with --quick), data in shared variables, against the same step written with
  CuPy (the same cuBLAS) and PyTorch eager (steps/s);
- a small step of about 20 kernels (MLP 64-128-128-10, batch 32): per-call time, vmc with
  ``vmc.config.gpu_graphs = True`` (CUDA graphs) and without, against CuPy and PyTorch.

Every call is synchronized before the clock stops. On OpenCL the peer is vmc itself on the
CPU: there is no target there, the rows show that the device path works end to end.
"""
from __future__ import annotations

import numpy as np

from bench import models, peers
from bench.harness import Case, Impl, Missing, Runner, Skipped

TITLE = "GPU: elementwise, big MLP step, small step (lower is better)"
BLURB = ("vmc's targets (issue 18, on the H200 with CUDA): the fused expression at least 0.85x "
         "of the device-to-device copy bandwidth and at most 0.5x the time of CuPy's "
         "unfused expression; the big MLP step at least CuPy's steps/s; the ~20-kernel step "
         "with CUDA graphs at most 0.5x CuPy's per-call time. On OpenCL (PoCL) there is no "
         "target: the rows show the path works.")
COLUMNS = ("GB/s", "of copy", "steps/s")
GPU_TOL = {"rtol": 2e-3, "atol": 2e-4}


def device_kind() -> tuple:
    """("cuda" | "opencl", None), or (None, why there is no GPU device)."""
    reasons = []
    for kind in ("cuda", "opencl"):
        try:
            v = peers.vmc()
            from vmc.gpu import get_device
            get_device(kind)
            del v
            return kind, None
        except Exception as exc:                          # noqa: BLE001 - reported
            reasons.append(f"{kind}: {type(exc).__name__}: {str(exc)[:160]}")
    return None, "; ".join(reasons)


def cases(cfg) -> list:
    kind, why = device_kind()
    skip = f"no GPU device ({why})" if kind is None else None
    cuda = kind == "cuda"
    n = (10_000_000 if cfg.quick else 100_000_000) if cuda else 1_000_000
    big = [784, 4096, 4096, 10] if cuda and not cfg.quick else [784, 256, 256, 10]
    big_batch = 1024 if cuda and not cfg.quick else 128
    small, small_batch = [64, 128, 128, 10], 32
    rng = np.random.default_rng(7)
    xyz = [rng.standard_normal(n, dtype=np.float32) for _ in range(3)] if not skip else []
    tag = f"float32 n={n:.0e}".replace("e+0", "e")
    expr = lambda m, x, y, z: models.gauss_tanh(x, y, z, m.exp, m.tanh)  # noqa: E731
    out = [Case(f"exp(-x*x)*y+tanh(z)*0.5 {tag}", lambda: expr(np, *xyz), [
        Impl("d2d copy", _gpu(skip, lambda: _vmc_copy(kind, xyz[0])), baseline=True),
        _gpu(skip, lambda: _vmc_elemwise(kind, expr, xyz), f"vmc {kind}"),
        *_peers(skip, cuda, lambda m: _cupy_elemwise(expr, xyz),
                lambda: _torch_elemwise(expr, xyz), lambda: _vmc_elemwise("cpu", expr, xyz))],
        meta={"bytes": 4 * n * 4, "dtype": "float32"}, **GPU_TOL)]
    for sizes, batch, graphs in ((big, big_batch, (False,)), (small, small_batch, (False, True))):
        data = models.mlp_data(sizes, batch, "float32", seed=8)
        impls = [_gpu(skip, lambda d=data, g=g: _vmc_mlp(kind, d, g),
                      f"vmc {kind}" + (" gpu_graphs" if g else ""))
                 for g in graphs if cuda or not g]
        impls += _peers(skip, cuda, lambda m, d=data: _cupy_mlp(d), lambda d=data: _torch_mlp(d),
                        lambda d=data: _vmc_mlp("cpu", d, False))
        out.append(Case(f"MLP {'-'.join(map(str, sizes))} b{batch} float32",
                        lambda d=data: models.numpy_mlp_reference(d), impls,
                        meta={"steps": True}, **GPU_TOL))
    return out


def _peers(skip, cuda, cupy_build, torch_build, cpu_build) -> list:
    """CuPy and PyTorch on CUDA; vmc on the CPU next to an OpenCL device."""
    if skip:
        return [_gpu(skip, None, "cupy")]
    if not cuda:
        return [Impl("vmc cpu", cpu_build)]
    return [Impl("cupy", lambda: cupy_build(_cupy())), Impl("torch cuda", torch_build)]


def _gpu(skip: str | None, build, name: str = "") -> Impl:
    def guarded():
        if skip:
            raise Skipped(skip)
        return build()
    return Impl(name, guarded) if name else guarded


# ---------------------------------------------------------------------------------------------
# vmc on a device


def _vmc_on(kind: str):
    v = peers.vmc()
    v.config.device = kind
    v.config.gpu_graphs = False
    return v


def _sync(v, kind):
    if kind == "cpu":
        return lambda: None
    from vmc.gpu import get_device
    return get_device(kind).synchronize


def _vmc_copy(kind, x):
    v = _vmc_on(kind)
    from vmc.gpu import get_device
    from vmc.gpu._gpu import copy_into, gpu_empty, to_device
    dev = get_device(kind)
    src = to_device(dev, x)
    dst = gpu_empty(dev, x.shape, x.dtype)
    sync = _sync(v, kind)

    def call():
        copy_into(dst, src)
        sync()
        return dst
    return Runner(call)


def _vmc_elemwise(kind, expr, xyz):
    v = _vmc_on(kind)
    import vmc.tensor as vt
    shared = [v.shared(a, name=f"x{i}") for i, a in enumerate(xyz)]
    f = v.function([], v.Out(expr(vt, *shared), borrow=True))
    sync = _sync(v, kind)

    def call():
        out = f()
        sync()
        return out
    return Runner(call, result=lambda out: out if kind == "cpu" else out.get())


def _vmc_mlp(kind, data, graphs: bool):
    v = _vmc_on(kind)
    v.config.gpu_graphs = graphs
    th = peers.vmc_fn()
    T = th.T
    X, y = T.fmatrix("X"), T.lvector("y")
    Xs, ys = v.shared(data.X, name="X"), v.shared(data.y, name="y")
    shared = [v.shared(p.copy(), name=f"p{i}") for i, p in enumerate(data.params)]
    h = X
    for i in range(len(shared) // 2 - 1):
        h = T.tanh(T.dot(h, shared[2 * i]) + shared[2 * i + 1])
    logp = T.log(th.softmax(T.dot(h, shared[-2]) + shared[-1]))
    loss = -T.mean(logp[T.arange(y.shape[0]), y])
    lr = np.asarray(data.lr, dtype=np.float32)
    updates = [(s, s - lr * g) for s, g in zip(shared, th.grad(loss, shared))]
    f = th.function([], loss, updates=updates, givens=[(X, Xs), (y, ys)])
    return Runner(f, result=lambda loss: [loss] + [s.get_value() for s in shared])


# ---------------------------------------------------------------------------------------------
# CuPy and PyTorch on CUDA


def _cupy():
    try:
        import cupy
    except ImportError as exc:
        raise Missing(f"cupy: {exc} (pip install cupy-cuda13x)") from None
    return cupy


def _cupy_elemwise(expr, xyz):
    cp = _cupy()
    xs = [cp.asarray(a) for a in xyz]

    def call():
        out = expr(cp, *xs)
        cp.cuda.runtime.deviceSynchronize()
        return out
    return Runner(call, result=lambda out: cp.asnumpy(out))


def _cupy_mlp(data):
    cp = _cupy()
    params = [cp.asarray(p) for p in data.params]
    X, y = cp.asarray(data.X), cp.asarray(data.y)

    def call():
        loss = models.numpy_mlp_step(params, X, y, data.lr, xp=cp)
        cp.cuda.runtime.deviceSynchronize()
        return loss
    return Runner(call, result=lambda loss: [cp.asnumpy(loss)] + [cp.asnumpy(p) for p in params])


def _cuda_torch():
    torch = peers.torch()
    if not torch.cuda.is_available():
        raise Skipped("torch sees no CUDA device (a CPU build of torch?)")
    return torch


def _torch_elemwise(expr, xyz):
    torch = _cuda_torch()
    ts = [torch.from_numpy(a).cuda() for a in xyz]

    def call():
        out = expr(torch, *ts)
        torch.cuda.synchronize()
        return out
    return Runner(call, result=lambda out: out.cpu().numpy())


def _torch_mlp(data):
    torch = _cuda_torch()
    params = [torch.tensor(p, device="cuda", requires_grad=True) for p in data.params]
    loss_fn = models.torch_mlp_loss(torch, len(params) // 2)
    X, y = torch.from_numpy(data.X).cuda(), torch.from_numpy(data.y).cuda()
    step = models.torch_mlp_step(torch, params, loss_fn, X, y, data.lr)

    def call():
        loss = step()
        torch.cuda.synchronize()
        return loss
    return Runner(call, result=lambda loss: [loss.detach().cpu().numpy()]
                  + [p.detach().cpu().numpy() for p in params])


def derive(rows) -> None:
    """GB/s and ``of copy`` for the elementwise rows, steps/s for the MLP rows."""
    copy = {r.case: r.meta["bytes"] / 2 / r.median / 1e9 for r in rows
            if r.ok and r.impl == "d2d copy"}
    for r in rows:
        if not r.ok:
            continue
        if "bytes" in r.meta:
            nbytes = r.meta["bytes"] / 2 if r.impl == "d2d copy" else r.meta["bytes"]
            gbs = nbytes / r.median / 1e9
            r.cols["GB/s"] = f"{gbs:.1f}"
            if copy.get(r.case):
                r.cols["of copy"] = f"{gbs / copy[r.case]:.2f}"
        if r.meta.get("steps"):
            r.cols["steps/s"] = f"{1.0 / r.median:.1f}"
