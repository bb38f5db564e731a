"""The compile cache: one build per entry across processes, atomic entries,
rebuild of a corrupt entry, no compiler -> a warning and False.

Each test gets a fresh cache directory; build.log (one line per compiler
invocation) says how many builds happened.
"""
import multiprocessing as mp
import os
import subprocess
import sys
import textwrap
import uuid
import warnings
from pathlib import Path

import pytest
from cache_helpers import builds, compiledir_at

from vmc.thunks.cgen import cache

ROOT = Path(__file__).resolve().parents[2]


def source(token: int) -> str:
    return textwrap.dedent(f"""
        static PyObject *token(PyObject *self, PyObject *unused) {{ return PyLong_FromLong({token}); }}
        static const vmc_export VMC_EXPORTS[] = {{{{NULL}}}};
        static PyMethodDef VMC_METHODS[] = {{{{"token", token, METH_NOARGS, NULL}}, {{NULL}}}};
        """)


def in_fresh_process(d: Path, code: str, **env) -> subprocess.CompletedProcess:
    full = {**os.environ, "VMC_COMPILEDIR": str(d), "VMC_FLAGS": f"compiledir={d}",
            "PYTHONPATH": str(ROOT), **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=full, cwd=str(ROOT), timeout=300)


@pytest.fixture
def tmpcache(tmp_path):
    with compiledir_at(tmp_path / "cache") as d:
        yield d


def _worker(args):
    barrier, src = args
    barrier.wait()                      # all eight ask for the entry at once
    return cache.compile_module(src, "race").token()


def test_eight_processes_build_once(tmpcache):
    token = uuid.uuid4().int % 100000
    ctx = mp.get_context("fork")
    barrier = ctx.Manager().Barrier(8)
    with ctx.Pool(8) as pool:
        results = pool.map(_worker, [(barrier, source(token))] * 8)
    assert results == [token] * 8
    assert builds(tmpcache, "race") == 1
    assert cache.cache_info()["entries"] == 1


def test_second_process_builds_no_c(tmpcache):
    src = source(uuid.uuid4().int % 100000)
    code = (f"from vmc.thunks.cgen.cache import compile_module\n"
            f"print(compile_module({src!r}, 'again').token())")
    first = in_fresh_process(tmpcache, code)
    assert first.returncode == 0, first.stderr
    assert builds(tmpcache, "again") == 1
    second = in_fresh_process(tmpcache, code)
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
    assert builds(tmpcache, "again") == 1


def test_in_process_memo_loads_once(tmpcache):
    src = source(7)
    m1 = cache.compile_module(src, "memo")
    m2 = cache.compile_module(src, "memo")
    assert m1 is m2 and builds(tmpcache, "memo") == 1


def test_corrupt_entry_is_rebuilt(tmpcache):
    src = source(uuid.uuid4().int % 100000)
    code = (f"from vmc.thunks.cgen.cache import compile_module\n"
            f"print(compile_module({src!r}, 'corrupt').token())")
    assert in_fresh_process(tmpcache, code).returncode == 0
    so, = tmpcache.glob("vmcg_corrupt_*" + cache.EXT_SUFFIX)
    so.write_bytes(b"not an ELF file")
    again = in_fresh_process(tmpcache, code)
    assert again.returncode == 0, again.stderr
    assert builds(tmpcache, "corrupt") == 2
    assert so.read_bytes()[:4] == b"\x7fELF"


def test_corrupt_kernel_library_is_rebuilt(tmpcache):
    # generated kernels are plain C libraries opened by the driver (not modules)
    code = textwrap.dedent("""
        import numpy as np, vmc, vmc.tensor as vt
        x = vt.vector("x")
        v = np.linspace(-2, 2, 9)
        print(np.allclose(vmc.function([x], vt.tanh(x) * 5 - x)(v), np.tanh(v) * 5 - v))
        """)
    first = in_fresh_process(tmpcache, code)
    assert first.stdout.strip() == "True", first.stderr
    lib, = tmpcache.glob("vmcg_elemwise_*.so")
    assert not lib.name.endswith(cache.EXT_SUFFIX)
    assert b"Python.h" not in (tmpcache / (lib.name[:-3] + ".c")).read_bytes()
    lib.write_bytes(b"not an ELF file")
    again = in_fresh_process(tmpcache, code)
    assert again.stdout.strip() == "True", again.stderr
    assert builds(tmpcache, "elemwise") == 2 and lib.read_bytes()[:4] == b"\x7fELF"


