"""Printing graphs: ``debugprint`` (indented text) and ``pydotprint`` (graphviz)."""
from __future__ import annotations

import sys

from .basic import Constant, SharedVariable, Variable


def _outputs_of(obj):
    """The output variables of a variable, a list, a FunctionGraph or a Function."""
    if isinstance(obj, Variable):
        return [obj]
    if hasattr(obj, "fgraph"):            # a compiled Function
        return list(obj.fgraph.outputs)
    if hasattr(obj, "outputs") and hasattr(obj, "apply_nodes"):   # a FunctionGraph
        return list(obj.outputs)
    return list(obj)


def debugprint(obj, file=None, print_type=True, depth=-1):
    """Print the graph of ``obj`` as an indented tree.

    Each node gets an id (``[id A]``); a node reached again is printed once,
    then referred to by its id. Returns the text when ``file="str"``.
    """
    outputs = _outputs_of(obj)
    ids, lines = {}, []
    for out in outputs:
        _print_tree(out, ids, lines, print_type, depth)
    text = "\n".join(lines)
    if file == "str":
        return text
    print(text, file=file or sys.stdout)
    return None


def _label(v, print_type):
    t = f" <{v.type}>" if print_type else ""
    if isinstance(v, SharedVariable):
        return f"{v.name or 'shared'} [shared]{t}"
    if isinstance(v, Constant):
        return f"{v!r} [constant]{t}"
    if v.owner is None:
        return f"{v.name or 'input'}{t}"
    node = v.owner
    out = f".{v.index}" if len(node.outputs) > 1 else ""
    name = f" '{v.name}'" if v.name else ""
    return f"{node.op}{out}{name}{t}"


def _print_tree(root, ids, lines, print_type, depth):
    # Iterative depth-first walk: (variable, indent level).
    stack = [(root, 0)]
    while stack:
        v, level = stack.pop()
        pad = _pad(level)
        key = v.owner if v.owner is not None else v
        if key in ids:
            lines.append(f"{pad}{_label(v, print_type)} [id {ids[key]}] (see above)")
            continue
        ids[key] = _id_name(len(ids))
        lines.append(f"{pad}{_label(v, print_type)} [id {ids[key]}]")
        if v.owner is not None and (depth < 0 or level < depth):
            for inp in reversed(v.owner.inputs):
                stack.append((inp, level + 1))


_MAX_BARS = 32


def _pad(level):
    """The indentation of a line at ``level``. Past ``_MAX_BARS`` levels the
    depth is written as a number, so a deep chain prints in linear, not
    quadratic, space (a 100,000-node chain would otherwise be 10 GB)."""
    if level <= _MAX_BARS:
        return " |" * level
    return f"{' |' * 4} ...({level}) |"


def _id_name(i):
    s = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        s = chr(65 + r) + s
    return s


def pydotprint(obj, outfile="graph.svg", format=None):
    """Draw the graph with graphviz (``pip install graphviz`` and the ``dot``
    program); returns the output path."""
    try:
        import graphviz
    except ImportError:
        raise ImportError("pydotprint needs the graphviz Python package and the graphviz "
                          "'dot' program: pip install graphviz; apt-get install graphviz "
                          "(or your system's package manager)") from None
    from .traversal import toposort
    outputs = _outputs_of(obj)
    fmt = format or outfile.rsplit(".", 1)[-1]
    g = graphviz.Digraph(format=fmt)
    names = {}

    def vname(v):
        if v not in names:
            names[v] = f"v{len(names)}"
            shape = "box" if isinstance(v, (Constant, SharedVariable)) else "ellipse"
            g.node(names[v], _label(v, True) if v.owner is None else str(v.type), shape=shape)
        return names[v]

    for i, node in enumerate(toposort(outputs)):
        nid = f"n{i}"
        g.node(nid, str(node.op), shape="box", style="filled", fillcolor="lightgrey")
        for inp in node.inputs:
            g.edge(vname(inp), nid)
        for o in node.outputs:
            g.edge(nid, vname(o))
    base = outfile[: -(len(fmt) + 1)] if outfile.endswith("." + fmt) else outfile
    return g.render(base, cleanup=True)
