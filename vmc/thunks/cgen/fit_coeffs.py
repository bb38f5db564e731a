"""Derive the polynomial coefficients of vmc_math.h (run: python -m vmc.thunks.cgen.fit_coeffs).

Each approximation is a near-minimax Chebyshev fit (mpmath.chebyfit at 50
digits) of a smooth function on the interval the C code reduces its argument
to; the interval is widened by 2% so a reduction that rounds to the wrong side
stays covered. The coefficients are printed as exact C99 hex literals, lowest
degree first, to paste into vmc_math.h. Nothing imports this module: it is
here so the constants can be re-derived and checked, not hand-edited.
"""
import mpmath as mp
import numpy as np

mp.mp.dps = 50


def fit(f, a, b, deg, ctype="double"):
    coeffs = mp.chebyfit(f, [a, b], deg + 1)[::-1]
    rnd = (lambda c: float(c)) if ctype == "double" else (lambda c: float(np.float32(float(c))))
    coeffs = [rnd(c) for c in coeffs]
    # chebyfit's own estimate misreads removable singularities: sample instead.
    grid = [a + (b - a) * mp.mpf(i) / 4000 for i in range(4001)]
    err = max(abs(f(x) - mp.polyval(coeffs[::-1], x)) for x in grid)
    return coeffs, float(err)


def c_array(name, coeffs, err, ctype="double"):
    suffix = "f" if ctype == "float" else ""
    body = ", ".join(f"{float(c).hex()}{suffix}" for c in coeffs)
    return f"/* max abs error {err:.3g} */\nstatic const {ctype} {name}[{len(coeffs)}] = {{{body}}};"


def _div0(num, at0):
    return lambda v: num(v) if v != 0 else mp.mpf(at0)


LN2 = mp.log(2)
EM1 = _div0(lambda r: (mp.expm1(r) - r) / r**2, 0.5)                      # expm1(r) = r + r^2 P(r)
LOGQ = lambda z: mp.fsum(2 * z**(k - 1) / (2 * k + 1) for k in range(1, 80))  # log1p: R(z) = z Q(z)
SIN_S = _div0(lambda z: (mp.sin(mp.sqrt(z)) - mp.sqrt(z)) / mp.sqrt(z)**3, -mp.mpf(1) / 6)
COS_C = _div0(lambda z: (mp.cos(mp.sqrt(z)) - 1 + z / 2) / z**2, mp.mpf(1) / 24)
ERF_E = _div0(lambda z: mp.erf(mp.sqrt(z)) / mp.sqrt(z), 2 / mp.sqrt(mp.pi))  # erf(x) = x E(x^2)
ERFCX_U = lambda u: mp.erfc(1 / u) * mp.exp(1 / u**2)                     # erfc(x) = exp(-x^2) G(1/x)
ERF_PIECES = [(mp.mpf(1) / 6, mp.mpf(2) / 5), (mp.mpf(2) / 5, mp.mpf(2) / 3),
              (mp.mpf(2) / 3, 1 / mp.mpf(0.84375))]


def main():
    w = 1.02
    print(c_array("VMC_EM1_P", *fit(EM1, -LN2 / 2 * w, LN2 / 2 * w, 9)))
    print(c_array("VMC_LOG_Q", *fit(LOGQ, 0, 0.0295 * w, 7)))
    print(c_array("VMC_SIN_S", *fit(SIN_S, 0, (mp.pi / 4)**2 * w, 6)))
    print(c_array("VMC_COS_C", *fit(COS_C, 0, (mp.pi / 4)**2 * w, 6)))
    print(c_array("VMC_ERF_E", *fit(ERF_E, 0, 0.84375**2 * w, 16)))
    for i, (a, b) in enumerate(ERF_PIECES):
        m, h = (a + b) / 2, (b - a) / 2 * w
        print(f"/* erfc tail piece {i}: u = 1/|x| in [{float(a):.6g}, {float(b):.6g}], "
              f"t = (u - {float(m)!r}) * {float(1 / h)!r} */")
        print(c_array(f"VMC_ERF_G{i}", *fit(lambda t: ERFCX_U(m + t * h), -1, 1, 16)))
        print(f"#define VMC_ERF_M{i} {float(m).hex()}\n#define VMC_ERF_IH{i} {float(1 / h).hex()}")
    print(c_array("VMC_EM1F_P", *fit(EM1, -LN2 / 2 * w, LN2 / 2 * w, 4, "float"), ctype="float"))


if __name__ == "__main__":
    main()
