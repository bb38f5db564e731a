"""Large arrays from the cache of freed output blocks (vmc/thunks/cgen/vmc_blocks.h).

Elementwise kernels and BLAS thunks allocate their outputs there in C; Python-side
thunks that allocate big buffers on every call (scan's traces) use ``empty``. A block
freed by numpy goes back to the cache and serves the next request of its size, so a
training step does not pay first-touch page faults on every call; a request the cache
cannot serve releases it first, so the peak memory is never higher than without it.
"""
from __future__ import annotations

import numpy as np

try:
    from vmc.thunks.cgen import _ew_runtime
except ImportError:         # not built: plain numpy allocation
    _ew_runtime = None


def empty(shape, dtype) -> np.ndarray:
    """``np.empty(shape, dtype)``, C-contiguous, large ones from the block cache."""
    if _ew_runtime is None:
        return np.empty(shape, dtype=dtype)
    return _ew_runtime.empty(shape, np.dtype(dtype).num)
