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


def test_unknown_opencl_device_names_the_devices_and_the_install():
    from vmc.gpu import get_device
    with pytest.raises(GpuUnavailableError) as err:
        get_device("opencl:9:9")
    assert "opencl" in str(err.value) and "pocl-opencl-icd" in str(err.value)


def test_bad_device_flag_is_refused():
    with pytest.raises(ValueError, match="opencl:P:D"):
        vmc.config.device = "gpu0"


def test_out_of_device_memory_names_op_bytes_and_leaves_shared_unchanged():
    from .conftest import DEVICES
    name = DEVICES.get("opencl", (None, None))[0] or DEVICES.get("cuda", (None, None))[0]
    if name is None:
        pytest.skip("no GPU device")
    from vmc.gpu import GpuMemoryError
    with vmc.config.change(device=name):
        w = vmc.shared(np.ones(3), name="w")
        n, x = vt.lscalar("n"), vt.dvector("x")
        big = vt.exp(vt.alloc(x, n, x.shape[0]))
        f = vmc.function([n, x], big.max(), updates=[(w, w + 1)])
    with pytest.raises(GpuMemoryError) as err:
        f(1 << 40, np.zeros(4))                      # 32 TiB
    msg = str(err.value)
    assert "cannot allocate 35184372088832 bytes" in msg and "free of" in msg
    assert "Alloc" in msg                            # the op, from the VM's error
    np.testing.assert_array_equal(w.get_value(), np.ones(3))
    assert f(3, np.zeros(4)) == 1 and w.get_value()[0] == 2
