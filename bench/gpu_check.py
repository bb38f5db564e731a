"""``python3 -m bench.gpu_check OUTDIR``: all of vmc's GPU work on a machine with an
NVIDIA GPU, in one command, every log and result written to OUTDIR.

1. pycuda: imported if it already is, else installed into ``.site`` from the wheels in
   ``.gpuwheels`` (``../shared/gpu/README.md``: copy them there once, and carry the folder
   to the GPU machine), else built from pycuda's source archive there;
2. vmc built in place (``setup.py build_ext --inplace``: the machine's Python differs);
3. ``tests/gpu`` with ``VMC_TEST_DEVICES=cuda VMC_REQUIRE_CUDA=1`` (a missing CUDA device
   fails instead of skipping);
4. ``python -m bench --only H`` (vmc on CUDA against CuPy, and PyTorch where installed).

Each step runs with a time limit, whatever the previous one did, so a failure costs its
own step only; the whole fits in about 8 minutes on the H200. OUTDIR gets
``summary.txt`` (each step's status and time), ``env.txt`` (nvidia-smi, versions),
``01_pycuda.log``, ``02_build.log``, ``03_tests.log`` (+ ``tests_junit.xml``),
``04_bench_h.log``, ``bench_h.json`` and ``bench_h.md``.
"""
from __future__ import annotations

import glob
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SITE = os.path.join(ROOT, ".site")
WHEELS = os.path.join(ROOT, ".gpuwheels")
LIMITS = {"pycuda": 200, "build": 200, "tests": 150, "bench": 240}


def _env() -> dict:
    env = dict(os.environ)
    paths = [SITE, ROOT] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    cuda = env.get("CUDA_HOME") or "/usr/local/cuda"
    lib = os.path.join(cuda, "lib64")
    if os.path.isdir(lib):
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            [lib] + [p for p in env.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p])
        env.setdefault("CUDA_HOME", cuda)
    env["PATH"] = os.pathsep.join([os.path.join(cuda, "bin"), env.get("PATH", "")])
    return env


def _run(cmd, log, limit, env, out) -> tuple:
    """Run ``cmd`` (a list) with output into ``log``; (return code or 'timeout', seconds)."""
    t0 = time.time()
    with open(os.path.join(out, log), "a") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        f.flush()
        try:
            rc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT,
                                timeout=limit).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
        f.write(f"\n[exit {rc} after {time.time() - t0:.1f} s]\n")
    return rc, time.time() - t0


def _pycuda_imports(env) -> bool:
    probe = [sys.executable, "-c", "import pycuda.driver as d; d.init(); print(d.Device.count())"]
    return subprocess.run(probe, cwd=ROOT, env=env, capture_output=True).returncode == 0


def step_pycuda(env, out) -> tuple:
    if _pycuda_imports(env):
        with open(os.path.join(out, "01_pycuda.log"), "w") as f:
            f.write("pycuda already imports\n")
        return 0, 0.0
    wheels = sorted(glob.glob(os.path.join(WHEELS, "*.whl")))
    if not wheels:
        with open(os.path.join(out, "01_pycuda.log"), "w") as f:
            f.write(f"no wheels in {WHEELS}: copy ../shared/gpu/*.whl and *.tar.gz there\n")
        return "no wheels", 0.0
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--target",
           SITE, "--upgrade"]
    # its pure-Python dependencies first: the pycuda wheel fails alone on another Python
    deps = [w for w in wheels if not os.path.basename(w).startswith("pycuda-")]
    rc, dt = _run(pip + deps, "01_pycuda.log", LIMITS["pycuda"], env, out)
    mine = [w for w in wheels if os.path.basename(w).startswith("pycuda-")]
    if mine:
        rc, dt1 = _run(pip + mine, "01_pycuda.log", LIMITS["pycuda"], env, out)
        dt += dt1
    if _pycuda_imports(env):
        return 0, dt
    archives = sorted(glob.glob(os.path.join(WHEELS, "pycuda-*.tar.gz")))
    if not archives:
        return f"pycuda does not import (pip: {rc})", dt
    rc, dt2 = _run(pip + ["--no-build-isolation", archives[-1]], "01_pycuda.log",
                   LIMITS["pycuda"], env, out)
    return (0 if _pycuda_imports(env) else f"pycuda does not import (source build: {rc})"), \
        dt + dt2


def write_env(env, out):
    lines = []
    for cmd in (["nvidia-smi"], [sys.executable, "-VV"],
                [sys.executable, "-c", "import numpy, scipy, Cython; print('numpy', "
                 "numpy.__version__, 'scipy', scipy.__version__, 'cython', Cython.__version__)"],
                [sys.executable, "-c", "import cupy; print('cupy', cupy.__version__)"],
                ["nvcc", "--version"], ["git", "log", "-1", "--oneline"]):
        try:
            r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                               timeout=60)
            lines.append(f"$ {' '.join(cmd)}\n{r.stdout}{r.stderr}")
        except (OSError, subprocess.TimeoutExpired) as e:
            lines.append(f"$ {' '.join(cmd)}\n{e}")
    lines.append("libs: " + " ".join(sorted(
        glob.glob("/usr/local/cuda/lib64/libnvrtc.so*")
        + glob.glob("/usr/local/cuda/lib64/libcublas.so*"))))
    with open(os.path.join(out, "env.txt"), "w") as f:
        f.write("\n".join(lines))


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__)
        return 2
    out = os.path.abspath(argv[0])
    os.makedirs(out, exist_ok=True)
    env = _env()
    t_all = time.time()
    summary = []

    def record(name, result):
        rc, dt = result
        summary.append(f"{name:8s} {'ok' if rc == 0 else f'FAILED ({rc})'}  {dt:6.1f} s")
        print(summary[-1], flush=True)
        return rc == 0

    write_env(env, out)
    record("pycuda", step_pycuda(env, out))
    built = record("build", _run([sys.executable, "setup.py", "build_ext", "--inplace", "-j",
                                  str(os.cpu_count() or 4)],
                                 "02_build.log", LIMITS["build"], env, out))
    test_env = dict(env, VMC_TEST_DEVICES="cuda", VMC_REQUIRE_CUDA="1")
    if built:
        record("tests", _run([sys.executable, "-m", "pytest", "-q", "--tb=short",
                              "-p", "no:cacheprovider", "tests/gpu",
                              f"--junitxml={os.path.join(out, 'tests_junit.xml')}"],
                             "03_tests.log", LIMITS["tests"], test_env, out))
        record("bench H", _run([sys.executable, "-m", "bench", "--only", "H", "--row-timeout",
                                "120", "--json", os.path.join(out, "bench_h.json"), "--md",
                                os.path.join(out, "bench_h.md")], "04_bench_h.log",
                               LIMITS["bench"], env, out))
    summary.append(f"total    {time.time() - t_all:.1f} s")
    with open(os.path.join(out, "summary.txt"), "w") as f:
        f.write("\n".join(summary) + "\n")
    print(summary[-1])
    return 0 if all(" ok " in s for s in summary[:-1]) else 1


if __name__ == "__main__":
    sys.exit(main())
