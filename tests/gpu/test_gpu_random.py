"""Random streams on the device: Philox draws give the same numbers on the CPU
and on the device for the same seed (uniforms and integers bit for bit), and
successive calls give fresh numbers."""
import numpy as np
import pytest

import vmc
import vmc.tensor as vt


def _draws(seed, device):
    with vmc.config.change(device=device):
        srng = vt.random.RandomStream(seed, algorithm="philox")
        n = vt.lscalar("n")
        outs = [srng.uniform(0, 1, size=(n, 3), dtype="float32"), srng.uniform(-2, 5, size=(7,), dtype="float64"),
                srng.normal(1, 2, size=(n,), dtype="float32"), srng.integers(3, 11, size=(5,)),
                srng.binomial(1, 0.3, size=(n,)), srng.normal(size=(4,), dtype="float64")]
        return vmc.function([n], outs), srng


def test_same_seed_same_numbers_on_cpu_and_device(device):
    f_dev, _ = _draws(42, device)
    f_cpu, _ = _draws(42, "cpu")
    for call in range(2):
        got, want = f_dev(1000), f_cpu(1000)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
        np.testing.assert_array_equal(got[3], want[3])
        np.testing.assert_array_equal(got[4], want[4])
        np.testing.assert_allclose(got[2], want[2], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(got[5], want[5], rtol=1e-12, atol=1e-12)
    assert not np.array_equal(f_dev(1000)[0], got[0])      # the state advances


def test_philox_statistics(device):
    f, srng = _draws(7, device)
    u, _, z, k, b, _ = f(200_000)
    assert u.dtype == np.float32 and 0 <= u.min() and u.max() < 1
    assert abs(u.mean() - 0.5) < 0.005 and abs(z.mean() - 1) < 0.02 and abs(z.std() - 2) < 0.02
    assert set(np.unique(k)) <= set(range(3, 11)) and abs(b.mean() - 0.3) < 0.005
    srng.seed(7)                                   # back to the first call's numbers
    np.testing.assert_array_equal(f(10)[0], u[:10])


def test_draws_on_the_device(device):
    f, _ = _draws(1, device)
    names = {type(n.op).__name__ for n in f.fgraph.toposort()
             if any(getattr(v.type, "device", None) for v in n.outputs)}
    assert "PhiloxDraw" in names
