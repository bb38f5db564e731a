"""Item 9 of issue 20: pickling a graph or a compiled function must not
recurse along the graph: a 3000-op elementwise chain (which compiles) pickles
and loads, and the loaded graph has the structure of the original."""
import pickle

import numpy as np

import vmc
import vmc.tensor as vt


def chain(x, n):
    e = x
    for k in range(n):
        e = vt.tanh(e) * 1.0001 if k % 2 else e + 0.5
    return e


def test_long_chain_graph_and_function_pickle():
    x = vt.dvector("x")
    e = chain(x, 3000)
    f = vmc.function([x], e)
    g = pickle.loads(pickle.dumps(f))
    v = np.linspace(-1, 1, 5)
    np.testing.assert_allclose(g(v), f(v), rtol=1e-14)
    x2, e2 = pickle.loads(pickle.dumps((x, e)))
    np.testing.assert_allclose(vmc.function([x2], e2)(v), f(v), rtol=1e-14)


def test_loaded_graph_keeps_its_sharing_and_leaves():
    x = vt.dvector("x")
    w = vmc.shared(np.arange(3.0), name="w")
    h = vt.exp(x) * w + 2                       # read by both outputs
    y1, y2 = chain(h, 200), h.sum() + vt.constant(np.full(3, 7.0))
    x_, w_, h_, y1_, y2_ = pickle.loads(pickle.dumps((x, w, h, y1, y2)))
    nodes = vmc.graph.traversal.toposort([y1_, y2_])
    assert len(nodes) == len(vmc.graph.traversal.toposort([y1, y2]))
    assert h_.owner in nodes and sum(n is h_.owner for n in nodes) == 1
    assert w_.get_value().tolist() == [0.0, 1.0, 2.0] and w_.name == "w"
    readers = [n for n in nodes if any(i is h_ for i in n.inputs)]
    assert len(readers) == 2                    # one h, read by both branches
    f = vmc.function([x_], [y1_, y2_])
    g = vmc.function([x], [y1, y2])
    v = np.array([0.1, 0.2, 0.3])
    for a, b in zip(f(v), g(v)):
        np.testing.assert_allclose(a, b, rtol=1e-14)
    w_.set_value(np.ones(3))                    # the copy is its own shared variable
    np.testing.assert_array_equal(w.get_value(), [0.0, 1.0, 2.0])


def test_pickled_variable_leaves_out_its_eval_functions():
    x = vt.dscalar("x")
    y = x * 2
    assert y.eval({x: 3.0}) == 6.0
    y_ = pickle.loads(pickle.dumps(y))
    assert "eval_functions" not in vars(y_.tag)
    assert y_.owner.op == y.owner.op
