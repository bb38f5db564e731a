"""The IR: Variable, Constant, SharedVariable, Apply and Op. Data, not behaviour."""
from __future__ import annotations

import contextlib
import copyreg
import os
import sys
import threading
import warnings
from itertools import count
from types import SimpleNamespace

import numpy as np

from vmc.config import config

_ids = count()
_VMC_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def user_line():
    """``(file, line)`` of the innermost frame outside the vmc package, not
    counting the ``make_node`` of a user's op: the line that applied the op."""
    f = sys._getframe(1)
    prefix = _VMC_DIR
    while f is not None:
        code = f.f_code
        if not code.co_filename.startswith(prefix) and not (
                code.co_name == "make_node" and isinstance(f.f_locals.get("self"), Op)):
            return (code.co_filename, f.f_lineno)
        f = f.f_back
    return ("<unknown>", 0)


class _Traces(threading.local):
    fixed = None     # the trace of every node made now, or None: walk the stack
    no_test_values = 0   # > 0: nodes made now compute no test value (without_test_values)


_traces = _Traces()


def current_fixed_trace():
    """The trace ``fixed_trace`` gives new nodes in this thread now, or None."""
    return _traces.fixed


@contextlib.contextmanager
def fixed_trace(trace):
    """Within the block, new nodes get ``trace`` (``user_line()`` of the
    caller, computed outside the block) without walking the stack for each:
    ``vmc.grad`` builds thousands of nodes ten frames below the user's call.
    An enclosing block's trace wins."""
    old = _traces.fixed
    _traces.fixed = old or trace
    try:
        yield
    finally:
        _traces.fixed = old


@contextlib.contextmanager
def without_test_values():
    """Within the block (or the decorated function), new nodes compute no test
    value: the compiler's nodes (clones, rewrites) are not the user's, and
    library code that builds inner graphs on placeholders fills in the outer
    results' test values afterwards (``fill_test_values``)."""
    _traces.no_test_values += 1
    try:
        yield
    finally:
        _traces.no_test_values -= 1


def test_values_on():
    """Whether new nodes compute test values here and now."""
    return config._values["compute_test_value"] != "off" and not _traces.no_test_values


def fill_test_values(outputs):
    """Compute the missing test values of the nodes ``outputs`` depend on, in
    order (for graphs built under ``without_test_values``)."""
    if not test_values_on():
        return
    from .traversal import toposort
    for node in toposort([o for o in outputs if isinstance(o, Variable)]):
        if not all(o._tag is not None and hasattr(o._tag, "test_value") for o in node.outputs):
            _compute_test_values(node)


# -- test values (config.compute_test_value) ---------------------------------------
# evaluate(node, input values) -> output values; vmc.thunks sets it (the graph
# never runs ops itself).
_test_value_evaluator = [None]


def set_test_value_evaluator(fn):
    _test_value_evaluator[0] = fn


def get_test_value(v):
    """The test value of ``v``: a constant's or shared variable's value, or
    ``v.tag.test_value`` checked against ``v.type``. AttributeError when it
    has none (Theano's ``get_test_value``)."""
    if isinstance(v, Constant):
        return v.data
    if isinstance(v, SharedVariable):
        return v.container[0]
    tag = v._tag
    if tag is None or not hasattr(tag, "test_value"):
        raise AttributeError(f"{v!r} has no test value (set {v!r}.tag.test_value)")
    return v.type.filter(tag.test_value, name=f"the test value of {v!r}", allow_downcast=True)


def _compute_test_values(node):
    """Set ``tag.test_value`` on the outputs of a new node, computed from its
    inputs' test values (``config.compute_test_value``: a missing input value
    is skipped, warned about or an error; a failing computation always raises,
    naming the op and the line that built the node)."""
    mode = config._values["compute_test_value"]
    values = []
    for i, v in enumerate(node.inputs):
        try:
            values.append(get_test_value(v))
        except AttributeError:
            if mode == "ignore":
                return
            msg = (f"cannot compute the test value of {node.op} (built at "
                   f"{node.trace[0]}:{node.trace[1]}): input {i} ({v!r}) has no test value; "
                   f"set {v!r}.tag.test_value, or config.compute_test_value='off'")
            if mode == "raise":
                raise ValueError(msg) from None
            warnings.warn(msg, stacklevel=_user_stacklevel())
            return
    evaluate = _test_value_evaluator[0]
    if evaluate is None:
        return
    try:
        results = evaluate(node, values)
    except NotImplementedError:           # the op cannot run on the CPU here
        return
    except Exception as exc:
        raise _at_node(exc, node, values) from None
    for k, (o, r) in enumerate(zip(node.outputs, results)):
        try:
            o.tag.test_value = o.type.filter(r, name=f"output {k} of {node.op}",
                                             allow_downcast=False)
        except Exception as exc:
            raise _at_node(exc, node, values) from None


