"""In-place updates placed last, and the check that keeps them all-or-nothing.

``w - lr * g`` may be computed into ``w``'s own buffer when it runs after
everything else that can fail (DESIGN: a failed call changes no shared
variable). With one such update that is enough: its thunk checks shapes
before it writes. With several, the second could fail after the first wrote,
so a ``CheckUpdates`` instruction runs before them and validates every one of
them against the runtime shapes; after it, none of them can fail.

Only ops whose sole runtime failure is a shape mismatch can be checked this
way (elementwise, fused elementwise and the BLAS updates); with several late
updates, the others are computed out of place as usual.
"""
from __future__ import annotations

from vmc.graph.basic import Apply
from vmc.tensor.checks import CheckUpdates
from vmc.thunks.checks import UNCHECKABLE, shape_check


def restrict(late):
    """``late`` (node -> shared variable) reduced to what can be all-or-nothing,
    and the check node to run before them (None when not needed)."""
    if len(late) <= 1:
        return late, None
    checks = {n: shape_check(n, s) for n, s in late.items()}
    late = {n: s for n, s in late.items() if checks[n] is not UNCHECKABLE}
    needed = [n for n in late if checks[n] is not None]
    if len(late) <= 1 or not needed:
        return late, None
    inputs = [v for n in needed for v in n.inputs]
    return late, Apply(CheckUpdates(needed, [late[n] for n in needed]), inputs, [])
