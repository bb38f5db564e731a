"""The input and output specs of a compiled function: ``In``, ``Out``, updates."""
from __future__ import annotations

from vmc.graph.basic import SharedVariable, Variable
from vmc.graph.traversal import ancestors


class In:
    """An input with options: ``In(x, name=, value=default, mutable=, borrow=)``
    (Theano's order of arguments).

    ``mutable=True`` lets the function overwrite the argument's buffer.
    Theano's ``strict``, ``allow_downcast``, ``autoname`` and ``implicit`` are
    accepted; the function's own ``allow_input_downcast`` decides conversions.
    """

    def __init__(self, variable, name=None, value=None, update=None, mutable=False,
                 strict=False, allow_downcast=None, autoname=True, implicit=None,
                 borrow=False, shared=False):
        if not isinstance(variable, Variable):
            raise TypeError(f"In: expected a variable, got {type(variable).__name__}")
        if update is not None or shared:
            raise NotImplementedError("In(update=..., shared=True): an input that keeps its "
                                      "value between calls is a shared variable in vmc; use "
                                      "vmc.shared and updates=")
        self.variable = variable
        self.value = None if value is None else variable.type.filter(
            value, name=f"default value of {name or variable.name}", allow_downcast=True)
        self.name = name or variable.name
        self.borrow = borrow
        self.mutable = mutable


class Out:
    """An output with options: ``Out(y, borrow=True)`` may return an internal buffer."""

    def __init__(self, variable, borrow=False):
        self.variable = variable
        self.borrow = borrow


def normalize_inputs(inputs):
    return [i if isinstance(i, In) else In(i) for i in inputs]


def normalize_outputs(outputs):
    """``(list of Out, single)``: single when one variable (not a list) was given."""
    if outputs is None:
        return [], False
    single = not isinstance(outputs, (list, tuple))
    outs = [outputs] if single else list(outputs)
    result = []
    for o in outs:
        o = o if isinstance(o, Out) else Out(o)
        if not isinstance(o.variable, Variable):
            from vmc.tensor.basic import as_tensor_variable
            o.variable = as_tensor_variable(o.variable)
        result.append(o)
    return result, single


def collect_updates(updates, outputs, no_default_updates=False):
    """Updates as a list of (shared variable, new value), checked, plus the
    default updates (e.g. of random streams) of shared variables the graph reads."""
    if updates is None:
        pairs = []
    elif isinstance(updates, dict):
        pairs = list(updates.items())
    else:
        pairs = [tuple(p) for p in updates]
    result, seen = [], set()
    for s, new in pairs:
        if not isinstance(s, SharedVariable):
            raise TypeError(f"updates: {s!r} is not a shared variable; only shared "
                            f"variables can be updated")
        if s in seen:
            raise ValueError(f"updates: {s!r} is updated twice")
        seen.add(s)
        result.append((s, as_update_value(s, new)))
    if not no_default_updates and SharedVariable.n_with_default_update:
        frontier = [v for _, v in result] + list(outputs)
        while frontier:
            found = []
            for v in ancestors(frontier):
                if isinstance(v, SharedVariable) and v.default_update is not None \
                        and v not in seen:
                    seen.add(v)
                    result.append((v, v.default_update))
                    found.append(v.default_update)
            frontier = found
    return result


def as_update_value(s, new):
    if not isinstance(new, Variable):
        from vmc.tensor.basic import as_tensor_variable
        new = as_tensor_variable(new, dtype=getattr(s.type, "dtype", None))
    st, nt = s.type, new.type
    if type(st) is not type(nt):
        raise TypeError(f"updates: the new value of {s!r} has type {nt}, expected {st}")
    if hasattr(st, "dtype") and st.dtype != nt.dtype:
        from vmc.tensor.elemwise import cast
        import numpy as np
        if np.can_cast(nt.dtype, st.dtype, "same_kind"):
            new = cast(new, st.dtype)
        else:
            raise TypeError(f"updates: the new value of shared {s!r} has dtype {nt.dtype}, "
                            f"but the variable holds {st.dtype}; cast it with "
                            f".astype({st.dtype!r})")
    if hasattr(st, "ndim") and st.ndim != new.type.ndim:
        raise TypeError(f"updates: the new value of shared {s!r} is {new.type}, but the "
                        f"variable is {st} (ranks differ)")
    if hasattr(st, "shape"):
        for a, b in zip(st.shape, new.type.shape):
            if a == 1 and b not in (1, None):
                raise TypeError(f"updates: the new value of {s!r} is {new.type}, but the "
                                f"variable is {st}: a broadcastable dim would not stay 1")
        if any(a == 1 and b is None for a, b in zip(st.shape, new.type.shape)):
            # A dim of length 1 whose length the new value's type does not know
            # (Lasagne's conv filters of one channel: their gradient's type
            # lost it): checked when the function runs.
            from vmc.tensor.shape import specify_like
            new = specify_like(new, s)
    return new
