"""Theano's ``theano.tensor.signal``: ``pool.pool_2d``."""
from . import pool  # noqa: F401
