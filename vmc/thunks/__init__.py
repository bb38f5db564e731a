"""How ops run on the CPU: numpy/scipy thunks, Cython BLAS thunks and generated C."""
from .registry import py_thunk, register, register_batch
from . import scipy_blas

scipy_blas.preload()   # before vmc.thunks._blas cimports it (0.05 s instead of 0.42)
from . import threads  # noqa: E402
threads.follow_config()     # BLAS threads follow config.threads
from . import numpy_thunks  # noqa: F401  (registers the core thunks)
from . import numpy_thunks_extra  # noqa: F401  (split, repeat, diagonals, matmul, linalg)
from . import numpy_thunks_random, philox  # noqa: F401  (random draws)
from . import blas, checks, elemwise_c, fused, nnet, shapes  # noqa: F401,E402  (C thunks)
from . import perform  # noqa: F401  (any op with Theano's perform(): user ops)
from . import conv, pool  # noqa: F401  (conv2d: im2col + gemm; pool_2d)
from . import ordering, nlinalg  # noqa: F401  (cumsum, sort; svd, qr, ...)

from vmc.graph.basic import set_test_value_evaluator
from .registry import evaluate

set_test_value_evaluator(evaluate)     # config.compute_test_value runs the py thunks

__all__ = ["py_thunk", "register", "register_batch"]
