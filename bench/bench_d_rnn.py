"""D. RNN by scan: ``h_t = tanh(x_t W + h_{t-1} U + b)``, 100 steps, input and hidden 100,
batch 32, float64.

Cases: the forward pass (all 100 hidden states), and forward + gradient of ``sum(h)`` (the
sum of every hidden state) with respect to W and U. numpy: a Python loop, and hand-written
BPTT for the gradient (the oracle). JAX: ``lax.scan`` under ``jit`` and ``value_and_grad``.
PyTorch: an eager loop (``no_grad`` for the forward case) and autograd. vmc and PyTensor:
``scan`` and ``grad``, one compiled function per case.
"""
from __future__ import annotations

from bench import models, peers
from bench.harness import Case, Impl, Runner
from bench.impls import THEANO_KINDS, theano_lib

TITLE = "RNN by scan, 100 steps, 100 in/hidden, batch 32, float64 (lower is better)"
BLURB = ("vmc's targets (issue 5): forward at most 0.8x JAX lax.scan's time; forward + "
         "gradient at most 0.8x JAX's.")
COLUMNS = ("steps/s", "x jax")
STEPS, BATCH, N_IN, N_HID = 100, 32, 100, 100


def cases(cfg) -> list:
    d = models.rnn_data(STEPS, BATCH, N_IN, N_HID)
    args = (d.X, d.W, d.U, d.b, d.h0)
    out = []
    for grad in (False, True):
        ref = (lambda: models.numpy_rnn_grad(*args)) if grad else \
            (lambda: models.numpy_rnn_forward(*args))
        impls = [Impl("numpy loop", lambda g=grad: numpy_runner(args, g)),
                 Impl("jax lax.scan", lambda g=grad: jax_runner(args, g)),
                 Impl("torch eager", lambda g=grad: torch_runner(args, g))]
        impls += [Impl(kind + " scan", lambda k=kind, g=grad: theano_runner(k, args, g))
                  for kind in THEANO_KINDS]
        out.append(Case("forward + grad W,U" if grad else "forward", ref, impls))
    return out


def numpy_runner(args, grad) -> Runner:
    return Runner(models.numpy_rnn_grad if grad else models.numpy_rnn_forward, args)


def jax_runner(args, grad) -> Runner:
    jax, jnp = peers.jax()
    fwd, loss_grad = models.jax_rnn(jax, jnp)
    dev = tuple(jax.device_put(a) for a in args)
    f = loss_grad if grad else fwd
    return Runner(lambda *a: jax.block_until_ready(f(*a)), dev,
                  result=lambda out: list(out) if grad else out)


def torch_runner(args, grad) -> Runner:
    torch = peers.torch()
    X, W, U, b, h0 = (torch.from_numpy(a) for a in args)
    if not grad:
        def forward():
            with torch.no_grad():
                return models.torch_rnn_forward(torch, X, W, U, b, h0)
        return Runner(forward)
    Wg, Ug = W.clone().requires_grad_(True), U.clone().requires_grad_(True)

    def loss_grad():
        loss = models.torch_rnn_forward(torch, X, Wg, Ug, b, h0).sum()
        gW, gU = torch.autograd.grad(loss, [Wg, Ug])
        return [loss, gW, gU]
    return Runner(loss_grad)


def theano_runner(kind, args, grad) -> Runner:
    th = theano_lib(kind)
    f = models.theano_rnn(th, grad)
    return Runner(f, args)


def derive(rows) -> None:
    """steps/s: RNN time steps per second; ``x jax``: time over JAX lax.scan's."""
    jax_t = {r.case: r.median for r in rows if r.ok and r.impl == "jax lax.scan"}
    for r in rows:
        if r.ok:
            r.cols["steps/s"] = f"{STEPS / r.median:.0f}"
            if r.case in jax_t:
                r.cols["x jax"] = f"{r.median / jax_t[r.case]:.2f}"