def _at_node(exc, node, values):
    """``exc`` re-made (type kept) to say which node's test value failed."""
    shapes = ", ".join(f"{np.shape(v)} {getattr(v, 'dtype', type(v).__name__)}"
                       for v in values)
    msg = (f"{exc}\n  computing the test value of {node.op} on test values of shapes "
           f"and dtypes {shapes}\n  the node was built at {node.trace[0]}:{node.trace[1]}")
    try:
        new = type(exc)(msg)
    except Exception:                     # noqa: BLE001 - a constructor of its own
        exc.add_note(msg)
        return exc
    new.__traceback__ = exc.__traceback__
    return new


def _user_stacklevel():
    """The ``warnings`` stacklevel of the innermost frame outside vmc."""
    f, level = sys._getframe(1), 1
    while f is not None and f.f_code.co_filename.startswith(_VMC_DIR):
        f, level = f.f_back, level + 1
    return level


class Scratchpad(SimpleNamespace):
    """Free-form notes on a variable (Theano's ``tag``): a test value, user
    data, the compiled functions of ``eval``. Not part of the graph: clones
    and rewrites do not carry it."""


class Variable:
    """A value in the graph: a graph input (``owner is None``) or the
    ``index``-th output of the Apply node ``owner``."""
    __slots__ = ("type", "owner", "index", "name", "id", "_tag", "__weakref__")

    def __init__(self, type, owner=None, index=None, name=None):
        self.type = type
        self.owner = owner
        self.index = index
        self.name = name
        self.id = next(_ids)
        self._tag = None

    @property
    def tag(self):
        """This variable's ``Scratchpad``, made on first use."""
        t = self._tag
        if t is None:
            t = self._tag = Scratchpad()
        return t

    def clone(self, name=None):
        """A fresh, ownerless variable of the same type (and class)."""
        return type(self)(self.type, None, None, self.name if name is None else name)

    def __repr__(self):
        if self.name:
            return self.name
        if self.owner is not None:
            op = self.owner.op
            suffix = f".{self.index}" if len(self.owner.outputs) > 1 else ""
            return f"{op}{suffix}"
        return f"<{self.type}>"

    def __hash__(self):
        return self.id

    def __eq__(self, other):  # identity; subclasses with operators keep this
        return self is other

    def __reduce_ex__(self, protocol):
        # See "Pickling" below: an output is rebuilt from its graph's nodes,
        # listed in topological order, so that pickling never recurses along
        # a chain of nodes (a 100-op chain passed the recursion limit).
        if self.owner is not None:
            return _output_of, (_nodes_up_to(self.owner), self.index)
        return copyreg.__newobj__, (type(self),), (None, _slot_state(self))


class Constant(Variable):
    """A variable with a fixed value. Equal (type, value) means equal constants,
    so merging can share them. The value is read-only."""
    __slots__ = ("data", "_key")

    def __init__(self, type, data, name=None):
        super().__init__(type, None, None, name)
        data = type.filter(data, name="constant", allow_downcast=True)
        if data.flags.writeable:
            data = data.copy()
            data.flags.writeable = False
        self.data = data
        self._key = None

    def clone(self, name=None):
        return self

    def signature(self):
        """A hashable key: equal for constants of equal type and value."""
        if self._key is None:
            d = self.data
            self._key = (self.type, d.shape, d.tobytes() if d.size < 1 << 16 else id(d))
        return self._key

    def __repr__(self):
        if self.name:
            return self.name
        d = self.data
        if d.size <= 4:
            s = np.array2string(d, separator=",").replace("\n", "")
            return s if d.ndim else repr(d.item())
        return f"Constant{{{d.dtype}{list(d.shape)}}}"


