"""Ops that wrap the user's code: ``as_op`` (a Python function as an op) and
``OpFromGraph`` (a graph used as one op), under Theano's names and semantics.

Both run as Python thunks: ``as_op``'s through the generic ``perform`` thunk
(``vmc/thunks/perform.py``), ``OpFromGraph``'s by compiling its inner graph
(``vmc/compile/builders.py``, which may import the compiler).
"""
from __future__ import annotations

from vmc.graph.basic import Apply, Constant, Op, SharedVariable, Variable
from vmc.graph.grad import grad
from vmc.graph.traversal import clone_replace, graph_inputs
from vmc.graph.type import Type

from .basic import as_tensor_variable

__all__ = ["as_op", "FromFunctionOp", "OpFromGraph"]


def _as_type(t, what):
    """A type from Theano's spellings: a type (``vt.TensorType(...)``), a
    variable, or a constructor such as ``vt.dmatrix``."""
    if isinstance(t, Type):
        return t
    if isinstance(t, Variable):
        return t.type
    if callable(t):
        v = t()
        if isinstance(v, Variable):
            return v.type
    raise TypeError(f"as_op: each of {what} must be a type or a constructor such as "
                    f"vt.dmatrix, got {t!r}")


class FromFunctionOp(Op):
    """The op ``as_op`` makes: ``fn(*input values)`` computes the outputs."""
    __props__ = ("fn", "itypes", "otypes", "shape_rule")

    def __init__(self, fn, itypes, otypes, infer_shape=None):
        self.fn = fn
        self.itypes = tuple(_as_type(t, "itypes") for t in itypes)
        self.otypes = tuple(_as_type(t, "otypes") for t in otypes)
        self.shape_rule = infer_shape
        self.__name__ = getattr(fn, "__name__", "as_op")
        self.__doc__ = getattr(fn, "__doc__", None)

    def make_node(self, *inputs):
        if len(inputs) != len(self.itypes):
            raise TypeError(f"{self}: expected {len(self.itypes)} inputs, got {len(inputs)}")
        ins = []
        for k, (x, t) in enumerate(zip(inputs, self.itypes)):
            x = as_tensor_variable(x)
            if x.type.dtype != t.dtype or x.type.ndim != t.ndim:
                raise TypeError(f"{self}: input {k} must be {t}, got {x!r} of type {x.type}")
            ins.append(x)
        return Apply(self, ins, [t.make_variable() for t in self.otypes])

    def perform(self, node, inputs, output_storage):
        outs = self.fn(*inputs)
        if len(self.otypes) == 1:
            outs = [outs]
        for store, value, t in zip(output_storage, outs, self.otypes):
            store[0] = t.filter(value, name=f"result of {self}", allow_downcast=True)

    def infer_shape(self, node, shapes):
        if self.shape_rule is None:
            raise NotImplementedError(f"{self} has no shape rule (as_op's infer_shape=)")
        return self.shape_rule(node, shapes)

    def __str__(self):
        return f"FromFunctionOp{{{self.__name__}}}"

    def __reduce__(self):
        # The user's function is code that vmc's graph cache cannot hash: an
        # op that refuses pickling is never cached (a changed function would
        # hit a stale entry).
        raise TypeError(f"{self} wraps user code and is not pickled")


def as_op(itypes, otypes, infer_shape=None):
    """Decorator: a Python function of numpy arrays becomes an op.

        @as_op(itypes=[vt.dmatrix], otypes=[vt.dmatrix])
        def numpy_dot(a, b): ...

    ``infer_shape(node, input_shapes)`` optionally gives the output shapes.
    The op has no gradient."""
    itypes, otypes = list(itypes), list(otypes)

    def deco(fn):
        return FromFunctionOp(fn, itypes, otypes, infer_shape)
    return deco


