"""The rewrites settle, in work about linear in the graph, and no two of them
undo each other.

Graphs of integer shape arithmetic (lengths of slices, reshapes and joins of
symbolic shapes, ``//``, ``%``, ``maximum``, ``switch``) are drawn by
hypothesis; every replacement the passes make is logged, and the test fails
on a replacement that turns an expression back into one it was rewritten
from, on more rewrites than a small multiple of the graph's size, and on a
value that differs from Python's integer arithmetic. A conv, pool, conv
network written with slices, tensordot, reshape and max (whose shape
expressions were derived anew for each copy a shape rule made, so that a
pass did not settle) settles in a few hundred rewrites.
"""
from __future__ import annotations

import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vmc
import vmc.tensor as vt
from vmc.graph.fgraph import FunctionGraph
from vmc.opt import optimize
from vmc.thunks.registry import evaluate

X_SHAPE = (5, 7, 3)


def signature(v, depth=6, memo=None):
    """An expression's structure, leaves by name or value, ops by class and
    parameters: equal expressions built twice have equal signatures."""
    memo = {} if memo is None else memo
    key = (v, depth)
    if key not in memo:
        if v.owner is None:
            data = getattr(v, "data", None)
            memo[key] = repr(data.tolist()) if data is not None else (v.name or f"v{v.id}")
        elif depth == 0:
            memo[key] = "..."
        else:
            op = v.owner.op
            args = ",".join(signature(i, depth - 1, memo) for i in v.owner.inputs)
            memo[key] = f"{type(op).__name__}#{hash(op)}[{v.index}]({args})"
    return memo[key]


def rewrite_log(outputs, inputs):
    """Optimize a copy of the graph (fast_run), returning the replacements
    as (rewrite, old signature, new signature), and the graph's size."""
    fg = FunctionGraph(inputs, outputs)
    size = len(fg.apply_nodes)
    log = _SignatureLog()
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # "did not settle" fails the test
        optimize(fg, "fast_run", evaluate=evaluate, rewrite_log=log)
    return log, size


class _SignatureLog(list):
    """Takes the signatures when a replacement is made: later rewrites change
    the inputs of the nodes that stay in the graph."""

    def append(self, event):
        reason, old, new = event
        memo = {}
        super().append((reason, signature(old, memo=memo), signature(new, memo=memo)))


def undo_pairs(events):
    done = {(old, new): r for r, old, new in events if r != "merge"}
    return [(r, done[(new, old)], old, new) for (old, new), r in done.items()
            if (new, old) in done]


# -- hypothesis-generated integer shape arithmetic ------------------------------------
LEAVES = ["a", "b", "x0", "x1", "x2", "c"]
OPS = ["add", "sub", "mul", "floordiv", "mod", "neg", "max", "min", "switch", "slice",
       "reshape", "join"]


def trees(depth):
    leaf = st.sampled_from(LEAVES)
    if depth == 0:
        return leaf
    sub = trees(depth - 1)
    return st.one_of(leaf, st.tuples(st.sampled_from(OPS), sub, sub, sub))


