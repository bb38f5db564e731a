"""Items 2, 10, 11 and 12 of issue 20: the compile cache and kernel libraries.

2. A cached kernel cut short on disk crashed (SIGBUS) every later process
   that compiled the same graph, forever: entries are sealed (size and hash)
   and checked before loading, and a damaged one is rebuilt.
10. Kernel libraries were never unloaded: their mappings stay bounded when
   functions are compiled and dropped.
11. The compile dir grew without bound: ``config.compiledir_max_mb`` bounds
   it, least recently used entries going first, and ``python -m vmc cache
   info`` shows the bound.
12. Without a C compiler vmc fell back to numpy silently: it warns once,
   naming what to install.
Each probe runs in its own process, with its own compile dir.
"""
import os
import subprocess
import sys

from probe_helpers import ROOT, probe

GRAPH = '''
x = vt.dvector('x')
f = vmc.function([x], vt.tanh(x) * 3.25 + vt.exp(x))
v = np.linspace(-1, 1, 7)
np.testing.assert_allclose(f(v), np.tanh(v) * 3.25 + np.exp(v), rtol=1e-12)
print("ok")
'''


def kernel_files(d):
    return sorted(p for p in d.iterdir() if p.name.startswith("vmcg_elemwise")
                  and p.name.endswith(".so"))


def test_damaged_cached_kernel_is_rebuilt(tmp_path):
    probe(GRAPH, tmp_path)
    sos = kernel_files(tmp_path)
    assert sos, sorted(p.name for p in tmp_path.iterdir())
    for so in sos:                              # cut short, as a full disk leaves it
        os.truncate(so, 4096)
    for _ in range(2):                          # the first rebuilds, the next loads that
        assert probe(GRAPH, tmp_path).strip() == "ok"
    for so in kernel_files(tmp_path):
        assert so.stat().st_size > 4096
    # scrambled in place, same size
    for so in kernel_files(tmp_path):
        data = bytearray(so.read_bytes())
        data[len(data) // 2: len(data) // 2 + 512] = os.urandom(512)
        so.write_bytes(bytes(data))
    assert probe(GRAPH, tmp_path).strip() == "ok"


def test_libraries_of_dropped_functions_are_unloaded(tmp_path):
    out = probe('''
        import gc
        def vmcg_maps():
            return sum(1 for line in open("/proc/self/maps") if "vmcg_" in line)
        x = vt.dvector('x')
        v = np.linspace(-1, 1, 5)
        keep = vmc.function([x], vt.tanh(x) * 0.25 + vt.exp(x) * 7.5)
        per_lib = vmcg_maps()
        assert per_lib > 0
        for i in range(12):
            c = 2.0 + i
            f = vmc.function([x], vt.tanh(x) * c + vt.exp(x) * (i + 0.5))
            np.testing.assert_allclose(f(v), np.tanh(v) * c + np.exp(v) * (i + 0.5), rtol=1e-12)
            del f
        gc.collect()
        assert vmcg_maps() == per_lib, (vmcg_maps(), per_lib)   # only keep's library
        np.testing.assert_allclose(keep(v), np.tanh(v) * 0.25 + np.exp(v) * 7.5, rtol=1e-12)
        del keep
        gc.collect()
        assert vmcg_maps() == 0
        # compiled again once closed: loaded again
        f = vmc.function([x], vt.tanh(x) * 0.25 + vt.exp(x) * 7.5)
        np.testing.assert_allclose(f(v), np.tanh(v) * 0.25 + np.exp(v) * 7.5, rtol=1e-12)
        print("ok")
    ''', tmp_path)
    assert out.strip() == "ok"


def test_compiledir_is_bounded_least_recently_used_first(tmp_path):
    out = probe('''
        import gc, os, time
        from vmc.thunks.cgen import cache
        d = cache.compiledir()
        vmc.config.compiledir_max_mb = 0.25
        vmc.config.graph_cache = False
        x = vt.dvector('x')
        v = np.linspace(-1, 1, 5)

        def libs():
            return {p for p in os.listdir(d) if p.endswith(".so")}

        def use(c, k):
            """Compile, check, drop; the library it loaded or built, if new."""
            before = libs()
            f = vmc.function([x], vt.tanh(x) * c + vt.exp(x) * k)
            np.testing.assert_allclose(f(v), np.tanh(v) * c + np.exp(v) * k, rtol=1e-12)
            del f
            gc.collect()
            time.sleep(0.01)            # distinct modification times
            return libs() - before

        order = [use(0.125, 1.0).pop()]             # A
        for i in range(4):
            order += use(2.0 + i, i + 0.5)
        assert not use(0.125, 1.0)                  # A again, loaded from disk
        order.append(order.pop(0))
        sizes = []
        for i in range(4, 16):
            order += use(2.0 + i, i + 0.5)
            sizes.append(cache.cache_info()["bytes"])
        survivors = [s for s in order if s in libs()]
        assert 0 < len(survivors) < len(order), (survivors, order)
        assert survivors == order[-len(survivors):], (survivors, order)   # the newest
        # (cache_info counts build.log and the usage file too: a block or two each)
        assert max(sizes) <= 0.25 * 2 ** 20 + 16384, sizes
        print("ok")
    ''', tmp_path)
    assert out.strip() == "ok"
    info = subprocess.run([sys.executable, "-m", "vmc", "cache", "info"], cwd=ROOT,
                          capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT),
                               "VMC_COMPILEDIR": str(tmp_path),
                               "VMC_FLAGS": "compiledir_max_mb=0.25"})
    assert "max_mb: 0.25" in info.stdout, info.stdout + info.stderr


def test_missing_compiler_warns_once_naming_what_to_install(tmp_path):
    env = {"PATH": str(tmp_path / "no-such-dir")}
    out = probe('''
        import warnings
        x = vt.dvector('x')
        v = np.linspace(-1, 1, 5)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            f = vmc.function([x], vt.tanh(x) * 3.25 + vt.exp(x))
            g = vmc.function([x], vt.tanh(x) * 2.25 + vt.exp(x))
        said = [str(m.message) for m in w if "compiler" in str(m.message)]
        assert len(said) == 1, said
        assert "install" in said[0] and "gcc" in said[0], said[0]
        np.testing.assert_allclose(f(v), np.tanh(v) * 3.25 + np.exp(v), rtol=1e-12)
        np.testing.assert_allclose(g(v), np.tanh(v) * 2.25 + np.exp(v), rtol=1e-12)
        print("ok")
    ''', tmp_path, env={**env, "CC": ""})
    assert out.strip() == "ok"
