"""scan forward semantics against numpy loops."""
import numpy as np
import pytest

import vmc
import vmc.tensor as vt
from vmc.scan import foldl, foldr, map as vmap, reduce as vreduce, scan, until

RNG = np.random.default_rng(0)


def test_cumsum_forward_and_backwards():
    x = vt.vector("x")
    fwd, _ = scan(lambda x_t, acc: acc + x_t, sequences=x, outputs_info=vt.constant(0.0))
    bwd, _ = scan(lambda x_t, acc: acc + x_t, sequences=x, outputs_info=vt.constant(0.0),
                  go_backwards=True)
    f = vmc.function([x], [fwd, bwd])
    v = RNG.standard_normal(7)
    a, b = f(v)
    np.testing.assert_allclose(a, np.cumsum(v))
    np.testing.assert_allclose(b, np.cumsum(v[::-1]))


def test_fibonacci_taps():
    n = vt.lscalar("n")
    init = vt.lvector("init")
    fib, _ = scan(lambda a, b: a + b, outputs_info=dict(initial=init, taps=[-2, -1]),
                  n_steps=n)
    f = vmc.function([init, n], fib)
    out = f(np.array([0, 1]), 10)
    ref = [0, 1]
    for _ in range(10):
        ref.append(ref[-2] + ref[-1])
    np.testing.assert_array_equal(out, ref[2:])
    assert f(np.array([0, 1]), 0).shape == (0,)


def test_matrix_power_non_sequence_symbolic_n_steps():
    A = vt.matrix("A")
    k = vt.iscalar("k")
    res, _ = scan(lambda prior, A: vt.dot(prior, A), outputs_info=vt.ones_like(A),
                  non_sequences=A, n_steps=k)
    f = vmc.function([A, k], res[-1])
    a = RNG.standard_normal((3, 3))
    ref = np.ones((3, 3))
    for _ in range(5):
        ref = ref @ a
    np.testing.assert_allclose(f(a, 5), ref)


def test_sequence_taps_and_several_outputs():
    x = vt.vector("x")

    def step(xm1, x0, xp2, acc):
        return xm1 + 2 * x0 + xp2, acc + x0 * xp2
    (y, z), _ = scan(step, sequences=dict(input=x, taps=[-1, 0, 2]),
                     outputs_info=[None, vt.constant(0.0)])
    v = RNG.standard_normal(9)
    out_y, out_z = vmc.function([x], [y, z])(v)
    ys = [v[t - 1] + 2 * v[t] + v[t + 2] for t in range(1, 7)]
    np.testing.assert_allclose(out_y, ys)
    np.testing.assert_allclose(out_z, np.cumsum([v[t] * v[t + 2] for t in range(1, 7)]))


def test_go_backwards_with_taps():
    x = vt.vector("x")
    y, _ = scan(lambda a, b: a * b, sequences=dict(input=x, taps=[0, 1]), go_backwards=True)
    v = RNG.standard_normal(6)
    r = v[::-1]
    np.testing.assert_allclose(vmc.function([x], y)(v), r[:-1] * r[1:])


def test_until_stops_after_true_step():
    x0 = vt.scalar("x0")
    vals, _ = scan(lambda prev: (prev * 2, until(prev * 2 > 100)), outputs_info=x0,
                   n_steps=50)
    f = vmc.function([x0], vals)
    np.testing.assert_allclose(f(3.0), [6, 12, 24, 48, 96, 192])
    np.testing.assert_allclose(f(1000.0), [2000.0])


def test_shared_counter_updated_inside_loop():
    c = vmc.shared(np.asarray(0, dtype="int64"), name="c")
    x = vt.vector("x")

    def step(x_t):
        return x_t * vt.cast(c, "float64"), {c: c + 1}
    y, updates = scan(step, sequences=x)
    assert list(updates) == [c]
    f = vmc.function([x], y, updates=updates)
    v = np.ones(4)
    np.testing.assert_allclose(f(v), [0, 1, 2, 3])
    assert c.get_value() == 4
    np.testing.assert_allclose(f(v), [4, 5, 6, 7])
    assert c.get_value() == 8


