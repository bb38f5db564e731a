"""C. MLP 784-500-10 training step, batch 128, float64 and float32: steps per second.

One step: tanh hidden layer, softmax output, mean negative log-likelihood of integer labels,
gradients of the four parameters, SGD update of all four (lr 0.1) inside the compiled
function. numpy: forward and backward written by hand, updates in place. JAX: ``jit`` of a
step returning the new parameters (donated). PyTorch: an eager step with manual SGD under
``no_grad``, and the same with the loss ``torch.compile``d. vmc and PyTensor: one
``function([X, y], loss, updates=...)`` with shared parameters. The check compares the loss
and all four parameters after one step from the same start.
"""
from __future__ import annotations

from bench import models, peers
from bench.harness import Case, Impl, Runner
from bench.impls import THEANO_KINDS, theano_lib

TITLE = "MLP 784-500-10 training step, batch 128 (lower time is better)"
BLURB = ("vmc's target (issue 4): at least 1.1x the best peer's steps/s in float32 and "
         "float64 (`x best peer` at most 0.91).")
COLUMNS = ("steps/s",)
SIZES = [784, 500, 10]
BATCH = 128


def cases(cfg) -> list:
    out = []
    for dt in ("float64", "float32"):
        data = models.mlp_data(SIZES, BATCH, dt)
        tol = {} if dt == "float64" else {"rtol": 1e-3, "atol": 1e-4}
        out.append(Case(f"{'-'.join(map(str, SIZES))} b{BATCH} {dt}",
                        lambda d=data: models.numpy_mlp_reference(d), mlp_impls(data),
                        **tol))
    return out


def mlp_impls(data) -> list:
    impls = [Impl("numpy", lambda: numpy_runner(data)),
             Impl("jax jit", lambda: jax_runner(data)),
             Impl("torch eager", lambda: torch_runner(data, compiled=False)),
             Impl("torch.compile", lambda: torch_runner(data, compiled=True))]
    for kind in THEANO_KINDS:
        impls.append(Impl(kind, lambda k=kind: theano_runner(k, data)))
    return impls


def numpy_runner(data) -> Runner:
    params = [p.copy() for p in data.params]
    return Runner(models.numpy_mlp_step, (params, data.X, data.y, data.lr),
                  result=lambda loss: [loss] + params)


def jax_runner(data) -> Runner:
    import warnings
    jax, jnp = peers.jax()
    warnings.filterwarnings("ignore", message=".*donated buffers.*")
    step = models.jax_mlp(jax, jnp, len(data.params) // 2, data.lr)
    state = {"params": [jax.device_put(p.copy()) for p in data.params]}
    X, y = jax.device_put(data.X), jax.device_put(data.y)

    def call():
        loss, state["params"] = step(state["params"], X, y)
        jax.block_until_ready(state["params"])
        return loss.block_until_ready()
    return Runner(call, result=lambda loss: [loss] + [p for p in state["params"]])


def torch_runner(data, compiled: bool) -> Runner:
    torch = peers.torch()
    params = [torch.tensor(p.copy(), requires_grad=True) for p in data.params]
    loss_fn = models.torch_mlp_loss(torch, len(params) // 2)
    if compiled:
        loss_fn = peers.torch_compile(loss_fn)
    X, y = torch.from_numpy(data.X), torch.from_numpy(data.y)
    step = models.torch_mlp_step(torch, params, loss_fn, X, y, data.lr)
    return Runner(step, result=lambda loss: [loss] + params)


def theano_runner(kind: str, data) -> Runner:
    th = theano_lib(kind)
    f, shared = models.theano_mlp(th, data)
    return Runner(f, (data.X, data.y),
                  result=lambda loss: [loss] + [s.get_value() for s in shared])


def derive(rows) -> None:
    for r in rows:
        if r.ok:
            r.cols["steps/s"] = f"{1.0 / r.median:.1f}"
