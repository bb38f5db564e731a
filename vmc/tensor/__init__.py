"""The user vocabulary: ``import vmc.tensor as vt``.

Theano/PyTensor names with NumPy semantics. Each op class lives in the module
of its family (elemwise, math, shape, subtensor, nnet, linalg, random); this
module only gathers the functions users call.
"""
from . import variable as _variable  # noqa: F401  (registers TensorVariable with TensorType)
from .basic import *  # noqa: F401,F403
from .basic import (as_tensor_variable, constant, shared, tensor, scalar, vector, matrix,
                    tensor3, tensor4, row, col)
from .creation import arange, eye, identity_like
from .elemwise import (DimShuffle, Elemwise, abs, add, and_, arccos, arcsin, arcsinh, arctan,
                       arctan2, bitwise_and, bitwise_not, bitwise_or, bitwise_xor, cast, ceil,
                       clip, cos, cosh, dimshuffle, eq, erf, erfc, erfinv, exp, expm1, floor,
                       floor_divide, gammaln, ge,
                       digamma, logaddexp, log1mexp, erfcx, xlogy, gammainc, gammaincc, gt, int_div, invert, isinf, isnan, le, log,
                       log10, log1p, log2, logical_and, logical_not, logical_or, logical_xor, lt,
                       maximum, minimum, mod, mul, neg, negative, neq, or_, pow, power, psi,
                       reciprocal, round, sigmoid, sign, sin, sinh, softplus, sqr, sqrt, sub,
                       switch, tan, tanh, tensor_copy, true_div, true_divide, where, xor)
from .math import (all, any, argmax, argmin, dot, logsumexp, max, mean, min, outer, prod, std,
                   sum, transpose, var)
from .nnet import binary_crossentropy, categorical_crossentropy, relu, sigmoid_binary_crossentropy
from .special import log_softmax, softmax
from .shape import (alloc, concatenate, expand_dims, flatten, full, full_like, join, ones,
                    ones_like, reshape, shape, shape_i, shape_padleft, shape_padright,
                    specify_broadcastable, specify_shape, squeeze, stack, zeros, zeros_like)
from .subtensor import getitem, inc_subtensor, set_subtensor
from .variable import TensorConstant, TensorSharedVariable, TensorVariable
from .blas_ops import batched_dot, matmul, tensordot
from .extra_ops import (diag, diagonal, flatnonzero, nonzero, nonzero_values, repeat, split,
                        tile, trace, tril, triu)
from . import nnet  # noqa: F401  (vt.nnet.softmax, as in Theano)
from . import linalg  # noqa: F401  (vt.linalg.solve, ...)
from . import random  # noqa: F401  (vt.random.RandomStream)
from . import signal  # noqa: F401  (vt.signal.pool.pool_2d, as in Theano)
from . import nlinalg  # noqa: F401  (vt.nlinalg.svd, ...)
from .ordering import argsort, cumprod, cumsum, sort  # noqa: E402
from .einsum import einsum  # noqa: E402
from vmc.rop import Lop, Rop  # noqa: E402  (Theano's T.Rop, T.Lop)
from .theano_names import *  # noqa: F401,F403  (Theano's spellings: T.grad, T.abs_, ...)
from . import extra_ops, shared_randomstreams, xlogx  # noqa: F401  (Theano's module paths)

# Importing the module vmc.tensor.scalar (the scalar op table) rebinds the
# package attribute ``scalar``; the vocabulary's ``vt.scalar`` is the constructor.
from .basic import scalar  # noqa: E402,F811
