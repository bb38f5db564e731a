"""Theano's names, written as Theano programs use them with only the import
renamed, each checked against numpy or hand values."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import vmc as theano
import vmc.tensor as T
from vmc.graph.grad import DisconnectedInputError, NullGradientError


def test_gradient_functions_are_in_tensor_too():
    x = T.dvector("x")
    cost = T.sum(x ** 3)
    g = T.grad(cost, x)
    H = T.hessian(cost, x)
    f = theano.function([x], [g, H])
    v = np.array([1.0, -2.0, 3.0])
    g_val, h_val = f(v)
    np.testing.assert_allclose(g_val, 3 * v ** 2)
    np.testing.assert_allclose(h_val, np.diag(6 * v))
    assert T.jacobian is theano.gradient.jacobian and T.verify_grad is theano.gradient.verify_grad
    assert T.Rop is theano.gradient.Rop and T.Lop is theano.gradient.Lop


def test_tensor_type_takes_theanos_broadcastable_pattern():
    col = T.TensorType(theano.config.floatX, (False, True))("c")
    assert col.type.shape == (None, 1) and col.broadcastable == (False, True)
    # a list, and the keyword, as Lasagne's InputLayer writes it
    assert T.TensorType("float32", [False] * 3)().type.shape == (None, None, None)
    assert T.TensorType("int32", broadcastable=(True,))().type.shape == (1,)
    # False is "unknown length", never the length 0 (they hash alike)
    empty = T.TensorType("float64", (0, 3))
    assert empty.shape == (0, 3)
    assert T.TensorType("float64", (False, 3)).shape == (None, 3)
    assert theano.TensorType is T.TensorType


def test_a_variable_is_true_but_a_comparison_has_no_truth_value():
    W = theano.shared(np.zeros(3))
    x = T.matrix()
    assert W and x and (x + 1) and not (not T.constant(0))
    for cmp in (lambda: bool(x > 0), lambda: 0 < x < 1, lambda: bool(T.eq(x, 1))):
        with pytest.raises(TypeError, match="comparison"):
            cmp()


def test_a_shape_vector_iterates_a_matrix_does_not():
    x = T.tensor3()
    dims = [s for s in x.shape]
    f = theano.function([x], dims)
    assert [int(d) for d in f(np.zeros((2, 3, 4)))] == [2, 3, 4]
    with pytest.raises(TypeError, match="iterate"):
        list(T.matrix())


def test_shared_with_a_broadcastable_pattern():
    b = theano.shared(np.zeros((1, 3)), broadcastable=(True, False))
    assert b.broadcastable == (True, False)
    x = T.matrix()
    # Lasagne's updates: a velocity with its parameter's pattern
    v = theano.shared(np.zeros((1, 3)), broadcastable=b.broadcastable)
    f = theano.function([x], (x + b).sum(), updates=[(v, v + b + 1), (b, b + 1)])
    assert f(np.ones((2, 3))) == 6.0
    np.testing.assert_array_equal(v.get_value(), np.ones((1, 3)))
    with pytest.raises(TypeError, match="numpy array"):
        theano.shared([1.0, 2.0], strict=True)
    with pytest.raises(ValueError, match="broadcastable"):
        theano.shared(np.zeros(3), broadcastable=(True, False))


def test_a_python_float_goes_into_a_floatx_input():
    with theano.config.change(floatX="float32"):
        lr = T.scalar("lr")
        f = theano.function([lr], lr * 2)
        out = f(0.1)
        assert out.dtype == np.float32 and out == np.float32(0.1) * 2
        # only a Python float, only into floatX, only under the default rule
        with pytest.raises(TypeError, match="lose precision"):
            f(np.float64(0.1))
        with pytest.raises(TypeError, match="lose precision"):
            theano.function([lr], lr, allow_input_downcast=False)(0.1)
    d = T.fscalar()
    with pytest.raises(TypeError, match="lose precision"):
        theano.function([d], d)(0.1)            # float32, but floatX is float64 here


def test_grad_clip_and_the_other_gradient_only_ops():
    x = T.dvector("x")
    v = np.array([0.5, -3.0, 2.0])
    clipped = theano.gradient.grad_clip(x, -1, 1.5)
    cost = T.sum(clipped ** 2) + T.sum(theano.gradient.grad_scale(x, 3.0)) \
        + T.sum(theano.gradient.zero_grad(x) * 7) + T.sum(theano.gradient.disconnected_grad(x))
    f = theano.function([x], [cost, T.grad(cost, x)])
    c_val, g_val = f(v)
    np.testing.assert_allclose(c_val, np.sum(v ** 2) + 3 * 0 + np.sum(v) * 9)
    np.testing.assert_allclose(g_val, np.clip(2 * v, -1, 1.5) + 3.0)
    # the forward pass computes only the value: the ops are gone after compiling
    names = {type(n.op).__name__ for n in f.fgraph.toposort()}
    assert not names & {"GradClip", "GradScale", "ZeroGrad", "DisconnectedGrad"}
    with pytest.raises(DisconnectedInputError):
        T.grad(T.sum(theano.gradient.disconnected_grad(x)), x)
    with pytest.raises(NullGradientError):
        T.grad(T.sum(theano.gradient.undefined_grad(x)), x)
    # forward mode sees the identity
    rop = theano.function([x], T.Rop(theano.gradient.grad_clip(x, -0.1, 0.1) * 2, x,
                                     T.ones_like(x)))
    np.testing.assert_allclose(rop(v), 2 * np.ones(3))


def test_grad_clip_inside_scan_as_lasagne_writes_it():
    x = T.dmatrix("x")
    w = theano.shared(np.array([[2.0, -1.0], [0.5, 3.0]]), name="w")
    h0 = T.zeros((2,))

    def step(x_t, h_tm1):
        pre = theano.gradient.grad_clip(T.dot(h_tm1, w) + x_t, -0.2, 0.2)
        return T.tanh(pre)

    h, _ = theano.scan(step, sequences=x, outputs_info=[h0])
    g = T.grad(h[-1].sum(), x)
    xv = np.random.default_rng(0).normal(size=(3, 2))
    gv = theano.function([x], g)(xv)
    # by hand: each step's gradient is clipped after the tanh' factor
    hs = [np.zeros(2)]
    for t in range(3):
        hs.append(np.tanh(hs[-1] @ w.get_value() + xv[t]))
    gh, want = np.ones(2), np.zeros((3, 2))
    for t in (2, 1, 0):
        gpre = np.clip(gh * (1 - hs[t + 1] ** 2), -0.2, 0.2)
        want[t] = gpre
        gh = gpre @ w.get_value().T
    np.testing.assert_allclose(gv, want)


def test_broadcast_pattern_functions():
    r = T.row("r")
    u = T.unbroadcast(r, 0)
    assert u.broadcastable == (False, False)
    assert T.patternbroadcast(u, (True, False)).broadcastable == (True, False)
    assert T.addbroadcast(T.matrix(), 1).broadcastable == (False, True)
    assert T.shape_padaxis(T.matrix(), 1).broadcastable == (False, True, False)
    assert T.shape_padaxis(T.matrix(), -1).broadcastable == (False, False, True)
    m = T.matrix()
    # unbroadcast lets a row start a scan whose steps are not rows
    out, _ = theano.scan(lambda prev, m: T.concatenate([prev, prev])[:1] + m,
                         outputs_info=[T.unbroadcast(r, 0)], non_sequences=[m], n_steps=2)
    g = theano.function([r, m], [out[-1], T.grad(out[-1].sum(), r)])
    val, grad_r = g(np.ones((1, 2)), np.full((1, 2), 3.0))
    np.testing.assert_array_equal(val, np.full((1, 2), 7.0))
    np.testing.assert_array_equal(grad_r, np.ones((1, 2)))
    x = T.matrix()
    with pytest.raises(ValueError, match="expected shape"):
        theano.function([x], T.addbroadcast(x, 0))(np.zeros((2, 2)))


def test_aliases_and_extra_ops_against_numpy():
    x = T.dvector()
    y = T.lvector()
    v = np.array([-2.0, 0.5, 4.0])
    f = theano.function([x, y], [T.square(x), T.abs_(x), T.inv(x),
                                 T.extra_ops.to_one_hot(y, 4),
                                 T.xlogx.xlogy0(T.abs_(x) - 0.5, T.abs_(x))])
    sq, ab, inv, oh, xl = f(v, [3, 0])
    np.testing.assert_allclose(sq, v ** 2)
    np.testing.assert_allclose(ab, np.abs(v))
    np.testing.assert_allclose(inv, 1 / v)
    np.testing.assert_array_equal(oh, np.eye(4)[[3, 0]])
    assert oh.dtype == theano.config.floatX
    a = np.abs(v) - 0.5
    np.testing.assert_allclose(xl, np.where(a == 0, 0, a * np.log(np.abs(v))))


def test_clone_replaces_and_with_new_inputs_aliases_shared_storage():
    x = T.dvector("x")
    w = theano.shared(np.array([1.0, 2.0]), name="w")
    y = (x * w).sum()
    z = T.dvector("z")
    y2 = theano.clone(y, replace={x: z * 2})
    assert theano.function([z], y2)(np.array([1.0, 1.0])) == 6.0
    # share_inputs=False: new inputs; a shared variable's copy reads and
    # writes the same storage, and may get a default update of its own
    # (Lasagne's batch-norm running averages)
    (w2,) = [v for v in theano.gof.graph.inputs([theano.clone(w * 1, share_inputs=False)])
             if isinstance(v, theano.compile.SharedVariable)]
    assert w2 is not w
    w2.default_update = w2 + 1
    f = theano.function([], w2 * 10)
    np.testing.assert_array_equal(f(), [10.0, 20.0])
    np.testing.assert_array_equal(w.get_value(), [2.0, 3.0])


def test_graph_walks_as_lasagne_collects_parameters():
    x = T.matrix()
    W = theano.shared(np.ones((2, 2)), name="W")
    b = theano.shared(np.zeros(2), name="b")
    out = T.tanh(T.dot(x, W) + b)
    params = [v for v in theano.gof.graph.inputs([out])
              if isinstance(v, theano.compile.SharedVariable)]
    assert params == [W, b]
    assert isinstance(out, T.Variable) and isinstance(out, theano.gof.Variable)
    assert isinstance(out, T.TensorVariable) and theano.Variable is theano.gof.Variable


def test_reductions_take_theanos_arguments():
    x = T.fmatrix()
    v = np.arange(6, dtype="float32").reshape(2, 3)
    f = theano.function([x], [x.mean(dtype="float64"), x.sum(0, "int64"),
                              x.sum(acc_dtype="float64"), x.var(1, 1), x.std(None, 0, True),
                              x.norm(2, axis=1), x.norm(1), x.prod(1, keepdims=True)])
    mean, s0, s_acc, var1, std, n2, n1, p = f(v)
    assert mean.dtype == np.float64 and mean == 2.5
    assert s0.dtype == np.int64 and list(s0) == [3, 5, 7]
    assert s_acc.dtype == np.float64 and s_acc == 15.0
    np.testing.assert_allclose(var1, v.var(axis=1, ddof=1))
    np.testing.assert_allclose(std, v.std(keepdims=True), rtol=1e-6)
    np.testing.assert_allclose(n2, np.linalg.norm(v, axis=1), rtol=1e-6)
    np.testing.assert_allclose(n1, np.abs(v).sum())
    np.testing.assert_allclose(p, v.prod(axis=1, keepdims=True))
    assert theano.scalar.upcast("float32", "int64") == "float64"
    assert theano.scalar.upcast("int8", "uint8") == "int16"


def test_config_names_theano_programs_read_and_set():
    cfg = theano.config
    assert cfg.floatX in ("float32", "float64") and cfg.device == "cpu"
    old = cfg.warn.subtensor_merge_bug
    cfg.warn.subtensor_merge_bug = False            # rnnrbm.py does this
    assert cfg.warn.subtensor_merge_bug is False
    cfg.warn.subtensor_merge_bug = old
    with pytest.raises(AttributeError, match="no option"):
        cfg.warn.no_such_flag
    x = T.dvector()

    def has_exp(f):
        return any(str(n.op) == "exp" for n in f.fgraph.toposort())

    with cfg.change(mode="FAST_COMPILE"):
        assert has_exp(theano.function([x], T.exp(T.log(x))))
    assert not has_exp(theano.function([x], T.exp(T.log(x))))      # exp(log(x)) -> x
    with cfg.change(on_unused_input="ignore"):
        theano.function([x, T.dvector()], x * 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="not used"):
            theano.function([x, T.dvector()], x * 2)


def test_in_takes_theanos_positional_order():
    x, k = T.dscalar("x"), T.dscalar("k")
    f = theano.function([x, theano.In(k, "kay", 2.0)], x * k)
    assert f(3.0) == 6.0 and f(3.0, kay=4.0) == 12.0


def test_nnet_softmax_of_a_vector_is_a_row_as_rnnslu_reads_it():
    """rnnslu's step returns ``T.nnet.softmax(vector)`` and reads ``s[:, 0, :]``."""
    x = T.dmatrix()
    w = theano.shared(np.array([[1.0, -1.0, 0.5], [0.0, 2.0, -0.5]]))

    def step(x_t):
        return T.nnet.softmax(T.dot(x_t, w))

    s, _ = theano.scan(step, sequences=x)
    assert s.ndim == 3
    p = s[:, 0, :]
    xv = np.array([[1.0, 2.0], [-1.0, 0.5]])
    logits = xv @ w.get_value()
    want = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(theano.function([x], p)(xv), want)
    v = T.dvector()
    assert T.nnet.logsoftmax(v).broadcastable == (True, False)
    assert T.softmax(v).ndim == 1 and T.nnet.log_softmax(v).ndim == 1      # vmc's own


