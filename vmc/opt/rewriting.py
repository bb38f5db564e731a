"""The rewrite registry: node rewrites as plain functions, in named sets.

A node rewrite is ``fn(fgraph, node)`` returning ``None`` (no change), a list
with one replacement per output of ``node`` (``None`` entries keep an output),
or a dict ``{old variable: new variable}`` for replacements elsewhere too::

    @node_rewriter("canonicalize", DimShuffle, tags=("shape",))
    def dimshuffle_of_dimshuffle(fgraph, node):
        ...

It is registered for the op classes it matches (or, for elementwise ops, the
names of the scalar ops: ``"log"`` means ``Elemwise`` applying ``log``), so the
driver asks only the rewrites that can apply to a node. Expression templates
are data (``vmc.opt.patterns``) and land in the same sets.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import count

from vmc.graph.type import TensorType
from vmc.tensor.elemwise import Elemwise, cast
from vmc.tensor.shape import SpecifyShape

_order = count()


@dataclass(eq=False)
class Rewrite:
    name: str
    fn: object                    # fn(fgraph, node) -> None | list | dict
    sets: tuple
    tracks: tuple                 # op classes and/or scalar-op names
    tags: frozenset = field(default_factory=frozenset)
    default: bool = True          # off by default unless a Mode includes it
    order: int = field(default_factory=lambda: next(_order))
    origin: str = ""              # the module that registered it (its code's owner)

    def __repr__(self):
        return f"<rewrite {self.name} in {','.join(self.sets)}>"


class Registry:
    """All rewrites, by set and by what they track."""

    def __init__(self):
        self.by_name = {}
        self.sets = {}            # set name -> list of Rewrite
        # (set names, include, exclude) -> Selection: each compile asks for the
        # same few, and a Selection keeps its per-op-class lookups warm.
        self._selected = {}
        # Rewrites from outside vmc: the optimized-graph cache keys on vmc's
        # code only, so it stands aside when a mode enables one.
        self.foreign = []

    def add(self, rw):
        if rw.name in self.by_name:
            raise ValueError(f"a rewrite named {rw.name!r} is already registered")
        self.by_name[rw.name] = rw
        if not (rw.origin or getattr(rw.fn, "__module__", None) or "").startswith("vmc."):
            self.foreign.append(rw)
        self._selected.clear()
        for s in rw.sets:
            self.sets.setdefault(s, []).append(rw)
        return rw

    def select(self, set_names, include=(), exclude=()):
        """The rewrites of ``set_names`` enabled under include/exclude names or tags."""
        key = (tuple(set_names), frozenset(include), frozenset(exclude))
        found = self._selected.get(key)
        if found is None:
            found = self._selected[key] = self._select(set_names, include, exclude)
        return found

    def _select(self, set_names, include, exclude):
        include, exclude = set(include), set(exclude)
        out = []
        for s in set_names:
            for rw in self.sets.get(s, ()):
                if _enabled(rw, s, include, exclude) and rw not in out:
                    out.append(rw)
        return Selection(out)

    def foreign_enabled(self, include=(), exclude=()):
        """Whether a rewrite from outside vmc is on under ``include``/``exclude``."""
        include, exclude = set(include), set(exclude)
        return any(_enabled(rw, s, include, exclude) for rw in self.foreign for s in rw.sets)

    def names_and_tags(self):
        out = set(self.by_name) | set(self.sets)
        for rw in self.by_name.values():
            out |= rw.tags
        return out


def _enabled(rw, set_name, include, exclude):
    """Whether ``rw``, asked for as a member of ``set_name``, is on."""
    keys = {rw.name, *rw.tags, set_name}
    if keys & exclude:
        return False
    return rw.default or bool(keys & include - {set_name})


class Selection:
    """The enabled rewrites of a pass, indexed for the driver's lookups."""

    def __init__(self, rewrites):
        self.rewrites = sorted(rewrites, key=lambda r: r.order)
        self.by_class, self.by_scalar = {}, {}
        for rw in self.rewrites:
            for t in rw.tracks:
                table = self.by_scalar if isinstance(t, str) else self.by_class
                table.setdefault(t, []).append(rw)
        self._cache = {}

    def for_node(self, node):
        op = node.op
        key = (type(op), op.scalar_op.name if isinstance(op, Elemwise) else None)
        found = self._cache.get(key)
        if found is None:
            found = []
            for cls in type(op).__mro__:
                found += self.by_class.get(cls, [])
            if key[1] is not None:
                found += self.by_scalar.get(key[1], [])
            found = sorted(set(found), key=lambda r: r.order)
            self._cache[key] = found
        return found

    def __len__(self):
        return len(self.rewrites)


REGISTRY = Registry()


def node_rewriter(sets, *tracks, name=None, tags=(), default=True):
    """Register ``fn(fgraph, node)`` in ``sets`` (a name or a tuple of names)
    for nodes whose op is an instance of one of ``tracks`` (op classes, or
    scalar-op names for elementwise nodes)."""
    sets = (sets,) if isinstance(sets, str) else tuple(sets)

    def deco(fn):
        REGISTRY.add(Rewrite(name or fn.__name__, fn, sets, tuple(tracks),
                             frozenset(tags), default))
        return fn
    return deco


# -- helpers the rewrites share --------------------------------------------------
def scalar_name(var):
    """The scalar-op name of ``var``'s elementwise owner, or None."""
    node = var.owner
    if node is not None and isinstance(node.op, Elemwise):
        return node.op.scalar_op.name
    return None


def is_op(var, name):
    return scalar_name(var) == name


def is_scalar_like(var):
    """True when every dim of ``var`` is statically 1 (it broadcasts fully)."""
    return isinstance(var.type, TensorType) and all(s == 1 for s in var.type.shape)


def fit(new, old):
    """``new`` adjusted to stand for ``old``: cast to its dtype, and wrapped in
    SpecifyShape when it would lose a static 1 (a broadcast pattern the readers
    of ``old`` rely on). None when the types cannot agree: a different rank,
    static lengths that contradict, or a static 1 where ``old`` has an unknown
    length (``new`` would then be a broadcast value, not ``old``'s)."""
    if new is old:
        return new
    ot, nt = old.type, new.type
    if not isinstance(ot, TensorType) or not isinstance(nt, TensorType):
        return new if ot == nt else None
    if nt.ndim != ot.ndim:
        return None
    if nt.dtype != ot.dtype:
        new = cast(new, ot.dtype)
    specify = False
    for n, o in zip(new.type.shape, ot.shape):
        if n == o or (o is None and n != 1):
            continue
        if n is None:
            specify = specify or o == 1
        else:
            return None
    if specify:
        new = SpecifyShape(ot.shape)(new)
    return new
