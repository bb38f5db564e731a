"""``import vmc`` leaves scipy.special and the scipy.linalg package unimported (0.35 s and
0.42 s of import time): the ops that need them import them on first use and give scipy's
numbers, and the BLAS thunks' ``scipy.linalg.cython_blas`` is loaded on its own
(vmc/thunks/scipy_blas.py)."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import scipy.special

import vmc
import vmc.tensor as vt

ROOT = Path(__file__).resolve().parents[2]


def test_import_vmc_imports_neither_scipy_special_nor_linalg():
    code = ("import sys, vmc, vmc.thunks._blas\n"
            "print(sorted(m for m in sys.modules if m.startswith(('scipy.special', "
            "'scipy.linalg'))))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=str(ROOT), timeout=120, check=True)
    assert p.stdout.strip() == "['scipy.linalg.cython_blas']"


def test_gemm_through_the_preloaded_blas_then_scipy_linalg_imports_cleanly():
    code = ("import numpy as np, vmc, vmc.tensor as vt\n"
            "a, b = vt.dmatrix('a'), vt.dmatrix('b')\n"
            "f = vmc.function([a, b], vt.dot(a, b))\n"
            "x = np.arange(6.0).reshape(2, 3); y = np.arange(12.0).reshape(3, 4)\n"
            "assert np.array_equal(f(x, y), x @ y)\n"
            "import scipy.linalg, sys\n"
            "from scipy.linalg import cython_blas\n"
            "assert cython_blas is sys.modules['scipy.linalg.cython_blas']\n"
            "assert np.allclose(scipy.linalg.solve([[2.0]], [4.0]), [2.0])\n"
            "print('ok')")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=str(ROOT), timeout=120)
    assert p.stdout.strip() == "ok", p.stderr


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