def test_stack_takes_theanos_older_form():
    a, b = T.dscalar(), T.dscalar()
    f = theano.function([a, b], [T.stack(a, b, a), T.stack([a, b]), T.stack([T.stack([a, b])], 1)])
    s3, s2, s21 = f(1.0, 2.0)
    np.testing.assert_array_equal(s3, [1.0, 2.0, 1.0])
    np.testing.assert_array_equal(s2, [1.0, 2.0])
    assert s21.shape == (2, 1)                 # np.stack([v], 1)


def test_conv_ops_take_theanos_shape_hints_first():
    """Lasagne's TransposedConv2DLayer builds the op itself:
    ``AbstractConv2d_gradInputs(imshp, kshp, subsample=, border_mode=, filter_flip=)``."""
    from vmc.tensor.nnet import abstract_conv
    w, top = T.tensor4(), T.tensor4()
    op = abstract_conv.AbstractConv2d_gradInputs(imshp=(2, 3, 7, 7), kshp=(4, 3, 3, 3),
                                                 subsample=(2, 2), border_mode=0,
                                                 filter_flip=False)
    out = op(w, top, (7, 7))
    ref = T.nnet.conv2d_grad_wrt_inputs(top, w, (2, 3, 7, 7), subsample=(2, 2),
                                        filter_flip=False)
    gen = np.random.default_rng(1)
    wv, tv = gen.normal(size=(4, 3, 3, 3)), gen.normal(size=(2, 4, 3, 3))
    got, want = theano.function([w, top], [out, ref])(wv, tv)
    assert got.shape == (2, 3, 7, 7)
    np.testing.assert_allclose(got, want)


