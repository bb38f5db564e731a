"""The pool's task ring (vmc_pool_trace.h, vmc.thunks.pool_trace): one row per task
of a traced job, the newest VMC_PTRACE_CAP kept, read back oldest first."""
import threading

import numpy as np

from vmc.config import config
from vmc.thunks import pool_trace
from vmc.thunks.cgen.elemwise import runtime

CAP = 1 << 16        # VMC_PTRACE_CAP


def _jobs(rows, ntasks):
    """Every job of the rows ran each of its ntasks tasks once, task t on items [t, t + 1)."""
    for job in np.unique(rows["job"]):
        mine = np.sort(rows[rows["job"] == job], order="task")
        assert list(mine["task"]) == list(range(ntasks))
        assert (mine["ntasks"] == ntasks).all()
        assert (mine["lo"] == mine["task"]).all() and (mine["hi"] == mine["task"] + 1).all()


def test_traced_jobs_record_each_task_once_and_untraced_ones_nothing():
    rt = runtime()
    with config.change(threads=2):
        pool_trace.events(clear=True)
        jobs = rt.pool_info()["traced_jobs"]
        assert rt.pool_time(16, 10, False) > 0
        assert len(pool_trace.events()) == 0 and rt.pool_info()["traced_jobs"] == jobs
        rt.pool_time(16, 10, True)
        rows = pool_trace.events()
    assert len(rows) == 160 and rt.pool_info()["traced_jobs"] == jobs + 10
    assert len(np.unique(rows["job"])) == 10
    _jobs(rows, 16)
    assert (rows["caller"] == np.uint64(threading.get_ident())).all()
    assert set(np.unique(rows["worker"])) <= {0, 1}
    assert (rows["t1"] >= rows["t0"]).all()
    assert (np.diff(rows["seq"].astype(np.int64)) == 1).all()     # oldest first, none missing
    assert len(pool_trace.events(clear=True)) == 160
    assert len(pool_trace.events()) == 0                        # cleared


def test_the_ring_keeps_the_newest_rows():
    rt = runtime()
    with config.change(threads=2):
        pool_trace.events(clear=True)
        rt.pool_time(64, CAP // 64 + 10, True)       # 640 rows more than the ring holds
        rows = pool_trace.events(clear=True)
    assert rt.pool_info()["trace_capacity"] == CAP
    assert len(rows) == CAP
    seq = rows["seq"].astype(np.int64)
    assert (np.diff(seq) == 1).all()
    # jobs run one after another: the 10 oldest are gone whole, the newest kept whole
    jobs = np.unique(rows["job"])
    assert len(jobs) == CAP // 64 and jobs[-1] - jobs[0] + 1 == len(jobs)
    _jobs(rows, 64)