class SharedVariable(Variable):
    """A variable whose value persists across calls of compiled functions.

    The value lives in ``container``, a one-element list that compiled
    functions read and update in place of the variable itself.
    """
    __slots__ = ("container", "_default_update")
    # How many shared variables ever had a default update: while none has,
    # compiling needs no walk of the graph to look for them.
    n_with_default_update = 0

    def __init__(self, type, value, name=None, borrow=False):
        super().__init__(type, None, None, name)
        self.container = [None]
        self._default_update = None
        self.set_value(value, borrow=borrow)

    @property
    def default_update(self):
        """The value ``vmc.function`` gives this variable after each call
        when its updates do not name it (random streams use this), or None."""
        return self._default_update

    @default_update.setter
    def default_update(self, value):
        if value is not None:
            SharedVariable.n_with_default_update += 1
        self._default_update = value

    def clone(self, name=None):
        return self

    def alias(self, name=None):
        """A new shared variable over the same storage (Theano's ``clone`` with
        ``share_inputs=False``): it may get its own ``default_update``."""
        new = type(self).__new__(type(self))
        Variable.__init__(new, self.type, None, None, self.name if name is None else name)
        new.container = self.container
        new._default_update = None
        return new

    def get_value(self, borrow=False):
        v = self.container[0]
        return v if borrow else v.copy()

    def set_value(self, value, borrow=False):
        v = self.type.filter(value, name=f"value of shared {self.name or 'variable'}",
                             allow_downcast=True)
        if not borrow and v is value:
            v = v.copy()
        self.container[0] = v

    @property
    def value(self):
        return self.container[0]


class Apply:
    """One application of ``op`` to ``inputs``, producing ``outputs``.

    Immutable once built; ``trace`` records where user code created it.
    """
    __slots__ = ("op", "inputs", "outputs", "trace", "__weakref__")

    def __init__(self, op, inputs, outputs, trace=None):
        self.op = op
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        fresh = trace is None      # made now (by make_node), not cloned
        if fresh:
            trace = _traces.fixed or user_line()
        self.trace = trace
        for i, out in enumerate(self.outputs):
            out.owner, out.index = self, i
        if fresh and config._values["compute_test_value"] != "off" and not _traces.no_test_values:
            _compute_test_values(self)

    @property
    def out(self):
        (o,) = self.outputs
        return o

    def __reduce_ex__(self, protocol):
        # The inputs an earlier node makes are written as (node, index): that
        # node was pickled before (see "Pickling"), so it is a memo lookup.
        ins = [v if v.owner is None else (v.owner, v.index) for v in self.inputs]
        outs = [(type(o), _slot_state(o, skip=("owner", "index"))) for o in self.outputs]
        return _make_apply, (self.op, ins, outs, self.trace)

    def clone_with_new_inputs(self, inputs, strict=True):
        """The same op on ``inputs``; rebuilds through ``make_node`` when the
        types changed, so type rules run again."""
        for a, b in zip(inputs, self.inputs):
            if a.type is not b.type and a.type != b.type:   # types are interned: `is` first
                break
        else:
            outs = [o.type.make_variable(o.name) for o in self.outputs]
            return Apply(self.op, inputs, outs, self.trace)
        node = self.op.make_node(*inputs)
        node.trace = self.trace
        return node

    def __repr__(self):
        return f"{self.op}({', '.join(map(repr, self.inputs))})"


class Op:
    """An immutable description of a computation.

    ``__props__`` names the parameters; equal parameters mean equal ops (so
    merging can compare them). Subclasses implement ``make_node(*inputs)``
    returning an Apply, ``infer_shape(node, input_shapes)`` returning one
    shape tuple (of scalar variables) per output, and ``pullback(inputs,
    outputs, output_grads)`` returning one gradient (or None: no gradient
    flows) per input. How an op runs is registered elsewhere (vmc/thunks).
    """
    __props__: tuple = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _adopt_theano_methods(cls)

    def _props(self):
        return tuple([getattr(self, p) for p in self.__props__])

    def __eq__(self, other):
        return self is other or (type(self) is type(other) and self._props() == other._props())

    def __hash__(self):
        # Ops are immutable and hashed constantly (merging, thunk lookup,
        # profiles), and hashing the props tuple costs microseconds: hash once.
        d = self.__dict__
        h = d.get("_hash_cache")
        if h is None:
            h = d["_hash_cache"] = hash((type(self), self._props()))
        return h

    def __getstate__(self):
        # The cached hash is not pickled: string hashes differ between processes.
        state = dict(self.__dict__)
        state.pop("_hash_cache", None)
        return state

    def __str__(self):
        if self.__props__:
            return f"{type(self).__name__}{{{', '.join(map(str, self._props()))}}}"
        return type(self).__name__

    __repr__ = __str__

    def __call__(self, *inputs, **kwargs):
        node = self.make_node(*inputs, **kwargs)
        return node.outputs[0] if len(node.outputs) == 1 else node.outputs

    def make_node(self, *inputs):
        raise NotImplementedError

    def infer_shape(self, node, input_shapes):
        raise NotImplementedError(f"{self} has no shape rule")

    def pullback(self, inputs, outputs, output_grads):
        raise NotImplementedError(f"{self} has no gradient")

    def branches(self, node):
        """For an op that reads some inputs only on some runs (``ifelse``): a
        tuple of groups of input positions, one per branch, of which each
        run reads exactly one (``vmc.graph.branches``); None for an op that
        reads all of its inputs, as most do."""
        return None


