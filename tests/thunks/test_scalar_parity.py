"""Every scalar op of the vocabulary (vmc/tensor/scalar.py) has a C template
in the kernel generator (vmc/thunks/cgen/scalar_c.py), or is named here with
the reason it has none: a fused group that contains such an op is not
compiled, and runs with numpy."""
import vmc  # noqa: F401  (registers the vocabulary)
from vmc.tensor.scalar import SCALAR_OPS
from vmc.thunks.cgen.scalar_c import OPS

_NO_MATH = "no vmc_math.h implementation with a tested ulp bound yet"
NO_C_FORM = {name: _NO_MATH for name in ("erfinv", "psi", "erfcx", "gammainc", "gammaincc",
                                         "log1mexp", "logaddexp", "xlogy")}
# C templates for what the vocabulary builds through get_scalar_op with a parameter.
C_ONLY = {"cast"}


def test_scalar_ops_and_c_templates_agree():
    assert set(SCALAR_OPS) - set(OPS) == set(NO_C_FORM)
    assert set(OPS) - set(SCALAR_OPS) == C_ONLY


def test_ops_without_c_form_still_run_fused():
    import numpy as np
    import scipy.special as sp
    import vmc.tensor as vt
    x = vt.dvector("x")
    f = vmc.function([x], vt.erfinv(x * 0.5) + vt.psi(x + 2))
    v = np.linspace(-1, 1, 7)
    np.testing.assert_allclose(f(v), sp.erfinv(v * 0.5) + sp.psi(v + 2), rtol=1e-12)
