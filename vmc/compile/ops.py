"""Theano's ``theano.compile.ops``: ``as_op``, a Python function as an op."""
from vmc.tensor.userops import FromFunctionOp, as_op

__all__ = ["as_op", "FromFunctionOp"]
