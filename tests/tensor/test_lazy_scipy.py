"""``import vmc`` leaves scipy.special and scipy.linalg unimported (0.35 s and 0.07 s of
import time); the ops that need them import them on first use and give scipy's numbers."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import scipy.special

import vmc
import vmc.tensor as vt

ROOT = Path(__file__).resolve().parents[2]


def test_import_vmc_imports_no_scipy():
    code = "import sys, vmc; print(sorted(m for m in sys.modules if m.startswith('scipy')))"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=str(ROOT), timeout=120, check=True)
    assert p.stdout.strip() == "[]"


def test_special_functions_load_on_first_use_on_both_linkers():
    x = vt.dvector("x")
    xv = np.array([-3.0, -0.5, 0.0, 0.25, 2.0, 40.0])
    for linker in ("py", "cvm"):
        with vmc.config.change(linker=linker):
            f = vmc.function([x], [vt.erf(x), vt.sigmoid(x), vt.gammaln(x + 4.0)])
            erf, sig, gl = f(xv)
        np.testing.assert_allclose(erf, scipy.special.erf(xv), rtol=4e-16, atol=1e-300)
        np.testing.assert_allclose(sig, scipy.special.expit(xv), rtol=1e-15)
        np.testing.assert_allclose(gl, scipy.special.gammaln(xv + 4.0), rtol=1e-14)