def test_implicit_shared_and_closure_non_sequences():
    w = vmc.shared(np.array([1.0, 2.0]), name="w")
    scale = vt.scalar("scale")
    x = vt.matrix("x")
    y, _ = scan(lambda x_t: vt.dot(x_t, w) * scale, sequences=x)
    v = RNG.standard_normal((5, 2))
    np.testing.assert_allclose(vmc.function([x, scale], y)(v, 3.0), v @ [1.0, 2.0] * 3.0)
    w.set_value(np.array([0.0, 1.0]))
    np.testing.assert_allclose(vmc.function([x, scale], y)(v, 1.0), v[:, 1])


def test_map_reduce_foldl_foldr():
    x = vt.vector("x")
    sq, _ = vmap(lambda t: t ** 2, x)
    total, _ = vreduce(lambda t, acc: acc + t, x, vt.constant(0.0))
    left, _ = foldl(lambda t, acc: acc * 2 + t, x, vt.constant(0.0))
    right, _ = foldr(lambda t, acc: acc * 2 + t, x, vt.constant(0.0))
    v = np.array([1.0, 2.0, 3.0])
    out = vmc.function([x], [sq, total, left, right])(v)
    np.testing.assert_allclose(out[0], v ** 2)
    assert out[1] == pytest.approx(6.0)
    assert out[2] == pytest.approx(((1 * 2) + 2) * 2 + 3)
    assert out[3] == pytest.approx(((3 * 2) + 2) * 2 + 1)


def test_nested_scans():
    X = vt.matrix("X")

    def row_cumsum(row):
        inner, _ = scan(lambda v, acc: acc + v, sequences=row, outputs_info=vt.constant(0.0))
        return inner
    out, _ = scan(row_cumsum, sequences=X)
    v = RNG.standard_normal((4, 5))
    np.testing.assert_allclose(vmc.function([X], out)(v), np.cumsum(v, axis=1))


def test_nested_scan_reads_outer_step_value():
    x = vt.vector("x")

    def outer(x_t, acc):
        pw, _ = scan(lambda p: p * x_t, outputs_info=vt.constant(1.0), n_steps=3)
        return acc + pw[-1]
    out, _ = scan(outer, sequences=x, outputs_info=vt.constant(0.0))
    v = np.array([1.0, 2.0, 0.5])
    np.testing.assert_allclose(vmc.function([x], out)(v), np.cumsum(v ** 3))


def test_ifelse_inside_step_is_lazy():
    from vmc.ifelse import ifelse
    x = vt.vector("x")
    big = vt.vector("big")
    # The else branch would fail (shape mismatch) if it ran.
    y, _ = scan(lambda x_t: ifelse(x_t > -100, x_t * 2, vt.sum(big + vt.ones(3))), sequences=x)
    v = RNG.standard_normal(4)
    np.testing.assert_allclose(vmc.function([x, big], y)(v, np.ones(2)), v * 2)


def test_random_walk_fresh_draw_each_step():
    from vmc.tensor.random import RandomStream
    pytest.importorskip("vmc.thunks.numpy_thunks_random")
    srng = RandomStream(7)
    x0 = vt.scalar("x0")
    walk, updates = scan(lambda prev: prev + srng.normal(0.0, 1.0), outputs_info=x0,
                         n_steps=6)
    assert len(updates) == 1
    (rng,) = list(updates)
    start = rng.get_value()
    f = vmc.function([x0], walk, updates=updates)
    a = f(0.0)
    steps = np.diff(np.concatenate([[0.0], a]))
    ref = np.random.Generator(copy_bitgen(start))
    np.testing.assert_allclose(steps, [ref.normal(0.0, 1.0) for _ in range(6)])
    b = f(0.0)
    assert not np.allclose(a, b)          # the stream advanced
    # Without passing the updates, the default update still advances the stream.
    g = vmc.function([x0], walk)
    assert not np.allclose(g(0.0), b)


def copy_bitgen(gen):
    import copy
    return copy.deepcopy(gen.bit_generator)


