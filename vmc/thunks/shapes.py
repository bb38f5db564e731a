"""C thunks for views and shapes through ``vmc.thunks._shapes``: DimShuffle
(a view) and Shape_i (a 0-d int64)."""
from __future__ import annotations

from vmc.tensor.elemwise import DimShuffle
from vmc.tensor.shape import ShapeI

from .registry import module_or_none, register


@register(DimShuffle, kind="c")
def dimshuffle_c_thunk(node, destroyable):
    mod = module_or_none("vmc.thunks._shapes")
    return None if mod is None else mod.dimshuffle_thunk(node.op.input_ndim, node.op.new_order)


@register(ShapeI, kind="c")
def shape_i_c_thunk(node, destroyable):
    mod = module_or_none("vmc.thunks._shapes")
    return None if mod is None else mod.shape_i_thunk(node.op.i)
