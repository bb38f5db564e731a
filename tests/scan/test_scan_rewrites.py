"""Scan rewrites: memory, unused outputs, merging, hoisting; numbers against numpy."""
import tracemalloc

import numpy as np

import vmc
import vmc.tensor as vt
from vmc.graph.traversal import ancestors
from vmc.scan import Scan, scan

RNG = np.random.default_rng(2)


def compile_fast(*args, **kwargs):
    """These tests check what the rewrites did: compile with them on."""
    return vmc.function(*args, mode="fast_run", **kwargs)


def scan_nodes(f):
    return [n for n in f.fgraph.toposort() if isinstance(n.op, Scan)]


def test_only_last_step_kept():
    A = vt.matrix("A")
    k = vt.iscalar("k")
    res, _ = scan(lambda prior, A: vt.dot(prior, A), outputs_info=vt.ones_like(A),
                  non_sequences=A, n_steps=k)
    f = compile_fast([A, k], res[-1])
    (node,) = scan_nodes(f)
    assert node.op.info.keep == (1,)
    a = RNG.standard_normal((3, 3)) * 0.5
    np.testing.assert_allclose(f(a, 4), np.ones((3, 3)) @ np.linalg.matrix_power(a, 4))
    np.testing.assert_allclose(f(a, 0), np.ones((3, 3)))


def test_memory_does_not_grow_with_steps():
    x0 = vt.vector("x0")
    n = vt.lscalar("n")
    out, _ = scan(lambda h: h * 0.5 + 1.0, outputs_info=x0, n_steps=n)
    f = compile_fast([x0, n], out[-1])
    v = np.zeros(10000)                         # 80 kB per state
    f(v, 3)

    def peak(steps):
        tracemalloc.start()
        f(v, steps)
        _, p = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return p
    assert peak(400) < 2 * peak(4) + 200_000    # a full trace would be 32 MB


def test_last_k_entries_and_nit_outputs():
    x = vt.vector("x")
    (c, sq), _ = scan(lambda x_t, acc: (acc + x_t, x_t ** 2), sequences=x,
                      outputs_info=[vt.constant(0.0), None])
    f = compile_fast([x], [c[-1], c[-3], sq[-2]])
    keeps = scan_nodes(f)[0].op.info.keep
    assert keeps == (3, 2)
    v = RNG.standard_normal(6)
    out = f(v)
    np.testing.assert_allclose(out, [v.sum(), v[:4].sum(), v[-2] ** 2])


def test_unused_outputs_and_hidden_records_removed():
    s = vmc.shared(np.asarray(1.0), name="s")
    x = vt.vector("x")
    (y, z), updates = scan(lambda x_t: (x_t * s, vt.exp(x_t), {s: s * 2}), sequences=x)
    f = compile_fast([x], y, updates=updates)
    (node,) = scan_nodes(f)
    info = node.op.info
    assert info.n_nit == 1 and info.n_hidden == 0 and info.n_carry == 1
    np.testing.assert_allclose(f(np.ones(3)), [1, 2, 4])
    assert s.get_value() == 8


def test_unused_recurrent_output_dropped_when_nothing_reads_it():
    x = vt.vector("x")
    (a, b), _ = scan(lambda x_t, a, b: (a + x_t, b * x_t), sequences=x,
                     outputs_info=[vt.constant(0.0), vt.constant(1.0)])
    f = compile_fast([x], a)
    (node,) = scan_nodes(f)
    assert node.op.info.rec_taps == ((-1,),)
    np.testing.assert_allclose(f(np.arange(4.0)), np.cumsum(np.arange(4.0)))


def test_scans_over_same_sequence_merged():
    x = vt.vector("x")
    a, _ = scan(lambda t: t * 2, sequences=x)
    b, _ = scan(lambda t, acc: acc + t, sequences=x, outputs_info=vt.constant(0.0))
    f = compile_fast([x], [a, b])
    assert len(scan_nodes(f)) == 1
    v = RNG.standard_normal(5)
    out = f(v)
    np.testing.assert_allclose(out[0], v * 2)
    np.testing.assert_allclose(out[1], np.cumsum(v))


def test_dependent_scans_not_merged():
    x = vt.vector("x")
    a, _ = scan(lambda t: t * 2, sequences=x)
    b, _ = scan(lambda t, u: t + u, sequences=[x, a])
    f = compile_fast([x], b)
    assert len(scan_nodes(f)) == 2
    v = RNG.standard_normal(4)
    np.testing.assert_allclose(f(v), 3 * v)


def test_loop_invariant_work_hoisted():
    W = vt.matrix("W")
    x = vt.matrix("x")
    y, _ = scan(lambda x_t, W: vt.dot(x_t, vt.exp(W).T), sequences=x, non_sequences=W)
    op = y.owner.op if isinstance(y.owner.op, Scan) else y.owner.inputs[0].owner.op
    body = [v.owner for v in ancestors(op.inner_outputs) if v.owner is not None]
    names = {str(n.op) for n in body}
    assert "exp" not in names and not any(n.startswith("DimShuffle") for n in names)
    v, w = RNG.standard_normal((4, 3)), RNG.standard_normal((2, 3))
    np.testing.assert_allclose(vmc.function([x, W], y)(v, w), v @ np.exp(w).T)


