"""Run a probe in a fresh Python process, so that a crash fails one test.

A probe is a piece of Python source run with this checkout's vmc first on
the path and a compile cache of its own (``VMC_COMPILEDIR``). It reports by
its exit status: 0 when every check in it held; anything else (an assertion,
an exception, a signal) fails the test with the probe's output.
"""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Prepended to every probe: the helpers probes share.
PRELUDE = '''
import numpy as np
import vmc
import vmc.tensor as vt


def misaligned(a):
    """A writable copy of ``a`` whose data starts one byte past an aligned
    address (numpy's ``aligned`` flag is False)."""
    a = np.asarray(a)
    buf = np.zeros(a.nbytes + a.itemsize + 1, np.uint8)
    m = buf[1:1 + a.nbytes].view(a.dtype).reshape(a.shape)
    m[...] = a
    assert not m.flags.aligned
    return m


def close(got, want, what, rtol=None):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    if rtol is None:
        rtol = 1e-4 if want.dtype == np.float32 else 1e-10
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol, err_msg=what)
'''


def run_probe(code, compiledir, timeout=240, env=None):
    """The finished process of ``code`` (with PRELUDE before it)."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    full_env["VMC_COMPILEDIR"] = str(compiledir)
    full_env.pop("VMC_FLAGS", None)
    full_env.update(env or {})
    src = PRELUDE + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", src], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def probe(code, compiledir, timeout=240, env=None):
    """Run ``code``; fail with its output unless it exits with status 0.
    Returns what it printed."""
    proc = run_probe(code, compiledir, timeout, env)
    if proc.returncode != 0:
        what = (f"killed by signal {-proc.returncode}" if proc.returncode < 0
                else f"exit status {proc.returncode}")
        raise AssertionError(f"probe failed ({what}):\n--- stdout\n{proc.stdout[-4000:]}"
                             f"\n--- stderr\n{proc.stderr[-6000:]}")
    return proc.stdout
