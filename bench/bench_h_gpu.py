"""H. GPU (``VMC_FLAGS=device=cuda``), against PyTorch on the same device.

Runs only where ``import pycuda.driver`` works and a CUDA device is visible; otherwise every
row is ``skipped: no CUDA device/pycuda (<why>)``. Rows:

- ``exp(-x*x)*y + tanh(z)*0.5`` on 100M float32 (10M with --quick), inputs in GPU shared
  variables, output kept on the GPU (``vmc.Out(..., borrow=True)``), against PyTorch eager and
  a device-to-device copy (``GB/s``, ``of copy`` as in B);
- MLP 784-4096-4096-10 training step, batch 1024, float32 (data in shared variables), against
  PyTorch eager (steps/s);
- a small training step of about 20 kernels (MLP 64-128-128-10, batch 32): per-call time,
  vmc with ``vmc.config.gpu_graphs = True`` (CUDA graphs) and without, against PyTorch eager.

Every call is synchronized before the clock stops. Results are checked against numpy on the
CPU with float32 tolerances.
"""
from __future__ import annotations

import os

import numpy as np

from bench import models, peers
from bench.harness import Case, Impl, Runner, Skipped

TITLE = "GPU: elementwise, big MLP step, small step (lower is better)"
BLURB = ("vmc's targets (issue 7, H100): the fused expression at least 0.85x of the "
         "device-to-device copy bandwidth; the big MLP step at least PyTorch eager's steps/s; "
         "the ~20-kernel step at most PyTorch eager's per-call time (CUDA graphs on).")
COLUMNS = ("GB/s", "of copy", "steps/s")
GPU_TOL = {"rtol": 2e-3, "atol": 2e-4}


def gpu_unavailable() -> str | None:
    """None when pycuda imports and sees a CUDA device, else why not."""
    try:
        import pycuda.driver as cuda
    except Exception as exc:                              # noqa: BLE001 - reported
        return f"import pycuda.driver failed: {type(exc).__name__}: {exc}"
    try:
        cuda.init()
        if cuda.Device.count() < 1:
            return "pycuda sees no CUDA device"
    except Exception as exc:                              # noqa: BLE001 - reported
        return f"CUDA init failed: {type(exc).__name__}: {exc}"
    return None


def _use_gpu_flags() -> None:
    """``device=cuda`` for vmc in this process (before vmc is imported, or through config)."""
    flags = [f for f in os.environ.get("VMC_FLAGS", "").split(",")
             if f and not f.startswith("device=")]
    os.environ["VMC_FLAGS"] = ",".join(flags + ["device=cuda"])


def cases(cfg) -> list:
    why = gpu_unavailable()
    n = 10_000_000 if cfg.quick else 100_000_000
    big = [784, 1024, 1024, 10] if cfg.quick else [784, 4096, 4096, 10]
    big_batch = 256 if cfg.quick else 1024
    small, small_batch = [64, 128, 128, 10], 32
    if why is None:
        _use_gpu_flags()
    skip = f"no CUDA device/pycuda ({why})" if why else None
    out = []
    rng = np.random.default_rng(7)
    xyz = [rng.standard_normal(n, dtype=np.float32) for _ in range(3)] if not skip else []
    tag = f"float32 n={n:.0e}".replace("e+0", "e")
    out.append(Case(f"d2d copy {tag}", lambda: xyz[0].copy(),
                    [_gpu(skip, "torch cuda", lambda: _torch_copy(xyz[0]))],
                    meta={"bytes": 2 * n * 4, "dtype": "float32", "copy": True}, **GPU_TOL))
    expr = lambda m, x, y, z: models.gauss_tanh(x, y, z, m.exp, m.tanh)  # noqa: E731
    out.append(Case(f"exp(-x*x)*y+tanh(z)*0.5 {tag}", lambda: expr(np, *xyz),
                    [_gpu(skip, "torch cuda", lambda: _torch_elemwise(expr, xyz)),
                     _gpu(skip, "vmc", lambda: _vmc_elemwise(expr, xyz))],
                    meta={"bytes": 4 * n * 4, "dtype": "float32"}, **GPU_TOL))
    for sizes, batch, graphs in ((big, big_batch, (False,)), (small, small_batch, (False, True))):
        data = models.mlp_data(sizes, batch, "float32", seed=8)
        impls = [_gpu(skip, "torch cuda eager", lambda d=data: _torch_mlp(d))]
        impls += [_gpu(skip, "vmc" + (" gpu_graphs" if g else ""),
                       lambda d=data, g=g: _vmc_mlp(d, g)) for g in graphs]
        out.append(Case(f"MLP {'-'.join(map(str, sizes))} b{batch} float32",
                        lambda d=data: models.numpy_mlp_reference(d), impls,
                        meta={"steps": True}, **GPU_TOL))
    return out


def _gpu(skip: str | None, name: str, build) -> Impl:
    def guarded():
        if skip:
            raise Skipped(skip)
        return build()
    return Impl(name, guarded)


# ---------------------------------------------------------------------------------------------
# PyTorch on CUDA


def _cuda_torch():
    torch = peers.torch()
    if not torch.cuda.is_available():
        raise Skipped("torch sees no CUDA device (a CPU build of torch?)")
    return torch


def _torch_copy(x):
    torch = _cuda_torch()
    src = torch.from_numpy(x).cuda()
    dst = torch.empty_like(src)

    def call():
        dst.copy_(src)
        torch.cuda.synchronize()
    return Runner(call, result=lambda _: dst.cpu())


def _torch_elemwise(expr, xyz):
    torch = _cuda_torch()
    ts = [torch.from_numpy(a).cuda() for a in xyz]

    def call():
        out = expr(torch, *ts)
        torch.cuda.synchronize()
        return out
    return Runner(call)


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
    return Runner(call, result=lambda loss: [loss] + params)


# ---------------------------------------------------------------------------------------------
# vmc with device=cuda


def _vmc_gpu():
    v = peers.vmc()
    if v.config.device != "cuda":
        v.config.device = "cuda"
    import pycuda.driver as cuda
    return v, cuda


def _vmc_elemwise(expr, xyz):
    v, cuda = _vmc_gpu()
    import vmc.tensor as vt
    shared = [v.shared(a, name=f"x{i}") for i, a in enumerate(xyz)]
    f = v.function([], v.Out(expr(vt, *shared), borrow=True))

    def call():
        out = f()
        cuda.Context.synchronize()
        return out
    return Runner(call)


def _vmc_mlp(data, graphs: bool):
    v, cuda = _vmc_gpu()
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

    def call():
        out = f()
        cuda.Context.synchronize()
        return out
    return Runner(call, result=lambda loss: [loss] + [s.get_value() for s in shared])


def derive(rows) -> None:
    """GB/s and ``of copy`` for the elementwise rows, steps/s for the MLP rows."""
    copy = {r.meta["dtype"]: r.meta["bytes"] / r.median / 1e9 for r in rows
            if r.ok and r.meta.get("copy")}
    for r in rows:
        if not r.ok:
            continue
        if "bytes" in r.meta:
            gbs = r.meta["bytes"] / r.median / 1e9
            r.cols["GB/s"] = f"{gbs:.1f}"
            if copy.get(r.meta["dtype"]):
                r.cols["of copy"] = f"{gbs / copy[r.meta['dtype']]:.2f}"
        if r.meta.get("steps"):
            r.cols["steps/s"] = f"{1.0 / r.median:.1f}"
