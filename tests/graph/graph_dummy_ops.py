"""Small dummy ops for graph-core tests: the graph layer knows no tensor ops."""
import numpy as np

from vmc.graph.basic import Apply, Op, Variable
from vmc.graph.type import TensorType
from vmc.thunks.registry import register

SCALAR = TensorType("float64", ())
VECTOR = TensorType("float64", (None,))


def var(name=None, type=SCALAR):
    return Variable(type, name=name)


class Fn(Op):
    """``Fn(name, n_out)(*inputs)``: outputs of the first input's type.

    Its gradient passes each output gradient's sum to every input, so graphs
    of it can be differentiated; it runs as the sum of its inputs (times
    ``k``), one output per ``n_out``.
    """
    __props__ = ("name", "n_out", "k")

    def __init__(self, name="f", n_out=1, k=1.0):
        self.name, self.n_out, self.k = name, n_out, float(k)

    def make_node(self, *inputs):
        return Apply(self, inputs, [inputs[0].type.make_variable() for _ in range(self.n_out)])

    def pullback(self, inputs, outputs, grads):
        g = grads[0]
        for extra in grads[1:]:
            g = Fn("gsum")(g, extra)
        return [Fn("g", k=self.k)(g) for _ in inputs]

    def __str__(self):
        return self.name


@register(Fn)
def _fn_thunk(node, destroyable):
    k, n_out = node.op.k, node.op.n_out

    def thunk(*args):
        total = args[0]
        for a in args[1:]:
            total = total + a
        r = np.asarray(total * k)
        return r if n_out == 1 else tuple(r.copy() for _ in range(n_out))
    return thunk


f, g, h = Fn("f"), Fn("g"), Fn("h")
two = Fn("two", n_out=2)
