"""The graph core with dummy ops: walks, clone, replace, FunctionGraph, traces, types."""
import pickle
import sys

import numpy as np
import pytest

import vmc
import vmc.tensor as vt
from vmc.graph import (Constant, FunctionGraph, SharedVariable, TensorType, ancestors, clone,
                       clone_replace, free_inputs, graph_inputs, toposort)
from vmc.graph.traversal import clone_get_equiv

from graph_dummy_ops import SCALAR, VECTOR, Fn, f, g, h, two, var


def diamond():
    """x -> a = f(x), b = g(x); c = h(a, b); d = f(c, x)"""
    x = var("x")
    a, b = f(x), g(x)
    c = h(a, b)
    d = f(c, x)
    return x, a, b, c, d


def names(nodes):
    return [str(n.op) for n in nodes]


# -- walks ---------------------------------------------------------------------------
def test_toposort_orders_inputs_first_and_follows_input_order():
    x, a, b, c, d = diamond()
    order = toposort([d])
    assert order == [a.owner, b.owner, c.owner, d.owner]
    pos = {n: i for i, n in enumerate(order)}
    for n in order:
        for v in n.inputs:
            if v.owner is not None:
                assert pos[v.owner] < pos[n]


def test_toposort_is_deterministic_across_identical_builds():
    orders = []
    for _ in range(3):
        xs = [var(f"x{i}") for i in range(6)]
        ys = [Fn(f"n{i}")(xs[i], xs[(i * 7) % 6]) for i in range(6)]
        out = Fn("top")(*[Fn(f"m{i}")(ys[i], ys[-1 - i]) for i in range(6)])
        orders.append(names(toposort([out])))
        assert names(toposort([out])) == orders[-1]     # and across calls
    assert orders[0] == orders[1] == orders[2]


def test_toposort_with_blockers_and_multiple_outputs():
    x, a, b, c, d = diamond()
    assert toposort([d], blockers=[c]) == [d.owner]
    assert toposort([d], blockers={c}) == [d.owner]
    assert toposort([a, b]) == [a.owner, b.owner]
    assert toposort([b, a]) == [b.owner, a.owner]
    assert toposort([x]) == []
    # A blocker that is an input does not change anything.
    assert toposort([d], blockers=[x]) == toposort([d])


def test_multi_output_node_is_sorted_once():
    x = var("x")
    p, q = two(x)
    out = f(p, q, f(q))
    order = toposort([out])
    assert order.count(p.owner) == 1 and order[0] is p.owner
    assert len(order) == 3


def test_ancestors_and_graph_inputs():
    x, a, b, c, d = diamond()
    anc = ancestors([d])
    assert anc[0] is d and set(anc) == {x, a, b, c, d}
    assert len(anc) == len(set(anc))
    assert ancestors([d]) == anc                              # deterministic
    assert set(ancestors([d], blockers=[c])) == {d, c, x}
    k = Constant(SCALAR, 2.0)
    s = SharedVariable(SCALAR, 3.0, name="s")
    y = var("y")
    out = f(x, k, g(s, y))
    assert graph_inputs([out]) == [x, k, s, y]
    assert free_inputs([out]) == [x, y]
    assert graph_inputs([out], blockers=[out.owner.inputs[2]]) == [x, k, out.owner.inputs[2]]


# -- clone and clone_replace ---------------------------------------------------------
def test_clone_copies_nodes_and_inputs_but_not_storage():
    x = var("x")
    k = Constant(SCALAR, 2.0)
    s = SharedVariable(SCALAR, 3.0, name="s")
    out = f(g(x, k), s)
    (nx,), (nout,) = clone([x], [out])
    assert nx is not x and nx.name == "x" and nx.type == x.type
    assert nout is not out and nout.owner.op == out.owner.op
    inner = nout.owner.inputs[0]
    assert inner.owner is not out.owner.inputs[0].owner
    assert inner.owner.inputs == [nx, k] and nout.owner.inputs[1] is s
    assert out.owner.inputs[0].owner.inputs[0] is x            # the original is untouched
    (same_x,), (nout2,) = clone([x], [out], copy_inputs=False)
    assert same_x is x and nout2.owner.inputs[0].owner.inputs[0] is x
    memo = clone_get_equiv([x], [out])
    assert memo[out.owner].outputs[0] is memo[out]


