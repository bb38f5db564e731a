"""vmc's one broadcasting rule at run time: only dims of static length 1
broadcast (as in Theano).

numpy also broadcasts a size that happens to be 1 at run time; vmc does not,
so that a gradient sums over exactly the dims its graph says were broadcast,
and a shape bug is an error rather than a silently different result. Every
thunk that broadcasts (elementwise, fused, alloc, inc_subtensor's value, random
parameters, matmul's batch dims, the checks before in-place updates) asks here.
"""
from __future__ import annotations

import numpy as np


def fixed_dims(static_shape):
    """The dims of a type's static shape that may not broadcast (not known to be 1)."""
    return tuple(d for d, s in enumerate(static_shape) if s != 1)


def shape_of(a):
    # np.shape costs ~1 us through numpy's dispatch; arrays carry their shape.
    return a.shape if type(a) is np.ndarray else np.shape(a)


def broadcast_shape(op, shapes, fixed, target=None, what="input shapes"):
    """The shape that arrays of ``shapes`` broadcast to, aligned on their last
    dims, where ``fixed[k]`` holds the dims of input ``k`` (in its own rank,
    ``fixed_dims``) that may not broadcast. ``target``: the shape they must fit
    (None: each dim's size is the one of the inputs whose size there is not 1).
    Raises ValueError naming ``op``, the shapes, the input and the dim."""
    if target is None:
        nd = max(len(s) for s in shapes)
        t = [1] * nd
        for s in shapes:
            off = nd - len(s)
            for d, n in enumerate(s):
                if n != 1 and t[off + d] == 1:
                    t[off + d] = n
        target = tuple(t)
        verb = "do not match"
    else:
        verb = f"do not fit {tuple(target)}"
    nd = len(target)
    for k, (s, dims) in enumerate(zip(shapes, fixed)):
        off = nd - len(s)
        for d in dims:
            want = target[off + d] if off + d >= 0 else 1     # extra leading dims: 1
            if s[d] != want:
                raise ValueError(
                    f"{op}: {what} {', '.join(map(str, shapes))} {verb} (input {k}, dim "
                    f"{d}: {s[d]} vs {want}; only dims of static length 1 broadcast)")
    return target
