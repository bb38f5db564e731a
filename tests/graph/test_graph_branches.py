"""vmc.graph.branches: the contexts (lazy branches) each node runs under,
computed from ``Op.branches`` alone, for a dummy three-way lazy op."""
from vmc.graph.basic import Apply, Op
from vmc.graph.branches import branch_contexts

from graph_dummy_ops import f, g, h, var


class Choose(Op):
    """``Choose()(k, a, b, c)``: one of three values, reading only that one."""

    def make_node(self, k, *values):
        return Apply(self, [k, *values], [values[0].type.make_variable()])

    def branches(self, node):
        return ((1,), (2,), (3,))


def contexts(outputs):
    from vmc.graph.traversal import toposort
    root, ctx = branch_contexts(toposort(outputs), outputs)
    return root, ctx


def path(c):
    out = []
    while c.parent is not None:
        out.append((c.node, c.branch))
        c = c.parent
    return list(reversed(out))


def test_value_of_one_branch_runs_in_that_branch_only():
    k, x = var("k"), var("x")
    a, b, c = f(x), g(x), h(x)
    y = Choose()(k, a, b, c)
    root, ctx = contexts([y])
    node = y.owner
    assert ctx[node] == (root,)
    assert [path(c) for c in ctx[a.owner]] == [[(node, 0)]]
    assert [path(c) for c in ctx[c.owner]] == [[(node, 2)]]


def test_value_every_branch_reads_runs_before_the_lazy_node():
    k, x = var("k"), var("x")
    shared = f(x)
    y = Choose()(k, g(shared), h(shared), f(shared, x))
    root, ctx = contexts([y])
    assert ctx[shared.owner] == (root,)


def test_value_two_of_three_branches_read_stays_lazy_in_both():
    k, x = var("k"), var("x")
    shared = f(x)
    y = Choose()(k, g(shared), h(shared), x)
    root, ctx = contexts([y])
    node = y.owner
    assert sorted(path(c)[0][1] for c in ctx[shared.owner]) == [0, 1]


def test_chain_of_lazy_nodes_has_one_context_per_node():
    """Each link reads the previous value in every branch: without merging
    the branches back into their parent, the first value had 3**D contexts."""
    k, x = var("k"), var("x")
    e = x
    for _ in range(40):
        e = Choose()(k, f(e), g(e), h(e))
    root, ctx = contexts([e])
    assert all(len(c) == 1 for c in ctx.values())
    assert ctx[e.owner] == (root,)
    first = [n for n in ctx if n.inputs and n.inputs[0] is x]
    assert first and all(ctx[n][0].depth == 1 for n in first)


def test_deep_nesting():
    k, x = var("k"), var("x")
    e = x
    for _ in range(2000):                   # each value only in the first branch
        e = Choose()(k, f(e), x, x)
    root, ctx = contexts([e])
    assert max(c.depth for cs in ctx.values() for c in cs) == 2000


def test_sibling_lazy_nodes_meet_before_both():
    k, x = var("k"), var("x")
    shared = f(x)
    y1 = Choose()(k, g(shared), x, x)
    y2 = Choose()(k, h(shared), x, x)
    root, ctx = contexts([y1, y2])
    assert ctx[shared.owner] == (root,)


def test_value_read_under_many_exclusive_branches_stays_lazy():
    """Read by the second branch of each of 200 nested lazy nodes: it runs in
    each of their blocks (at most one of which runs), never before them."""
    k, x = var("k"), var("x")
    v = g(x)
    e = x
    for _ in range(200):
        e = Choose()(k, f(e), h(v), x)
    root, ctx = contexts([e])
    assert len(ctx[v.owner]) == 200 and root not in ctx[v.owner]
    assert sorted(c.depth for c in ctx[v.owner]) == list(range(1, 201))