def test_clone_replace_swaps_and_keeps_the_original():
    x, y = vt.dvector("x"), vt.dvector("y")
    z = vt.exp(x) + x
    (z2,) = clone_replace([z], {x: y})
    assert x not in ancestors([z2]) and y in ancestors([z2])
    assert x in ancestors([z])
    fz2 = vmc.function([y], z2)
    np.testing.assert_allclose(fz2(np.arange(3.0)), np.exp(np.arange(3.0)) + np.arange(3.0))
    # a single variable in, a single variable out; pairs work as well as a dict
    z3 = clone_replace(z, [(x, y)])
    assert not isinstance(z3, list) and y in ancestors([z3])
    # a value becomes a constant of the replaced variable's kind
    z4 = clone_replace(z, {x: np.ones(3)})
    assert vmc.function([], z4)().tolist() == pytest.approx((np.e + 1,) * 3)


def test_clone_replace_checks_types():
    x = vt.dvector("x")
    z = vt.exp(x)
    with pytest.raises(TypeError, match="cannot replace"):
        clone_replace(z, {x: vt.fvector("f32")})
    with pytest.raises(TypeError, match="cannot replace"):
        clone_replace(z, {x: vt.dmatrix("m")})
    with pytest.raises(TypeError, match="must be a Variable"):
        clone_replace(f(var("a")), {var("b"): 3.0})


# -- FunctionGraph -------------------------------------------------------------------
def test_fgraph_clients_bookkeeping():
    x, a, b, c, d = diamond()
    fg = FunctionGraph([x], [d, a])
    nx = fg.inputs[0]
    nd, na = fg.outputs
    assert nx is not x                                       # cloned
    readers = fg.clients[nx]
    assert sorted((str(n.op), i) for n, i in readers) == [("f", 0), ("f", 1), ("g", 0)]
    assert ("output", 0) in fg.clients[nd] and ("output", 1) in fg.clients[na]
    assert len(fg.apply_nodes) == 4
    for v, cl in fg.clients.items():
        for node, i in cl:
            if node != "output":
                assert node.inputs[i] is v and node in fg.apply_nodes
    assert set(fg.variables) == set(fg.clients)


def test_fgraph_replace_updates_clients_and_prunes():
    x, a, b, c, d = diamond()
    fg = FunctionGraph([x], [d], clone=False)
    new = Fn("new")(x)
    fg.replace(c, new, reason="test")
    assert d.owner.inputs[0] is new
    assert c.owner not in fg.apply_nodes and a.owner not in fg.apply_nodes
    assert a not in fg.variables and c not in fg.variables
    assert (d.owner, 0) in fg.clients[new] and new.owner in fg.apply_nodes
    assert names(fg.toposort()) == ["new", "f"]
    # replacing an output
    out2 = Fn("out2")(x)
    fg.replace(d, out2)
    assert fg.outputs == [out2] and ("output", 0) in fg.clients[out2]
    assert names(fg.toposort()) == ["out2"]


def test_fgraph_replace_type_check_and_unknown_variable():
    x = vt.dvector("x")
    y = vt.exp(x) * 2
    fg = FunctionGraph([x], [y], clone=False)
    e = y.owner.inputs[0]
    with pytest.raises(TypeError, match="has type"):
        fg.replace(e, vt.cast(x, "float32"))
    with pytest.raises(TypeError, match="has type"):
        fg.replace(e, vt.dmatrix("m").sum(0).reshape((2, -1)))
    outsider = vt.dvector("outsider")
    with pytest.raises(ValueError, match="not in this graph"):
        fg.replace(vt.exp(outsider), x)
    before = (set(fg.apply_nodes), set(fg.variables))
    with pytest.raises(ValueError, match="not an input of this graph"):
        fg.replace(e, vt.log(outsider) + x)
    assert (set(fg.apply_nodes), set(fg.variables)) == before   # nothing half-imported
    # a more precise static shape is a valid replacement; the new node may
    # read the replaced variable (an insertion, not a cycle)
    spec = vt.specify_shape(e, (3,))
    fg.replace(e, spec)
    assert y.owner.inputs[0] is spec and spec.owner.inputs[0] is e
    assert fg.clients[e] == [(spec.owner, 0)]
    order = fg.toposort()
    assert order.index(e.owner) < order.index(spec.owner) < order.index(y.owner)
    x1 = x + 1.0
    fg.replace(fg.outputs[0], x1)
    assert fg.outputs == [x1] and set(fg.apply_nodes) == set(toposort([x1]))
    assert e not in fg.variables and spec not in fg.variables     # pruned


# -- traces: file:line of user code -------------------------------------------------
def test_nodes_record_the_user_line():
    # the innermost frame outside the vmc package, not counting the make_node
    # of an op defined outside vmc (the dummy ops): the line that applied it
    out = f(var("x")); line = sys._getframe().f_lineno   # noqa: E702
    assert out.owner.trace == (__file__, line)
    xv = vt.dvector("x")
    y = vt.exp(xv) + 1; line = sys._getframe().f_lineno   # noqa: E702
    assert y.owner.trace == (__file__, line)
    assert y.owner.inputs[0].owner.trace == (__file__, line)
    gy = vmc.grad(y.sum(), xv); line = sys._getframe().f_lineno   # noqa: E702
    assert gy.owner.trace == (__file__, line)            # grad's nodes: the grad call


