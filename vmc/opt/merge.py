"""Merge: identical work runs once. Constants of equal type and value become
one; nodes applying equal ops to the same inputs become one."""
from __future__ import annotations

from vmc.graph.basic import Constant


def merge_pass(fgraph):
    consts = {}
    for v in sorted((v for v in fgraph.variables if isinstance(v, Constant)), key=lambda v: v.id):
        key = v.signature()
        if key in consts and consts[key] is not v:
            if v in fgraph.variables:
                fgraph.replace(v, consts[key], reason="merge")
        else:
            consts[key] = v
    seen = {}
    for node in fgraph.toposort():
        if node not in fgraph.apply_nodes:
            continue
        key = (node.op, tuple(node.inputs))
        other = seen.get(key)
        if other is None:
            seen[key] = node
            continue
        for old, new in zip(node.outputs, other.outputs):
            if old in fgraph.variables:
                fgraph.replace(old, new, reason="merge")
    return fgraph