def test_inner_profile_counts_every_step():
    import io
    from vmc.scan.thunk import inner_functions
    x = vt.vector("x")
    y, _ = scan(lambda t, acc: vt.tanh(acc + t), sequences=x, outputs_info=vt.constant(0.0))
    f = vmc.function([x], y)
    ((pc, inner),) = inner_functions(f)
    inner.set_profiling(True)
    f(np.ones(7))
    assert int(np.sum(inner.counts)) == 7 * inner.program.n_instr
    assert np.sum(inner.times) > 0
    out = io.StringIO()
    inner.profile.summary(file=out)
    assert "inner" in out.getvalue()


def test_scan_in_lazy_branch_not_merged_with_eager_one():
    from vmc.ifelse import ifelse
    x = vt.vector("x")
    c = vt.scalar("c")
    a, _ = scan(lambda t: t * 2, sequences=x)
    b, _ = scan(lambda t: vt.log(t), sequences=x)
    out = ifelse(c > 0, b, a)
    f = compile_fast([x, c], [out, a])
    assert len(scan_nodes(f)) == 2
    v = np.array([-1.0, 2.0])        # log(-1) would warn and give nan if it ran
    with np.errstate(invalid="raise"):
        res = f(v, -1.0)
    np.testing.assert_allclose(res[0], v * 2)


def test_outputs_that_are_views_of_previous_values_with_short_traces():
    x0 = vt.vector("x0")
    # b is a's previous value (a view of a's trace row), a's trace keeps one entry.
    (a, b, r), _ = scan(lambda a, b, r: (a + 1, a, r[::-1]), outputs_info=[x0, x0, x0],
                        n_steps=4)
    f = compile_fast([x0], [a[-1], b[-1], r[-1], r[-2]])
    assert scan_nodes(f)[0].op.info.keep == (1, 1, 2)
    v = np.array([1.0, 2.0, 3.0])
    out = f(v)
    np.testing.assert_allclose(out[0], v + 4)
    np.testing.assert_allclose(out[1], v + 3)
    np.testing.assert_allclose(out[2], v)
    np.testing.assert_allclose(out[3], v[::-1])


def test_mit_sot_last_value_only():
    init = vt.vector("init")
    fib, _ = scan(lambda a, b: a + b, outputs_info=dict(initial=init, taps=[-2, -1]),
                  n_steps=10)
    f = compile_fast([init], fib[-1])
    assert scan_nodes(f)[0].op.info.keep == (1,)
    assert f(np.array([0.0, 1.0])) == 89.0


def test_merging_loops_made_from_one_gives_each_inner_input_once():
    """The RNN-RBM's shape of graph: a recurrence over a sequence, a Gibbs
    chain that reads its outputs and draws random numbers, and a cost whose
    gradient (the chain held constant) copies the recurrence. The copies are
    rewritten alike and then merged: the merged body must not take one inner
    variable as two inputs (it did: "input x0[t] is given twice")."""
    from vmc.sandbox.rng_mrg import MRG_RandomStreams
    srng = MRG_RandomStreams(3)
    nv, nh, nr = 6, 4, 3
    gen = np.random.default_rng(0)
    W, Wuv, Wvu, Wuu = (vmc.shared(gen.normal(scale=0.3, size=s))
                        for s in ((nv, nh), (nr, nv), (nv, nr), (nr, nr)))
    bh = vmc.shared(np.zeros(nh))
    v = vt.matrix("v")

    def rec(v_t, u_tm1):
        return [vt.tanh(vt.dot(v_t, Wvu) + vt.dot(u_tm1, Wuu)), vt.dot(u_tm1, Wuv)]

    (_, bvt), _ = scan(rec, sequences=v, outputs_info=[vt.zeros((nr,)), None])

    def gibbs(x):
        h = srng.binomial(size=(x.shape[0], nh), n=1, p=vt.sigmoid(vt.dot(x, W) + bh),
                          dtype=x.dtype)
        return srng.binomial(size=x.shape, n=1, p=vt.sigmoid(vt.dot(h, W.T) + bvt),
                             dtype=x.dtype)

    chain, updates = scan(gibbs, outputs_info=[v], n_steps=2)
    vs = chain[-1]

    def free_energy(x):
        return -(x * bvt).sum() - vt.log(1 + vt.exp(vt.dot(x, W) + bh)).sum()

    cost = free_energy(v) - free_energy(vs)
    grads = vmc.grad(cost, [W, Wuv, Wvu, Wuu], consider_constant=[vs])
    f = compile_fast([v], [cost, vs] + grads, updates=updates)
    vv = (gen.random((5, nv)) < 0.5).astype("float64")
    c, vsv, gW = f(vv)[:3]
    # the numbers, from the chain's sample
    u, bvs = np.zeros(nr), []
    for t in range(5):
        bvs.append(u @ Wuv.get_value())
        u = np.tanh(vv[t] @ Wvu.get_value() + u @ Wuu.get_value())
    bvs = np.array(bvs)

    def fe(x):
        return -(x * bvs).sum() - np.log1p(np.exp(x @ W.get_value() + bh.get_value())).sum()

    np.testing.assert_allclose(c, fe(vv) - fe(vsv))
    sig = lambda a: 1 / (1 + np.exp(-a))                                   # noqa: E731
    dW = -vv.T @ sig(vv @ W.get_value()) + vsv.T @ sig(vsv @ W.get_value())
    np.testing.assert_allclose(gW, dW)
