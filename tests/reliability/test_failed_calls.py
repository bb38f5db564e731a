"""Item 5 of issue 20: a shared variable whose value the user made read-only
(``set_value(read_only, borrow=True)``) must not make an in-place update fail
halfway, after another update already wrote. Every in-place update falls back
to a new buffer, as elementwise ones did: the call succeeds, gives the values
a writable one gives, and leaves the user's read-only array as it was."""
import numpy as np
import pytest

import vmc
import vmc.tensor as vt

x, y, u = vt.dmatrix("x"), vt.dmatrix("y"), vt.dvector("u")
ARGS = (np.arange(6.).reshape(2, 3), np.ones((2, 3)) * 0.5, np.array([1., 2., 3.]))

UPDATES = {
    "gemm": lambda W, b: [(b, b + 1), (W, W - 0.1 * vt.dot(x.T, y))],
    "ger": lambda W, b: [(b, b + 1), (W, W + 0.1 * vt.outer(u, u))],
    "gemv": lambda W, b: [(W, W + 1), (b, b - 0.1 * vt.dot(W, u))],
    "elemwise": lambda W, b: [(b, b * 2 + 1), (W, W * 0.5 - u)],
    "inc_subtensor": lambda W, b: [(b, b + 1), (W, vt.inc_subtensor(W[0], u))],
}


def read_only(a):
    a = np.array(a)
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("linker", ["cvm", "py"])
@pytest.mark.parametrize("name", list(UPDATES))
@pytest.mark.parametrize("which", ["W", "b", "both"])
def test_read_only_shared_value_is_replaced_not_written(name, which, linker):
    W0, b0 = np.arange(9.).reshape(3, 3), np.array([0.5, -1., 2.])
    W, b = vmc.shared(W0.copy(), name="W"), vmc.shared(b0.copy(), name="b")
    f = vmc.function([x, y, u], [], updates=UPDATES[name](W, b), on_unused_input="ignore",
                     mode=vmc.Mode("fast_run", linker=linker))
    f(*ARGS)
    want_W, want_b = W.get_value(), b.get_value()
    rW, rb = read_only(W0), read_only(b0)
    W.set_value(W0.copy())
    b.set_value(b0.copy())
    if which in ("W", "both"):
        W.set_value(rW, borrow=True)
    if which in ("b", "both"):
        b.set_value(rb, borrow=True)
    f(*ARGS)
    np.testing.assert_allclose(W.get_value(), want_W, rtol=1e-14)
    np.testing.assert_allclose(b.get_value(), want_b, rtol=1e-14)
    np.testing.assert_array_equal(rW, W0)        # the user's arrays are untouched
    np.testing.assert_array_equal(rb, b0)


def test_failed_call_changes_no_shared_variable():
    """The shape check before the late updates still stops everything: the
    second update's shapes do not match, so neither update commits."""
    W, b = vmc.shared(np.ones((3, 3)), name="W"), vmc.shared(np.zeros(3), name="b")
    f = vmc.function([x, y], [], updates=[(b, b + 1), (W, W - 0.1 * vt.dot(x.T, y))])
    with pytest.raises(ValueError):
        f(np.ones((2, 3)), np.ones((2, 4)))
    np.testing.assert_array_equal(b.get_value(), np.zeros(3))
    np.testing.assert_array_equal(W.get_value(), np.ones((3, 3)))