class Expr:
    """Builds a tree both symbolically and as Python integers."""

    def __init__(self, x, a, b, consts):
        self.x, self.a, self.b = x, a, b
        self.consts = list(consts)

    def leaf(self, name, env):
        if name == "c":
            c = self.consts.pop() if self.consts else 3
            return vt.constant(c, dtype="int64"), c
        sym = {"a": self.a, "b": self.b, "x0": self.x.shape[0], "x1": self.x.shape[1],
               "x2": self.x.shape[2]}[name]
        return sym, env[name]

    def build(self, t, env):
        if isinstance(t, str):
            return self.leaf(t, env)
        op, p, q, r = t
        (P, p), (Q, q), (R, r) = (self.build(s, env) for s in (p, q, r))
        x, n0 = self.x, X_SHAPE[0]
        if op == "add":
            return P + Q, p + q
        if op == "sub":
            return P - Q, p - q
        if op == "mul":
            return P * Q, p * q
        if op == "floordiv":
            return P // vt.maximum(vt.abs(Q), 1), p // max(abs(q), 1)
        if op == "mod":
            return P % vt.maximum(vt.abs(Q), 1), p % max(abs(q), 1)
        if op == "neg":
            return -P, -p
        if op == "max":
            return vt.maximum(P, Q), max(p, q)
        if op == "min":
            return vt.minimum(P, Q), min(p, q)
        if op == "switch":
            return vt.switch(vt.lt(P, Q), R, P), (r if p < q else p)
        if op == "slice":       # lengths of slices of x, as a conv's im2col takes them
            return (x[P:Q].shape[0] + x[:, P // 2 * 2:].shape[1],
                    len(range(n0)[p:q]) + len(range(X_SHAPE[1])[p // 2 * 2:]))
        if op == "reshape":     # a pool's reshape: (n, c // k, k * rest) -> dims back
            k = vt.maximum(vt.abs(P) % 3, 1)
            y = x[:, :x.shape[1] // k * k].reshape((x.shape[0], x.shape[1] // k, -1))
            kk = max(abs(p) % 3, 1)
            return y.shape[1] + y.shape[2], X_SHAPE[1] // kk + kk * X_SHAPE[2]
        if op == "join":        # the length of a join of two slices
            y = vt.concatenate([x[P:], x[:Q]], axis=0)
            return y.shape[0], len(range(n0)[p:]) + len(range(n0)[:q])
        raise AssertionError(op)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(tree=trees(4), consts=st.lists(st.integers(-6, 8), max_size=6),
       av=st.integers(-9, 9), bv=st.integers(-9, 9))
def test_integer_shape_arithmetic_settles_without_undoing(tree, consts, av, bv):
    x, a, b = vt.tensor3("x"), vt.lscalar("a"), vt.lscalar("b")
    env = dict(a=av, b=bv, x0=X_SHAPE[0], x1=X_SHAPE[1], x2=X_SHAPE[2])
    out, want = Expr(x, a, b, consts).build(tree, env)
    events, size = rewrite_log([out], [x, a, b])
    assert not undo_pairs(events)
    assert sum(r != "merge" for r, _, _ in events) <= 10 * size + 20, (len(events), size)
    xv = np.zeros(X_SHAPE)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for mode in ("fast_run", "None"):
            f = vmc.function([x, a, b], out, mode=mode, on_unused_input="ignore")
            assert int(f(xv, av, bv)) == want, mode


def test_undo_pairs_are_found():
    """The checker itself: a rewrite and its inverse make a pair."""
    events = [("r1", "a+b", "b+a"), ("merge", "x", "y"), ("r2", "b+a", "a+b"),
              ("r3", "c", "d")]
    assert [(p[0], p[1]) for p in undo_pairs(events)] == [("r1", "r2"), ("r2", "r1")]


# -- the conv, pool, conv network from slices, tensordot, reshape and max ---------------
def _conv(x, w, k):
    oh, ow = x.shape[2] - k + 1, x.shape[3] - k + 1
    cols = vt.stack([x[:, :, i:i + oh, j:j + ow] for i in range(k) for j in range(k)], axis=2)
    wr = w.reshape((w.shape[0], w.shape[1], k * k))
    return vt.tensordot(cols, wr, axes=[[1, 2], [1, 2]]).dimshuffle(0, 3, 1, 2)


def _pool(x):
    n, c, h, w = x.shape[0], x.shape[1], x.shape[2], x.shape[3]
    r = x[:, :, :h // 2 * 2, :w // 2 * 2].reshape((n, c, h // 2, 2, w // 2, 2))
    return r.max(axis=(3, 5))


def _numpy_conv(x, w):
    k = w.shape[2]
    oh, ow = x.shape[2] - k + 1, x.shape[3] - k + 1
    out = np.zeros((x.shape[0], w.shape[0], oh, ow))
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = np.einsum("ncij,fcij->nf", x[:, :, i:i + k, j:j + k], w)
    return out


def test_conv_pool_conv_from_slices_settles():
    x, w1, w2 = vt.tensor4("x"), vt.tensor4("w1"), vt.tensor4("w2")
    h = _pool(vt.tanh(_conv(x, w1, 3)))
    y = vt.tanh(_conv(h, w2, 3))
    cost = y.sum()
    grads = vmc.grad(cost, [w1, w2])
    events, size = rewrite_log([cost] + grads, [x, w1, w2])
    assert not undo_pairs(events)
    assert sum(r != "merge" for r, _, _ in events) <= 4 * size, (len(events), size)
    with vmc.config.change(graph_cache=False), warnings.catch_warnings():
        warnings.simplefilter("error")
        f = vmc.function([x, w1, w2], [cost] + grads)
    gen = np.random.default_rng(3)
    xv, w1v, w2v = gen.normal(size=(2, 1, 12, 12)), gen.normal(size=(4, 1, 3, 3)), \
        gen.normal(size=(5, 4, 3, 3))
    h1 = np.tanh(_numpy_conv(xv, w1v)).reshape(2, 4, 5, 2, 5, 2).max(axis=(3, 5))
    np.testing.assert_allclose(f(xv, w1v, w2v)[0], np.tanh(_numpy_conv(h1, w2v)).sum())