def _adopt_theano_methods(cls):
    """Let an op written as Theano or PyTensor users write them run as a vmc op.

    Theano names its gradient ``grad(inputs, output_grads)`` (or
    ``L_op(inputs, outputs, output_grads)``) and its forward rule
    ``R_op(inputs, eval_points)``; vmc reads ``pullback`` and ``pushforward``.
    PyTensor's ``infer_shape(fgraph, node, shapes)`` takes the graph first.
    A class that never names ``__props__`` nor ``__eq__`` compares by identity,
    as in Theano (its instances may hold parameters that equality cannot see:
    merging two of them would be wrong)."""
    d = cls.__dict__
    if "pullback" not in d:
        if "L_op" in d:
            cls.pullback = lambda self, i, o, g: self.L_op(i, o, g)
        elif "grad" in d:
            cls.pullback = lambda self, i, o, g: self.grad(i, g)
    if "pushforward" not in d and "R_op" in d:
        cls.pushforward = lambda self, i, o, t: self.R_op(i, t)
    shape_rule = d.get("infer_shape")
    if shape_rule is not None and _n_positional(shape_rule) == 4:     # self, fgraph, node, shapes
        cls.infer_shape = lambda self, node, shapes: shape_rule(self, None, node, shapes)
    declared = any("__props__" in k.__dict__ or "__eq__" in k.__dict__
                   for k in cls.__mro__ if k is not Op and k is not object)
    if not declared:
        cls.__eq__ = object.__eq__
        cls.__hash__ = object.__hash__


def _n_positional(fn):
    code = getattr(fn, "__code__", None)
    return code.co_argcount if code is not None else 0


# -- Pickling ------------------------------------------------------------------------
# The pickler recurses into what an object's reduction refers to. A variable
# made by a node is therefore reduced to the list of every node its value
# depends on, in topological order, and its index: the pickler saves that
# list item by item, and each node refers to earlier nodes' outputs as
# (node, index), found in the pickler's memo. The depth stays constant
# whatever the graph's length, and a node shared by several pickled
# variables is saved once (the memo), so they share it again when loaded.

def _nodes_up_to(node):
    from .traversal import toposort
    return toposort(node.outputs)


def _output_of(nodes, index):
    return nodes[-1].outputs[index]


def _make_apply(op, inputs, outputs, trace):
    ins = [v if isinstance(v, Variable) else v[0].outputs[v[1]] for v in inputs]
    outs = []
    for cls, state in outputs:
        v = cls.__new__(cls)
        for k, value in state.items():
            setattr(v, k, value)
        outs.append(v)
    return Apply(op, ins, outs, trace)


def _slot_state(v, skip=()):
    """The slots of variable ``v`` to pickle. Not pickled: what only this
    process can use (the compiled functions of ``eval`` in its tag, a large
    constant's signature, which holds an object id)."""
    state = {}
    for cls in type(v).__mro__:
        for name in getattr(cls, "__slots__", ()):
            if name in skip or name == "__weakref__" or name in state:
                continue
            try:
                state[name] = getattr(v, name)
            except AttributeError:
                pass
    tag = state.get("_tag")
    if tag is not None and "eval_functions" in vars(tag):
        tag = Scratchpad(**vars(tag))
        del tag.eval_functions
        state["_tag"] = tag
    if "_key" in state:
        state["_key"] = None
    return state
