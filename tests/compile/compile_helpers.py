"""Shared pieces of the compile tests."""
import contextlib
import os
import subprocess
import sys

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


def run_python(code, vmc_flags):
    """Run ``code`` in a fresh interpreter with ``VMC_FLAGS=vmc_flags`` and this
    checkout's vmc first on the path; returns the CompletedProcess (text)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, VMC_FLAGS=vmc_flags,
               PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120)
