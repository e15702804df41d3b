"""The "pbs" backend and ``pbs_cluster_setup``.

Debian has no PBS server, so PBS runs through **Slurm's Torque/PBS wrappers**
(``qsub``/``qstat``/``qdel``/``pbsnodes`` from ``slurm-wlm-torque``, unpacked by
``.ci/schedulers/pbs-shim.sh`` into ``/opt/slurm-torque/bin``) over the local SLURM:
``dask_jobqueue.PBSCluster``'s ``#PBS`` job script, qsub submission, job-id parsing
and qdel cancellation run for real, but Slurm does the scheduling, and real PBS
output formats (``qstat -f``, ``123.server`` ids) are not exercised.
"""

from __future__ import annotations

import os

import pytest

from acme_core import cluster_cleanup, pbs_cluster_setup
from jobqueue_util import (
    LOOPBACK,
    PBS_SHIM_BIN,
    files_in,
    pbs_status,
    queue_stays_empty,
    read_results,
    run_walkthrough,
    scontrol_job,
    slurm_jobs,
    wait_until_empty,
)

RUNNING, WHY = pbs_status()
pytestmark = [pytest.mark.pbs, pytest.mark.skipif(not RUNNING, reason=WHY)]


@pytest.fixture(autouse=True)
def pbs_on_path(monkeypatch):
    """The wrappers' qsub must win over SGE's (same name), for these tests only."""
    monkeypatch.setenv("PATH", PBS_SHIM_BIN + os.pathsep + os.environ["PATH"])
    with queue_stays_empty(slurm_jobs, cancel=["scancel"]):
        yield


def test_walkthrough_on_pbs(in_tmp):
    """PBS through Slurm's Torque wrappers: the walkthrough, read back with h5py."""
    out = in_tmp / "run"
    paths, workers = run_walkthrough("pbs", out)
    assert workers == 2
    assert read_results(paths) == [18, 24, 30, 36]
    assert wait_until_empty(slurm_jobs) == []
    # the wrappers ignore "#PBS -o/-e DIR": qsub runs in the log directory instead,
    # so no tmpXXXX.sh.o<id> files land in the current directory
    assert files_in(in_tmp) == ["run"]


def test_queue_memory_and_n_workers_reach_the_jobs(in_tmp):
    """PBS through Slurm's Torque wrappers: #PBS -q/-l reach Slurm's job record."""
    logs = in_tmp / "logs"
    client = pbs_cluster_setup(queue="8GBXS", n_workers=2, mem_per_worker="1GB", timeout=60,
                               interactive=False, log_directory=logs, **LOOPBACK)
    try:
        ids = client.cluster.acme_job_record.job_ids
        assert len(ids) == 2 and sorted(ids) == sorted(slurm_jobs())
        for job in ids:
            info = scontrol_job(job)
            assert info["Partition"] == "8GBXS"
            assert info["NumCPUs"] == "1"
        assert len(client.scheduler_info()["workers"]) == 2
    finally:
        cluster_cleanup(client)
    assert wait_until_empty(slurm_jobs) == []
    assert files_in(in_tmp) == ["logs"]
    assert any(".o" in name or ".e" in name for name in files_in(logs))


def test_bad_queue_lists_the_queues(in_tmp):
    """PBS through Slurm's Torque wrappers: qstat -Q lists Slurm's partitions as queues."""
    with pytest.raises(ValueError, match="Invalid queue selection 'nosuch'") as err:
        pbs_cluster_setup(queue="nosuch", interactive=False, **LOOPBACK)
    assert "8GBXS" in str(err.value) and "debug" in str(err.value)
    assert slurm_jobs() == []
