"""Without mpi4py, vmc works and vmc.distributed says what to install."""
import os
import subprocess
import sys

import vmc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(vmc.__file__)))
# A None entry in sys.modules makes ``import mpi4py`` fail as if it were not installed.
BLOCK = "import sys; sys.modules['mpi4py'] = None; "


def _python(code):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-c", BLOCK + code], capture_output=True,
                          text=True, env=env, timeout=300)


def test_vmc_runs_without_mpi():
    proc = _python("import numpy as np, vmc, vmc.tensor as vt; x = vt.dvector('x'); "
                   "print(vmc.function([x], (x * 2).sum())(np.arange(4.0)))")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "12.0"


def test_distributed_names_what_to_install():
    proc = _python("import vmc.distributed")
    assert proc.returncode != 0
    assert "ImportError: vmc.distributed needs mpi4py and an MPI library" in proc.stderr
    assert "pip install 'vmc[mpi]'" in proc.stderr
