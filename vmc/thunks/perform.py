"""The thunk of any op that defines Theano's ``perform``: user-defined ops.

A user writes ``perform(self, node, inputs, output_storage)`` and never hears
of the thunk registry: this factory is registered for the base ``Op`` class,
so the registry's lookup along the MRO finds it for every op that has no
thunk of its own.

``destroy_map`` (output -> the inputs its ``perform`` overwrites) is honoured
here: an input the scheduler did not offer as destroyable (it is read later,
or it is a user's argument, a constant or a shared value) is copied before
``perform`` sees it. ``output_storage`` is fresh at each call: an array
returned to the user is never written again.
"""
from __future__ import annotations

import numpy as np

from vmc.graph.basic import Op
from vmc.graph.type import TensorType

from .registry import register


@register(Op)
def perform_thunk(node, destroyable):
    op = node.op
    perform = getattr(op, "perform", None)
    if perform is None:
        raise NotImplementedError(f"no CPU thunk is registered for {type(op).__name__}, "
                                  f"and it defines no perform()")
    destroyed = sorted({j for js in (getattr(op, "destroy_map", None) or {}).values()
                        for j in js})
    must_copy = tuple(j for j in destroyed if j not in destroyable)
    outputs = node.outputs
    n_out = len(outputs)

    def thunk(*args):
        if must_copy:
            args = list(args)
            for j in must_copy:
                args[j] = np.array(args[j], copy=True)
        storage = [[None] for _ in range(n_out)]
        perform(node, list(args), storage)
        values = [_checked(op, o, s[0], k) for k, (o, s) in enumerate(zip(outputs, storage))]
        return values[0] if n_out == 1 else tuple(values)
    return thunk


def _checked(op, var, value, k):
    """``value`` as the output type says (a Python or numpy scalar becomes a 0-d
    array), or an error naming the op and what it produced."""
    if value is None:
        raise ValueError(f"{op}.perform left output {k} unset (output_storage[{k}][0])")
    t = var.type
    if not isinstance(t, TensorType):
        return value
    if not isinstance(value, np.ndarray) or value.dtype != t.numpy_dtype:
        if np.ndim(value) != t.ndim or np.result_type(value).kind != t.numpy_dtype.kind:
            raise TypeError(f"{op}.perform: output {k} should be {t}, got "
                            f"{type(value).__name__} of dtype {np.result_type(value)} "
                            f"and shape {np.shape(value)}")
        value = np.asarray(value, dtype=t.numpy_dtype)
    if value.ndim != t.ndim or any(s is not None and s != v for s, v in zip(t.shape, value.shape)):
        raise ValueError(f"{op}.perform: output {k} should be {t}, got shape {value.shape}")
    return value