def test_key_changes_with_flags(tmpcache, monkeypatch):
    src = source(11)
    cache.compile_module(src, "flags")
    monkeypatch.setenv("VMC_CFLAGS", "-DVMC_TEST_FLAG=1")
    cache.compile_module(src, "flags")
    assert builds(tmpcache, "flags") == 2


def test_info_and_clear(tmpcache):
    cache.compile_module(source(3), "info")
    info = cache.cache_info()
    assert info["dir"] == str(tmpcache) and info["entries"] >= 1 and info["bytes"] > 0
    cache.cache_clear()
    assert cache.cache_info()["entries"] == 0
    assert cache.compile_module(source(3), "info").token() == 3   # rebuilt after clear


def test_compile_error_names_the_source(tmpcache):
    with pytest.raises(cache.CompileError, match="source kept in"):
        cache.compile_module("this is not C;", "broken")


def test_no_compiler_warns_once_and_says_false(tmp_path):
    code = textwrap.dedent("""
        import warnings
        warnings.simplefilter("always")
        from vmc.thunks.cgen.cache import have_compiler
        with warnings.catch_warnings(record=True) as w:
            print(have_compiler(), have_compiler(), len(w), str(w[0].message) if w else "")
        """)
    res = in_fresh_process(tmp_path, code, CC="/bin/false")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("False False 1 vmc:"), res.stdout


def test_have_compiler_here():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache.have_compiler()


def test_no_compiler_function_runs_with_numpy_and_warns_once(tmp_path):
    # the fused builder compiles without probing first; a failed build probes, and a
    # compiler that cannot build anything means numpy thunks, with one warning
    code = textwrap.dedent("""
        import warnings
        warnings.simplefilter("always")
        import numpy as np, vmc, vmc.tensor as vt
        x = vt.vector("x")
        with warnings.catch_warnings(record=True) as w:
            f = vmc.function([x], vt.tanh(x) * 2 + 1)
            g = vmc.function([x], vt.exp(x) - x)
        v = np.linspace(-2, 2, 7)
        assert np.allclose(f(v), np.tanh(v) * 2 + 1) and np.allclose(g(v), np.exp(v) - v)
        msgs = [str(m.message) for m in w if "numpy thunks" in str(m.message)]
        print(len(msgs), msgs[0] if msgs else "")
        """)
    res = in_fresh_process(tmp_path, code, CC="/bin/false")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("1 vmc:"), res.stdout
    assert not list(tmp_path.glob("vmcg_probe*" + cache.EXT_SUFFIX))


def test_empty_cache_compiles_only_the_kernels(tmpcache):
    # the driver is built with the package: a cold cache costs one build per function
    import numpy as np

    import vmc
    import vmc.tensor as vt
    x = vt.vector("x")
    f = vmc.function([x], vt.tanh(x) * 3 - x)
    v = np.linspace(-1, 1, 5)
    np.testing.assert_allclose(f(v), np.tanh(v) * 3 - v)
    log = (tmpcache / cache.BUILD_LOG).read_text().splitlines()
    assert len(log) == 1 and "elemwise" in log[0], log


def test_alias_names_a_source_without_generating_it(tmpcache):
    # cached_library generates a source only when no earlier build recorded
    # which entry its alias stands for
    import ctypes
    calls = []

    def gen(token):
        def make():
            calls.append(token)
            return (f'__attribute__((visibility("default"))) int vmc_token(void) '
                    f'{{ return {token}; }}\n')
        return make
    alias = f"test alias {uuid.uuid4()}"
    assert cache.cached_library(alias, gen(5), "alias", ctypes.CDLL).vmc_token() == 5
    cache._memo.clear()                 # as a fresh process starts
    again = cache.cached_library(alias, gen(6), "alias", ctypes.CDLL)
    assert again.vmc_token() == 5 and calls == [5] and builds(tmpcache, "alias") == 1
    other = cache.cached_library(alias + " changed", gen(6), "alias", ctypes.CDLL)
    assert other.vmc_token() == 6 and calls == [5, 6]