def test_updates_of_a_broadcastable_parameter_keep_it_broadcastable():
    """Lasagne makes a one-channel conv filter broadcastable in that dim; its
    gradient's type does not know the length: the update is checked when run."""
    W = theano.shared(np.ones((2, 1, 3, 3)), broadcastable=(False, True, False, False))
    x = T.tensor4()
    cost = T.sum(T.nnet.conv2d(x, W) ** 2)
    f = theano.function([x], cost, updates=[(W, W - 0.01 * T.grad(cost, W))])
    f(np.ones((1, 1, 4, 4)))
    assert W.get_value().shape == (2, 1, 3, 3) and W.broadcastable[1]
    k = T.lscalar()
    grow = theano.function([x, k], cost, updates=[(W, T.repeat(W, k, axis=1))])
    grow(np.ones((1, 1, 4, 4)), 1)
    with pytest.raises(ValueError, match="shape"):
        grow(np.ones((1, 1, 4, 4)), 2)
    assert W.get_value().shape == (2, 1, 3, 3)


def test_more_of_theanos_tensor_vocabulary_against_numpy():
    x, v = T.dmatrix(), T.dvector()
    X = np.array([[-2.0, -0.4, 0.0], [1.0, 2.6, 3.0]])
    V = np.array([1.0, 2.0, 3.0, 4.0])
    outs = [T.largest(x, 0.5, x * 2), T.smallest(x, -x), T.max_and_argmax(x, 1)[0],
            T.max_and_argmax(x, 1)[1], T.ptp(x, 0), T.iround(x), T.roll(x, 1, 1),
            T.roll(v, -3), T.horizontal_stack(x, x), T.vertical_stack(x, x),
            T.stacklists([[v[0], v[1]], [v[2], v[3]]]), T.isclose(x, x + 1e-9),
            T.allclose(x, x + 1e-3), T.fill(x, 3.0), T.second(x, v[0]), T.exp2(v), T.sgn(x),
            T.floor_div(v, 2.0), T.deg2rad(v), T.rad2deg(v), T.swapaxes(x, 0, 1),
            T.as_tensor([1.0, 2.0])]
    want = [np.maximum(np.maximum(X, 0.5), 2 * X), np.minimum(X, -X), X.max(1), X.argmax(1),
            np.ptp(X, 0), np.round(X).astype("int64"), np.roll(X, 1, 1), np.roll(V, -3),
            np.hstack([X, X]), np.vstack([X, X]), V.reshape(2, 2), np.isclose(X, X + 1e-9),
            np.allclose(X, X + 1e-3), np.full_like(X, 3.0), np.full_like(X, V[0]), 2.0 ** V,
            np.sign(X), V // 2.0, np.deg2rad(V), np.rad2deg(V), X.T, np.array([1.0, 2.0])]
    got = theano.function([x, v], outs)(X, V)
    for k, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_allclose(g, w, err_msg=str(k))
    assert T.get_scalar_constant_value(T.cast(T.constant(3.0), "float32")) == 3.0
    with pytest.raises(T.NotScalarConstantError):
        T.get_scalar_constant_value(x.sum())
    assert T.get_vector_length(x.shape) == 2
    with pytest.raises(ValueError):
        T.get_vector_length(v)


def test_more_of_theanos_nnet_vocabulary_against_numpy():
    x, y = T.dmatrix(), T.lvector()
    X = np.array([[-3.0, 0.0, 1.0], [2.0, 1.0, 0.0]])
    Y = np.array([2, 0])
    nll, sm = T.nnet.crossentropy_softmax_1hot(x, y)
    f = theano.function([x, y], [T.nnet.hard_sigmoid(x), T.nnet.ultra_fast_sigmoid(x),
                                 T.nnet.softsign(x), nll, sm,
                                 T.nnet.crossentropy_categorical_1hot(sm, y),
                                 T.nnet.softmax_with_bias(x, T.constant([0.0, 1.0, 0.0]))])
    hs, ufs, ss, nll_v, sm_v, ce, swb = f(X, Y)
    e = np.exp(X - X.max(1, keepdims=True))
    p = e / e.sum(1, keepdims=True)
    eb = np.exp(X + [0.0, 1.0, 0.0])
    np.testing.assert_allclose(hs, np.clip(0.2 * X + 0.5, 0, 1))
    np.testing.assert_allclose(ufs, 1 / (1 + np.exp(-X)))
    np.testing.assert_allclose(ss, X / (1 + np.abs(X)))
    np.testing.assert_allclose(sm_v, p)
    np.testing.assert_allclose(nll_v, -np.log(p[[0, 1], Y]))
    np.testing.assert_allclose(ce, nll_v)
    np.testing.assert_allclose(swb, eb / eb.sum(1, keepdims=True))


def test_pool_2d_with_symbolic_sizes_raises_value_error():
    """Lasagne's SpatialPyramidPoolingLayer asks pool_2d for symbolic sizes and
    falls back to an implementation without when that raises ValueError."""
    from vmc.tensor.signal.pool import pool_2d
    with pytest.raises(ValueError, match="known when the graph is built"):
        pool_2d(T.tensor4(), ws=T.ivector(), stride=T.ivector(), ignore_border=True, pad=None)
    with pytest.raises(ValueError, match="known when the graph is built"):
        pool_2d(T.tensor4(), ws=(T.iscalar(), 2), ignore_border=True)


def test_old_conv_module_takes_image_shape_first():
    from vmc.tensor.nnet import conv
    x, w = T.tensor4(), T.tensor4()
    old = conv.conv2d(x, w, (2, 1, 6, 6), (3, 1, 3, 3), border_mode="full", unroll_batch=2)
    new = T.nnet.conv2d(x, w, (2, 1, 6, 6), (3, 1, 3, 3), border_mode="full")
    gen = np.random.default_rng(4)
    xv, wv = gen.normal(size=(2, 1, 6, 6)), gen.normal(size=(3, 1, 3, 3))
    a, b = theano.function([x, w], [old, new])(xv, wv)
    assert a.shape == (2, 3, 8, 8)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="filter_shape"):          # the hints are checked
        conv.conv2d(x, T.tensor4(shape=(3, 1, 3, 3)), (2, 1, 6, 6), (3, 2, 3, 3))
    with pytest.raises(TypeError, match="unexpected"):
        conv.conv2d(x, w, colour="red")
