"""vmc.function: arguments, In/Out, checks and their messages, updates, givens,
copy, free and pickling. Each test runs on both VMs (the ``linker`` fixture)."""
import pickle
import warnings

import numpy as np
import pytest

import vmc
import vmc.tensor as vt

from compile_helpers import linker  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("linker")


def test_positional_keyword_and_defaults():
    x, y = vt.dvector("x"), vt.dvector("y")
    f = vmc.function([x, vmc.In(y, value=np.ones(3), name="why")], x - y)
    a, b = np.arange(3.0), np.full(3, 5.0)
    np.testing.assert_array_equal(f(a, b), a - b)
    np.testing.assert_array_equal(f(x=a, why=b), a - b)
    np.testing.assert_array_equal(f(a, why=b), a - b)
    np.testing.assert_array_equal(f(why=b, x=a), a - b)
    np.testing.assert_array_equal(f(a), a - 1)              # the default
    assert f.input_names == ["x", "why"]
    with pytest.raises(TypeError, match="multiple values for input 'x'"):
        f(a, x=a)


def test_wrong_number_of_arguments_and_unknown_keyword():
    x, y = vt.dvector("x"), vt.dvector("y")
    f = vmc.function([x, y], x + y, name="add2")
    with pytest.raises(TypeError, match=r"'add2' takes 2 argument\(s\), got 3"):
        f(np.ones(2), np.ones(2), np.ones(2))
    with pytest.raises(TypeError, match=r"missing argument 1 \(y\)"):
        f(np.ones(2))
    with pytest.raises(TypeError, match="unexpected keyword argument 'z'.*\\['x', 'y'\\]"):
        f(np.ones(2), z=np.ones(2))


def test_single_output_list_output_and_out():
    x = vt.dvector("x")
    v = np.arange(3.0)
    single = vmc.function([x], x * 2)
    assert isinstance(single(v), np.ndarray)
    as_list = vmc.function([x], [x * 2])
    assert isinstance(as_list(v), list) and len(as_list(v)) == 1
    two = vmc.function([x], (x * 2, x + 1))
    r = two(v)
    assert isinstance(r, list) and len(r) == 2
    np.testing.assert_array_equal(r[1], v + 1)
    out = vmc.function([x], vmc.Out(x * 3, borrow=True))
    np.testing.assert_array_equal(out(v), v * 3)
    nothing = vmc.function([x], [], on_unused_input="ignore")
    assert nothing(v) == []


@pytest.mark.parametrize("value, match", [
    (np.ones((2, 2)), r"argument 0 \('x'\): expected a 1-d array .* got a 2-d array of "
                      r"shape \(2, 2\)"),
    (np.ones(4), r"argument 0 \('x'\): expected shape \(3,\) .* got shape \(4,\)"),
    ("text", r"argument 0 \('x'\)"),
])
def test_rank_static_shape_and_type_errors_name_the_argument(value, match):
    x = vt.dvector("x", shape=(3,))
    f = vmc.function([x], x * 2)
    with pytest.raises(TypeError, match=match):
        f(value)


def test_lossy_downcast_rejected_unless_allowed():
    i = vt.ivector("i")
    f = vmc.function([i], i * 2)
    with pytest.raises(TypeError, match=r"argument 0 \('i'\).*int32.*float64.*"
                                        r"allow_input_downcast"):
        f(np.array([1.5, 2.0]))
    with pytest.raises(TypeError, match="int32"):
        f(np.array([1, 2], dtype=np.int64))            # int64 -> int32 loses range
    np.testing.assert_array_equal(f([1, 2]), [2, 4])  # exact Python values are fine
    g = vmc.function([i], i * 2, allow_input_downcast=True)
    r = g(np.array([1.7, 2.2]))
    assert r.dtype == np.int32 and r.tolist() == [2, 4]
    d = vt.dvector("d")
    h = vmc.function([d], d + 1)
    assert h(np.array([1, 2], dtype=np.int32)).dtype == np.float64      # upcast is safe
    fl = vt.fvector("fl")
    k = vmc.function([fl], fl + 1)
    with pytest.raises(TypeError, match="float32"):
        k(np.ones(2))                                                   # float64 -> float32


def test_trust_input_skips_the_checks():
    x = vt.dvector("x")
    f = vmc.function([x], x * 2, trust_input=True)
    assert f.trust_input
    np.testing.assert_array_equal(f(np.ones(2)), [2.0, 2.0])
    g = vmc.function([x], x * 2)
    g.trust_input = True
    np.testing.assert_array_equal(g(np.ones(3)), 2 * np.ones(3))
    g.trust_input = False
    with pytest.raises(TypeError):
        g(np.ones((2, 2)))


def test_on_unused_input():
    x, y = vt.dvector("x"), vt.dvector("y")
    with pytest.raises(ValueError, match=r"input 1 \(y\) is not used"):
        vmc.function([x, y], x * 2)
    with pytest.warns(UserWarning, match=r"input 1 \(y\) is not used"):
        f = vmc.function([x, y], x * 2, on_unused_input="warn")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = vmc.function([x, y], x * 2, on_unused_input="ignore")
    np.testing.assert_array_equal(f(np.ones(2), np.ones(5)), g(np.ones(2), np.ones(5)))


def test_bad_inputs_and_missing_inputs():
    x, y = vt.dvector("x"), vt.dvector("y")
    s = vmc.shared(np.ones(2), name="s")
    with pytest.raises(TypeError, match="is a .*SharedVariable"):
        vmc.function([s], s * 2)
    with pytest.raises(ValueError, match="given twice"):
        vmc.function([x, x], x * 2)
    with pytest.raises(ValueError, match=r"depend on y .* not among the inputs"):
        vmc.function([x], x + y)
    with pytest.raises(TypeError, match="must be a list"):
        vmc.function(x, x * 2)