def test_clone_keeps_traces():
    x = var("x")
    out = f(g(x))
    (_,), (new,) = clone([x], [out])
    assert new.owner.trace == out.owner.trace
    assert new.owner.inputs[0].owner.trace == out.owner.inputs[0].owner.trace


# -- types, constants, shared, ops ----------------------------------------------------
def test_tensor_type_is_interned_immutable_and_picklable():
    t = TensorType("float64", (None, 3))
    assert TensorType(np.float64, [None, np.int64(3)]) is t
    assert TensorType(np.dtype("f8"), (None, 3)) is t and hash(t) == hash(TensorType("d", (None, 3)))
    assert t != TensorType("float32", (None, 3)) and t != TensorType("float64", (None, None))
    assert pickle.loads(pickle.dumps(t)) is t
    with pytest.raises(AttributeError):
        t.dtype = "float32"
    with pytest.raises(ValueError, match=">= 0"):
        TensorType("float64", (-1,))
    with pytest.raises(TypeError, match="unsupported dtype"):
        TensorType(object)
    assert TensorType("float64", (None,)).is_super(TensorType("float64", (3,)))
    assert not TensorType("float64", (3,)).is_super(TensorType("float64", (None,)))


def test_type_filter_errors_name_the_argument():
    t = TensorType("float64", (None, 3))
    with pytest.raises(TypeError, match=r"arg: expected a 2-d array"):
        t.filter(np.ones(3), name="arg")
    with pytest.raises(TypeError, match=r"arg: expected shape \(\?, 3\)"):
        t.filter(np.ones((2, 4)), name="arg")
    ti = TensorType("int32", (None,))
    with pytest.raises(TypeError, match="lose precision"):
        ti.filter(np.ones(3), name="arg")
    assert ti.filter(np.ones(3), name="arg", allow_downcast=True).dtype == np.int32
    assert ti.filter([1, 2], name="arg").dtype == np.int32        # exact Python values


def test_constant_and_shared_values():
    c = Constant(VECTOR, [1.0, 2.0])
    assert not c.data.flags.writeable
    assert c.signature() == Constant(VECTOR, np.array([1.0, 2.0])).signature()
    assert c.clone() is c
    s = vmc.shared(np.zeros(3), name="s")
    v = s.get_value()
    v[0] = 5
    assert s.get_value()[0] == 0                  # get_value copies
    s.get_value(borrow=True)[1] = 7
    assert s.get_value()[1] == 7                  # borrow gives the buffer
    arr = np.ones(3)
    s.set_value(arr)
    arr[0] = 9
    assert s.get_value()[0] == 1                  # set_value copies
    s.set_value(arr, borrow=True)
    assert s.get_value(borrow=True) is arr


def test_ops_compare_and_hash_by_props_and_pickle_without_cached_hash():
    assert Fn("a") == Fn("a") and hash(Fn("a")) == hash(Fn("a"))
    assert Fn("a") != Fn("b") and Fn("a") != Fn("a", n_out=2)
    op = Fn("a")
    h1 = hash(op)
    assert hash(op) == h1
    state = pickle.loads(pickle.dumps(op)).__dict__
    assert "_hash_cache" not in state and pickle.loads(pickle.dumps(op)) == op


def test_schedule_is_the_same_in_every_process():
    # Apply nodes hash by address and strings by a per-process seed: nothing
    # may depend on set order. Compile the same graph under two hash seeds.
    import os
    import subprocess
    code = (
        "import vmc, vmc.tensor as vt\n"
        "from vmc.ifelse import ifelse\n"
        "xs = [vt.dvector(f'x{i}') for i in range(4)]\n"
        "c = vt.lscalar('c')\n"
        "ys = [vt.exp(x) * (i + 1) for i, x in enumerate(xs)]\n"
        "z = sum(ys[1:], ys[0])\n"
        "w = vmc.shared([0.0, 0.0, 0.0], name='w')\n"
        "out = ifelse(c > 0, z.sum() + w.sum(), (z * z).mean())\n"
        "g = vmc.grad(out, xs)\n"
        "f = vmc.function([c] + xs, [out] + g, updates=[(w, w + 1)])\n"
        "print(f.program)\n")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    outs = []
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed,
                   PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
        run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        outs.append(run.stdout)
    assert outs[0] == outs[1] and outs[0].count("\n") > 10
