"""``CheckUpdates``: validates, before any of them writes, the shapes of the
shared-variable updates that the scheduler placed last to run in place (see
``vmc.compile.late``). Its thunks are in ``vmc.thunks.checks``."""
from __future__ import annotations

from vmc.graph.basic import Op


class CheckUpdates(Op):
    """Raises exactly when one of ``nodes`` (each writing into the buffer of
    the matching entry of ``shared``) would fail on shapes; no outputs."""
    __props__ = ()

    def __init__(self, nodes, shared):
        self.nodes = list(nodes)
        self.shared = list(shared)     # the shared variable each node writes into

    def __str__(self):
        return f"CheckUpdates{{{len(self.nodes)}}}"
