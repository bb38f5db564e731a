"""The benchmark programs, written once per library family.

Elementwise chains are written against operators and a ``tanh`` passed in, so the same code
builds numpy, JAX, PyTorch and symbolic (vmc, PyTensor) versions. The MLP and the RNN have a
hand-written numpy version (forward and backward: the oracle), and JAX, PyTorch and Theano-like
versions. Nothing here imports a peer: the caller passes the modules in.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Callable

import numpy as np

# ---------------------------------------------------------------------------------------------
# Elementwise programs


def chain(x: Any, n_ops: int, tanh: Callable) -> Any:
    """``n_ops`` elementwise ops cycling through ``*x``, ``+0.1``, ``tanh``, ``-x``."""
    y = x
    for i in range(n_ops):
        k = i % 4
        if k == 0:
            y = y * x
        elif k == 1:
            y = y + 0.1
        elif k == 2:
            y = tanh(y)
        else:
            y = y - x
    return y


def chain_numexpr(n_ops: int) -> str:
    """The same chain as a numexpr string in ``x``."""
    y = "x"
    for i in range(n_ops):
        y = [f"({y}*x)", f"({y}+0.1)", f"tanh({y})", f"({y}-x)"][i % 4]
    return y


def gauss_tanh(x, y, z, exp, tanh):
    """``exp(-x*x)*y + tanh(z)*0.5``: 6 elementwise ops, two of them transcendental."""
    return exp(-x * x) * y + tanh(z) * 0.5


def axpy(x, y, z):
    """``x*y + z*0.5``: memory-bound."""
    return x * y + z * 0.5


def scale_chain(x: Any, n_ops: int) -> Any:
    """``n_ops`` ops alternating ``y*1.0001`` and ``y+0.5`` (fusable, no reduction)."""
    y = x
    for i in range(n_ops):
        y = y * 1.0001 if i % 2 == 0 else y + 0.5
    return y


def mean_chain(x: Any, steps: int, mean: Callable) -> Any:
    """``steps`` times ``y = y*1.0001 + 0.5; y = y - mean(y)``: a reduction every step."""
    y = x
    for _ in range(steps):
        y = y * 1.0001 + 0.5
        y = y - mean(y)
    return y


def scalar_graph(x, a, b, n_nodes: int):
    """``n_nodes`` scalar ops alternating ``y*a`` and ``y+b`` (nothing for a rewrite to fold)."""
    y = x
    for i in range(n_nodes):
        y = y * a if i % 2 == 0 else y + b
    return y


# ---------------------------------------------------------------------------------------------
# MLP training step: tanh hidden layers, softmax output, mean NLL, SGD on every parameter


def mlp_data(sizes: list, batch: int, dtype: str, seed: int = 0) -> SimpleNamespace:
    rng = np.random.default_rng(seed)
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        lim = np.sqrt(6.0 / (n_in + n_out))
        params.append(rng.uniform(-lim, lim, (n_in, n_out)).astype(dtype))
        params.append(np.zeros(n_out, dtype))
    X = rng.standard_normal((batch, sizes[0])).astype(dtype)
    y = rng.integers(0, sizes[-1], batch).astype(np.int64)
    return SimpleNamespace(params=params, X=X, y=y, lr=0.1, dtype=dtype)


def numpy_mlp_step(params: list, X, y, lr: float, xp=np):
    """One SGD step in place, forward and backward by hand; returns the loss before it.
    ``xp``: the array module (numpy; CuPy for the GPU peer of bench H)."""
    n, n_layers = X.shape[0], len(params) // 2
    hs, h = [X], X
    for i in range(n_layers - 1):
        h = xp.tanh(h @ params[2 * i] + params[2 * i + 1])
        hs.append(h)
    logits = h @ params[-2] + params[-1]
    m = logits.max(axis=1, keepdims=True)
    e = xp.exp(logits - m)
    s = e.sum(axis=1, keepdims=True)
    rows = xp.arange(n)
    loss = -(logits[rows, y] - m[:, 0] - xp.log(s[:, 0])).mean()
    d = e / s
    d[rows, y] -= 1
    d /= n
    for i in reversed(range(n_layers)):
        W, b, hin = params[2 * i], params[2 * i + 1], hs[i]
        gW, gb = hin.T @ d, d.sum(axis=0)
        if i > 0:
            d = (d @ W.T) * (1 - hin * hin)
        W -= lr * gW
        b -= lr * gb
    return loss


def numpy_mlp_reference(data: SimpleNamespace) -> list:
    """[loss, *params after one step] from the initial parameters."""
    params = [p.copy() for p in data.params]
    loss = numpy_mlp_step(params, data.X, data.y, data.lr)
    return [np.asarray(loss)] + params


def jax_mlp(jax, jnp, n_layers: int, lr: float) -> Callable:
    """A jitted ``step(params, X, y) -> (loss, new_params)`` (params donated)."""
    def loss_fn(params, X, y):
        h = X
        for i in range(n_layers - 1):
            h = jnp.tanh(h @ params[2 * i] + params[2 * i + 1])
        logits = h @ params[-2] + params[-1]
        logp = jax.nn.log_softmax(logits, axis=-1)
        return -jnp.mean(logp[jnp.arange(X.shape[0]), y])

    def step(params, X, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, X, y)
        return loss, [p - lr * g for p, g in zip(params, grads)]

    return jax.jit(step, donate_argnums=0)


def torch_mlp_loss(torch, n_layers: int) -> Callable:
    def loss_fn(params, X, y):
        h = X
        for i in range(n_layers - 1):
            h = torch.tanh(h @ params[2 * i] + params[2 * i + 1])
        logits = h @ params[-2] + params[-1]
        return torch.nn.functional.cross_entropy(logits, y)
    return loss_fn


def torch_mlp_step(torch, params: list, loss_fn: Callable, X, y, lr: float) -> Callable:
    """An eager ``step()``: forward, backward, SGD under no_grad; returns the loss tensor."""
    def step():
        loss = loss_fn(params, X, y)
        loss.backward()
        with torch.no_grad():
            for p in params:
                p -= lr * p.grad
                p.grad = None
        return loss
    return step


def theano_mlp(th, data: SimpleNamespace) -> tuple:
    """(compiled step f(X, y) -> loss, shared params) for vmc or PyTensor."""
    T, dtype = th.T, data.dtype
    X = (T.dmatrix if dtype == "float64" else T.fmatrix)("X")
    y = T.lvector("y")
    shared = [th.shared(p.copy(), name=f"p{i}") for i, p in enumerate(data.params)]
    n_layers = len(shared) // 2
    h = X
    for i in range(n_layers - 1):
        h = T.tanh(T.dot(h, shared[2 * i]) + shared[2 * i + 1])
    logits = T.dot(h, shared[-2]) + shared[-1]
    logp = T.log(th.softmax(logits))
    loss = -T.mean(logp[T.arange(y.shape[0]), y])
    grads = th.grad(loss, shared)
    lr = np.asarray(data.lr, dtype=dtype)
    updates = [(s, s - lr * g) for s, g in zip(shared, grads)]
    return th.function([X, y], loss, updates=updates), shared


# ---------------------------------------------------------------------------------------------
# RNN by scan: h_t = tanh(x_t W + h_{t-1} U + b); loss = sum of every h_t


def rnn_data(steps: int, batch: int, n_in: int, n_hid: int, seed: int = 0) -> SimpleNamespace:
    rng = np.random.default_rng(seed)
    return SimpleNamespace(
        X=rng.standard_normal((steps, batch, n_in)),
        W=rng.standard_normal((n_in, n_hid)) * 0.1,
        U=rng.standard_normal((n_hid, n_hid)) * 0.1,
        b=rng.standard_normal(n_hid) * 0.1,
        h0=np.zeros((batch, n_hid)))


def numpy_rnn_forward(X, W, U, b, h0):
    H = np.empty((X.shape[0],) + h0.shape, dtype=h0.dtype)
    h = h0
    for t in range(X.shape[0]):
        h = np.tanh(X[t] @ W + h @ U + b)
        H[t] = h
    return H


def numpy_rnn_grad(X, W, U, b, h0) -> list:
    """[loss, dloss/dW, dloss/dU] by hand-written BPTT, loss = sum(H)."""
    H = numpy_rnn_forward(X, W, U, b, h0)
    gW, gU = np.zeros_like(W), np.zeros_like(U)
    dh = np.zeros_like(h0)
    for t in reversed(range(X.shape[0])):
        da = (dh + 1.0) * (1.0 - H[t] * H[t])
        gW += X[t].T @ da
        gU += (H[t - 1] if t > 0 else h0).T @ da
        dh = da @ U.T
    return [np.asarray(H.sum()), gW, gU]


def jax_rnn(jax, jnp) -> tuple:
    """(jitted forward, jitted value-and-grad w.r.t. W and U)."""
    def forward(X, W, U, b, h0):
        def step(h, x):
            h = jnp.tanh(x @ W + h @ U + b)
            return h, h
        return jax.lax.scan(step, h0, X)[1]

    def loss_grad(X, W, U, b, h0):
        loss, (gW, gU) = jax.value_and_grad(
            lambda W_, U_: forward(X, W_, U_, b, h0).sum(), argnums=(0, 1))(W, U)
        return loss, gW, gU

    return jax.jit(forward), jax.jit(loss_grad)


def torch_rnn_forward(torch, X, W, U, b, h0):
    hs, h = [], h0
    for t in range(X.shape[0]):
        h = torch.tanh(X[t] @ W + h @ U + b)
        hs.append(h)
    return torch.stack(hs)


def theano_rnn(th, grad: bool):
    """Compiled ``f(X, W, U, b, h0)``: ``H``, or ``[loss, gW, gU]`` when ``grad``."""
    T = th.T
    tensor3 = getattr(T, "dtensor3", None) or (lambda n: T.tensor3(n, dtype="float64"))
    X = tensor3("X")
    W, U, h0 = T.dmatrix("W"), T.dmatrix("U"), T.dmatrix("h0")
    b = T.dvector("b")

    def step(x_t, h_prev, W_, U_, b_):
        return T.tanh(T.dot(x_t, W_) + T.dot(h_prev, U_) + b_)

    H, _ = th.scan(step, sequences=X, outputs_info=h0, non_sequences=[W, U, b])
    inputs = [X, W, U, b, h0]
    if not grad:
        return th.function(inputs, H)
    loss = H.sum()
    gW, gU = th.grad(loss, [W, U])
    return th.function(inputs, [loss, gW, gU])
