"""GPU tests run on every device present: OpenCL devices (PoCL on the CPU in CI)
and CUDA devices; a test skips only where no device of its kind exists.

``VMC_TEST_DEVICES`` (comma-separated kinds: "opencl", "cuda") restricts the
kinds, e.g. ``VMC_TEST_DEVICES=cuda`` on the GPU machine; ``VMC_REQUIRE_OPENCL=1``
(CI) or ``VMC_REQUIRE_CUDA=1`` (the GPU check) fails instead of skipping when
that kind is missing.

Every kernel module the tests build is also compiled by NVRTC for sm_90 (the
CUDA of the GPU machine) when a test module finishes: a kernel that runs on
PoCL must be one NVRTC accepts without a warning. Without libnvrtc that check
skips, unless ``VMC_REQUIRE_NVRTC=1`` (CI sets it).
"""
import os
import warnings

import pytest

import vmc


def _kinds():
    want = os.environ.get("VMC_TEST_DEVICES")
    return [k.strip() for k in want.split(",")] if want else ["opencl", "cuda"]


def _available(kind):
    """The device name for ``kind``, or the reason there is none."""
    from vmc.gpu import GpuUnavailableError, get_device
    try:
        return get_device(kind).name, None
    except GpuUnavailableError as e:
        return None, str(e)


DEVICES = {}
for _k in _kinds():
    DEVICES[_k] = _available(_k)


@pytest.fixture(params=sorted(DEVICES))
def device(request):
    """A GPU device name (``opencl:0:0``, ``cuda:0``); skips where the kind is absent."""
    name, why = DEVICES[request.param]
    if name is None:
        if os.environ.get(f"VMC_REQUIRE_{request.param.upper()}") == "1":
            pytest.fail(f"no {request.param} device, which this run requires: {why}")
        pytest.skip(f"no {request.param} device: {why}")
    return name


@pytest.fixture
def on(device):
    """``config.device`` set to the device for the test."""
    with vmc.config.change(device=device):
        yield device


_checked = set()


@pytest.fixture(autouse=True, scope="module")
def nvrtc_compiles_every_module():
    """After a module's tests: NVRTC compiles every kernel module they built, for sm_90."""
    yield
    from vmc.gpu import modules, nvrtc
    todo = [(d, s) for d, s in modules.SOURCES.items() if d not in _checked]
    if not todo:
        return
    try:
        nvrtc.library()
    except nvrtc.NvrtcError as e:
        if os.environ.get("VMC_REQUIRE_NVRTC") == "1":
            raise
        warnings.warn(f"NVRTC check of the GPU kernels skipped: {e}")
        return
    for digest, source in todo:
        if nvrtc.COMPILED.get((digest, "sm_90")) is not False:   # not already, cleanly
            nvrtc.compile_cubin(source, "sm_90")    # NvrtcError on an error or a warning
        _checked.add(digest)