class OpFromGraph(Op):
    """A graph from ``inputs`` to ``outputs`` used as one op, any number of
    times. It is differentiable through its inner graph; with ``inline=True``
    the first rewrite pass replaces each application by the inner graph.

    Shared variables the inner graph reads are implicit inputs of every
    application (their values are read when it runs)."""

    def __init__(self, inputs, outputs, inline=False, name=None):
        single = isinstance(outputs, Variable)
        outputs = [outputs] if single else list(outputs)
        inputs = list(inputs)
        for v in inputs:
            if not isinstance(v, Variable) or isinstance(v, Constant):
                raise TypeError(f"OpFromGraph: inputs must be variables, got {v!r}")
        free = [v for v in graph_inputs(outputs, blockers=inputs)
                if v not in inputs and not isinstance(v, Constant)]
        others = [v for v in free if not isinstance(v, SharedVariable)]
        if others:
            raise ValueError(f"OpFromGraph: the outputs depend on {others}, which are not "
                             f"among the inputs")
        self.shared_inputs = free
        outer = inputs + free
        self.inner_inputs = [v.type.make_variable(v.name) for v in outer]
        self.inner_outputs = clone_replace(outputs, dict(zip(outer, self.inner_inputs)))
        self.n_explicit = len(inputs)
        self.inline = bool(inline)
        self.name = name

    def make_node(self, *inputs):
        if len(inputs) != self.n_explicit:
            raise TypeError(f"{self}: expected {self.n_explicit} inputs, got {len(inputs)}")
        ins = []
        for k, (x, inner) in enumerate(zip(inputs, self.inner_inputs)):
            x = as_tensor_variable(x)
            t = inner.type
            if x.type.dtype != t.dtype or x.type.ndim != t.ndim:
                raise TypeError(f"{self}: input {k} must be {t}, got {x!r} of type {x.type}")
            ins.append(x)
        ins += self.shared_inputs
        return Apply(self, ins, [o.type.make_variable() for o in self.inner_outputs])

    def inner_graph(self, inputs):
        """The inner outputs as a graph of ``inputs`` (all inputs, implicit ones
        included): what inlining puts in place of an application."""
        return clone_replace(self.inner_outputs, dict(zip(self.inner_inputs, inputs)))

    def pullback(self, inputs, outputs, output_grads):
        known = {o: g.type.make_variable() for o, g in zip(self.inner_outputs, output_grads)
                 if o.type.dtype.startswith("float")}
        wrt = [v for v in self.inner_inputs if v.type.dtype.startswith("float")]
        if not known or not wrt:
            return [None] * len(inputs)
        gs = grad(None, wrt, known_grads=known, disconnected_inputs="ignore",
                  return_disconnected="none")
        replace = dict(zip(self.inner_inputs, inputs))
        for o, out in zip(self.inner_outputs, outputs):
            if o not in replace:       # a computed output reused, not recomputed
                replace[o] = out
        by_out = dict(zip(self.inner_outputs, output_grads))
        for o, ph in known.items():
            replace[ph] = by_out[o]
        got = dict(zip(wrt, gs))
        todo = [got[v] for v in self.inner_inputs if got.get(v) is not None]
        done = iter(clone_replace(todo, replace)) if todo else iter(())
        return [next(done) if got.get(v) is not None else None for v in self.inner_inputs]

    def pushforward(self, inputs, outputs, tangents):
        from vmc.gradient import Rop
        pairs = [(v, t) for v, t in zip(self.inner_inputs, tangents) if t is not None]
        if not pairs:
            return [None] * len(outputs)
        placeholders = [t.type.make_variable() for _, t in pairs]
        rops = Rop(self.inner_outputs, [v for v, _ in pairs], placeholders)
        replace = dict(zip(self.inner_inputs, inputs))
        replace.update(zip(placeholders, [t for _, t in pairs]))
        return clone_replace(list(rops), replace)

    def __str__(self):
        return f"OpFromGraph{{{self.name}}}" if self.name else "OpFromGraph"