def test_different_sequence_lengths_error_names_lengths():
    x, y = vt.vector("x"), vt.vector("y")
    z, _ = scan(lambda a, b: a + b, sequences=[x, y])
    f = vmc.function([x, y], z)
    with pytest.raises(ValueError, match=r"different lengths.*'x'.*3 steps.*'y'.*4 steps"):
        f(np.ones(3), np.ones(4))
    z2, _ = scan(lambda a, b: a + b, sequences=[x, y], n_steps=3)
    np.testing.assert_allclose(vmc.function([x, y], z2)(np.ones(3), np.ones(4)), 2 * np.ones(3))


def test_output_type_differs_from_initial():
    x = vt.vector("x")
    with pytest.raises(TypeError, match=r"output 0.*dtypes differ.*astype"):
        scan(lambda x_t, acc: acc + x_t, sequences=x, outputs_info=vt.constant(0, dtype="int64"))
    with pytest.raises(TypeError, match=r"ranks differ"):
        scan(lambda x_t, acc: acc + x_t, sequences=vt.matrix("m"), outputs_info=vt.constant(0.0))
    with pytest.raises(TypeError, match=r"broadcastable patterns differ"):
        scan(lambda x_t, acc: acc + x_t, sequences=vt.matrix("m"), outputs_info=vt.zeros((1,)))


def test_other_build_errors():
    x = vt.vector("x")
    with pytest.raises(ValueError, match="give sequences or n_steps"):
        scan(lambda a: a * 2, outputs_info=vt.constant(1.0))
    with pytest.raises(ValueError, match="outputs_info has 1 entry"):
        scan(lambda x_t, a: (a, a), sequences=x, outputs_info=vt.constant(1.0))
    with pytest.raises(ValueError, match="must be negative"):
        scan(lambda a: a, outputs_info=dict(initial=x, taps=[1]), n_steps=2)
    w = vmc.shared(np.ones(2), name="w")
    with pytest.raises(ValueError, match=r"strict=True.*'w'|strict=True.*w"):
        scan(lambda x_t: x_t * w, sequences=vt.matrix("m"), strict=True)


def test_strict_allows_non_sequences_computed_from_shared_variables():
    """Lasagne's GRU: ``strict=True`` with a non-sequence built from shared
    variables, and a body whose input product moves out of the loop (the
    push-out copies what it moves; strictness is judged on fn's body)."""
    a = vmc.shared(np.array([[1.0, 0.0], [0.5, 1.0]]), name="a")
    b = vmc.shared(np.array([[0.0, 2.0], [1.0, 0.0]]), name="b")
    w_hid, w_in = vt.concatenate([a, b], axis=1), vt.concatenate([b, a], axis=1)
    x = vt.matrix("x")

    def step(x_t, h, *_):
        return vt.tanh(vt.dot(h, w_hid)[:2] + vt.dot(x_t, w_in)[2:])

    h, _ = scan(step, sequences=x, outputs_info=vt.zeros((2,)),
                non_sequences=[w_hid, w_in], strict=True)
    xv = np.array([[1.0, 2.0], [0.5, -1.0]])
    want, hv = [], np.zeros(2)
    wh = np.hstack([a.get_value(), b.get_value()])
    wi = np.hstack([b.get_value(), a.get_value()])
    for t in range(2):
        hv = np.tanh((hv @ wh)[:2] + (xv[t] @ wi)[2:])
        want.append(hv)
    np.testing.assert_allclose(vmc.function([x], h)(xv), np.array(want))


def test_step_shape_change_is_reported():
    x = vt.vector("x")
    y, _ = scan(lambda acc: vt.concatenate([acc, acc]), outputs_info=x, n_steps=2)
    with pytest.raises(ValueError, match="shape"):
        vmc.function([x], y)(np.ones(2))


def test_vmc_scan_module_is_callable_and_has_until():
    import vmc.scan as vscan
    x = vt.vector("x")
    y, _ = vscan(lambda t: t + 1, sequences=x)
    np.testing.assert_allclose(vmc.function([x], y)(np.zeros(2)), [1, 1])
    assert vscan.until is until
    assert vscan.scan.until is until
