"""Asking for the GPU where there is none gives a clear error, never a crash."""
import numpy as np
import pytest

import vmc
import vmc.tensor as vt
from vmc.gpu import GpuUnavailableError


def test_device_cuda_without_gpu_raises_clear_error():
    try:
        import pycuda.driver  # noqa: F401
        has_pycuda = True
    except ImportError:
        has_pycuda = False
    x = vt.dvector("x")
    with vmc.config.change(device="cuda"):
        with pytest.raises(GpuUnavailableError) as err:
            vmc.function([x], x + 1)
    msg = str(err.value)
    assert ("pycuda" in msg) if not has_pycuda else ("device" in msg)
    # The CPU still works after the failed request.
    f = vmc.function([x], x + 1)
    np.testing.assert_array_equal(f(np.arange(3.0)), np.arange(3.0) + 1)
