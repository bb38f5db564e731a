"""Shared pieces of the compile tests."""
import contextlib

import pytest

import vmc

# Every function test runs on both VMs: "py" (the reference) and "cvm" (the
# Cython VM; until it is wired in, vmc falls back to the Python VM).
LINKERS = ["py", "cvm"]


@pytest.fixture(params=LINKERS)
def linker(request):
    with vmc.config.change(linker=request.param):
        yield request.param


@contextlib.contextmanager
def no_rewrites():
    """Compile without any rewrite pass, whatever ``mode=None`` means."""
    with vmc.config.change(optimizer=None):
        yield


# Rewrites on (the default pipeline) and off: behaviour must not depend on them.
MODES = ["fast_run", "None"]
