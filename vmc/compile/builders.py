"""``OpFromGraph`` (Theano's ``theano.compile.builders``) and its thunk: the
inner graph compiled once per op, when a function that applies it is built."""
from __future__ import annotations

from vmc.tensor.userops import OpFromGraph
from vmc.thunks.registry import register

__all__ = ["OpFromGraph"]


@register(OpFromGraph)
def op_from_graph_thunk(node, destroyable):
    op = node.op
    fn = op.__dict__.get("_compiled")
    if fn is None:
        from .function import function
        # Compiled once for every application: the inner graph does not change.
        fn = op.__dict__["_compiled"] = function(op.inner_inputs, op.inner_outputs,
                                                 on_unused_input="ignore")
    n_out = len(node.outputs)

    def thunk(*args):
        outs = fn(*args)        # a list: the inner outputs are given as one
        # An inner output that is an inner input comes back as the caller's
        # array: copied, since the op declares no view.
        outs = [o.copy() if any(o is a for a in args) else o for o in outs]
        return outs[0] if n_out == 1 else tuple(outs)
    return thunk