def test_givens():
    x, y = vt.dvector("x"), vt.dvector("y")
    f = vmc.function([y], x * 2, givens={x: y + 1})
    np.testing.assert_array_equal(f(np.ones(2)), [4.0, 4.0])
    s = vmc.shared(np.full(2, 10.0), name="s")
    # a shared variable replaced by an input, and an input by a shared variable
    g = vmc.function([x], s * x, givens=[(s, x)])
    np.testing.assert_array_equal(g(np.full(2, 3.0)), [9.0, 9.0])
    h = vmc.function([], x + 1, givens={x: s})
    np.testing.assert_array_equal(h(), [11.0, 11.0])


def test_updates_commit_together_and_return_old_values():
    x = vt.dvector("x")
    a = vmc.shared(np.zeros(2), name="a")
    b = vmc.shared(np.ones(2), name="b")
    f = vmc.function([x], [a, b], updates=[(a, a + x), (b, b * 2 + a)])
    ra, rb = f(np.ones(2))
    np.testing.assert_array_equal(ra, [0, 0])              # outputs see the old values
    np.testing.assert_array_equal(rb, [1, 1])
    np.testing.assert_array_equal(a.get_value(), [1, 1])
    np.testing.assert_array_equal(b.get_value(), [2, 2])   # b * 2 + old a
    g = vmc.function([x], [], updates={a: a * x})
    g(np.full(2, 3.0))
    np.testing.assert_array_equal(a.get_value(), [3, 3])
    with pytest.raises(TypeError, match="not a shared variable"):
        vmc.function([x], [], updates=[(x, x + 1)])
    with pytest.raises(ValueError, match="updated twice"):
        vmc.function([x], [], updates=[(a, a + x), (a, a - x)])
    with pytest.raises(TypeError, match="ranks differ|has type"):
        vmc.function([x], [], updates=[(a, a.sum())])


def test_copy_has_its_own_shared_values():
    x = vt.dvector("x")
    w = vmc.shared(np.zeros(2), name="w")
    f = vmc.function([x], w * 1, updates=[(w, w + x)])
    f(np.ones(2))
    g = f.copy()
    np.testing.assert_array_equal(g(np.ones(2)), [1, 1])
    np.testing.assert_array_equal(g(np.ones(2)), [2, 2])       # g's own w moved on
    np.testing.assert_array_equal(w.get_value(), [1, 1])       # f's w did not
    np.testing.assert_array_equal(f(np.ones(2)), [1, 1])
    h = f.copy(share_memory=True)
    h(np.ones(2))
    np.testing.assert_array_equal(w.get_value(), [3, 3])       # shares f's w


def test_free_keeps_working():
    x = vt.dvector("x")
    f = vmc.function([x], vt.exp(x) * 2)
    v = np.arange(3.0)
    r1 = f(v)
    f.free()
    np.testing.assert_array_equal(f(v), r1)


def test_pickle_round_trip_with_shared_values():
    x = vt.dvector("x")
    w = vmc.shared(np.arange(3.0), name="w")
    k = vt.dscalar("k")
    f = vmc.function([x, vmc.In(k, value=2.0)], (w * x).sum() * k,
                     updates=[(w, w + x)], name="step")
    f(np.ones(3))
    g = pickle.loads(pickle.dumps(f))
    assert g.name == "step"
    v = np.array([1.0, 2.0, 3.0])
    assert g(v) == f(v)                     # same results, each with its own w
    assert g(v, 3.0) == f(v, 3.0)
    np.testing.assert_array_equal(w.get_value(), np.arange(3.0) + 1 + 2 * v)


def test_eval():
    x = vt.dvector("x")
    np.testing.assert_array_equal((x * 2).eval({x: np.ones(2)}), [2.0, 2.0])
    s = vmc.shared(np.ones(2), name="s")
    np.testing.assert_array_equal((s + 1).eval(), [2.0, 2.0])


def test_outputs_that_are_inputs_shared_or_constants():
    x = vt.dvector("x")
    s = vmc.shared(np.ones(2), name="s")
    f = vmc.function([x], [x, s, vt.constant(np.full(2, 7.0)), x * 2, x * 2])
    v = np.arange(2.0)
    r = f(v)
    np.testing.assert_array_equal(r[0], v)
    np.testing.assert_array_equal(r[1], [1, 1])
    np.testing.assert_array_equal(r[2], [7, 7])
    np.testing.assert_array_equal(r[3], r[4])
    r[1][:] = 5                                  # the user's copy, not s's buffer
    np.testing.assert_array_equal(s.get_value(), [1, 1])
    r[2][:] = 5
    np.testing.assert_array_equal(f(v)[2], [7, 7])


def test_eval_compiles_once_per_inputs_and_lets_the_graph_go():
    """``eval`` keeps its compiled function on the variable: a second call with
    the same inputs reuses it, and a variable nobody holds is freed with its
    function (a module-level cache kept every evaluated graph alive)."""
    import gc
    import weakref
    x = vt.dvector("x")
    y = (x * 2).sum()
    np.testing.assert_allclose(y.eval({x: np.arange(3.0)}), 6.0)
    np.testing.assert_allclose(y.eval({x: np.ones(4)}), 8.0)
    assert len(y.tag.eval_functions) == 1
    dead = weakref.ref(y)
    del y
    gc.collect()
    assert dead() is None
