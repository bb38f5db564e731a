"""The GPU thunks, one module per family, registered for both drivers
(``vmc.gpu.placement.gpu_thunk``): importing this package registers them."""
from . import basic, blas, conv, ew, index, nnet, random, scan  # noqa: F401
