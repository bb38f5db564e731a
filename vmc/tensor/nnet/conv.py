"""Theano's old convolution module, ``theano.tensor.nnet.conv``: its
``conv2d`` takes ``image_shape`` before ``filter_shape`` (the new
``nnet.conv2d`` takes ``input_shape`` first) and is the same convolution."""
from __future__ import annotations

from .abstract_conv import conv2d as _conv2d

__all__ = ["conv2d"]


def conv2d(input, filters, image_shape=None, filter_shape=None, border_mode="valid",
           subsample=(1, 1), **kargs):
    """``nnet.conv2d`` under Theano's older signature. Its other keyword
    arguments (``unroll_batch``, ``openmp``, ...) chose how Theano's CPU op
    ran and have no meaning here; any other name is an error."""
    unknown = set(kargs) - {"unroll_batch", "unroll_kern", "unroll_patch", "imshp_logical",
                            "kshp_logical", "kshp_logical_top_aligned", "openmp", "verbose",
                            "version", "direction_hint"}
    if unknown:
        raise TypeError(f"conv.conv2d: unexpected keyword arguments {sorted(unknown)}")
    return _conv2d(input, filters, input_shape=image_shape, filter_shape=filter_shape,
                   border_mode=border_mode, subsample=subsample)
