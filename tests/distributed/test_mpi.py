"""vmc.distributed on two ranks: each test runs ``mpi_jobs.py`` under ``mpiexec -n 2``
(from the ``mpich`` wheel of the test extra, or the system's) in a subprocess with a
timeout, so that a hang fails one test instead of the run."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import vmc
from bench.mpi_launch import run

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mpi_jobs  # noqa: E402

RANKS = 2
TIMEOUT = 240       # seconds; a hang, not a measurement (2 loaded cores start slowly)


def _job(name, tmp_path, **env):
    root = os.path.dirname(os.path.dirname(os.path.abspath(vmc.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])
    try:
        return run(RANKS, [os.path.join(HERE, "mpi_jobs.py"), name, str(tmp_path)],
                   TIMEOUT, env)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"mpiexec -n {RANKS} mpi_jobs.py {name} hung for {TIMEOUT} s:\n"
                    f"{exc.stderr}")


def _loaded(tmp_path, name):
    return [np.load(tmp_path / f"{name}.{r}.npz") for r in range(RANKS)]


def test_data_parallel_sgd_matches_one_process(tmp_path):
    proc = _job("sgd", tmp_path)
    assert proc.returncode == 0, proc.stderr
    ranks = _loaded(tmp_path, "sgd")
    step, params = mpi_jobs.mlp()
    for x, y in mpi_jobs.batches():
        step(x, y)
    for linker in ("cvm", "py"):
        for q in params:
            key = f"{linker}.{q.name}"
            # The ranks agree bit for bit: one allreduce result on both.
            np.testing.assert_array_equal(ranks[0][key], ranks[1][key])
            np.testing.assert_allclose(ranks[0][key], q.get_value(), rtol=0, atol=1e-12)


def test_collectives_against_numpy(tmp_path):
    proc = _job("collectives", tmp_path)
    assert proc.returncode == 0, proc.stderr
    for r, saved in enumerate(_loaded(tmp_path, "collectives")):
        names = [k[4:] for k in saved.files if k.startswith("got.")]
        assert len(names) == 26
        for name in names:
            got, want = saved["got." + name], saved["want." + name]
            assert got.shape == want.shape, (r, name)
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12,
                                       err_msg=f"rank {r}: {name}")


def test_a_failing_rank_ends_every_rank(tmp_path):
    proc = _job("fail", tmp_path)
    assert proc.returncode != 0
    assert "vmc.distributed: rank 1 of 2 failed; aborting every rank" in proc.stderr
    assert "RuntimeError: rank one broke on purpose" in proc.stderr


def test_shapes_that_differ_between_ranks_are_named(tmp_path):
    proc = _job("shapes", tmp_path)
    assert proc.returncode != 0
    assert ("allreduce(sum): the ranks disagree on the input: rank 0: allreduce(sum) of "
            "float64[3, 2], rank 1: allreduce(sum) of float64[4, 2]") in proc.stderr


@pytest.mark.parametrize("flags, each", [("", None), ("threads=3", 3)])
def test_ranks_on_one_machine_share_its_cpus(tmp_path, flags, each):
    # Unless the user set config.threads, 2 ranks that may run on the same CPUs
    # take half of them each (at least one), for the pool and BLAS alike.
    proc = _job("threads", tmp_path, VMC_FLAGS=flags)
    assert proc.returncode == 0, proc.stderr
    for saved in _loaded(tmp_path, "threads"):
        want = each or max(1, int(saved["cpus"]) // RANKS)
        assert int(saved["threads"]) == want
        assert list(saved["blas"]) == [want]
