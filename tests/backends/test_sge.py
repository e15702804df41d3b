"""The "sge" backend and ``sge_cluster_setup`` against a real single-node Son of Grid Engine.

``.ci/schedulers/sge.sh`` starts it with one queue, ``all.q`` (2 slots). SGE jobs request
no memory unless ``resource_spec`` says how the site wants it requested.
"""

from __future__ import annotations

import os

import pytest

from acme_core import cluster_cleanup, sge_cluster_setup
from jobqueue_util import (
    LOOPBACK,
    PBS_SHIM_BIN,
    files_in,
    queue_stays_empty,
    read_results,
    run_walkthrough,
    sge_jobs,
    sge_status,
    wait_until_empty,
)

RUNNING, WHY = sge_status()
pytestmark = [pytest.mark.sge, pytest.mark.skipif(not RUNNING, reason=WHY)]


@pytest.fixture(autouse=True)
def empty_queue(monkeypatch):
    """SGE's own qsub must win: the PBS shim's qsub has the same name."""
    path = [p for p in os.environ["PATH"].split(os.pathsep) if p != PBS_SHIM_BIN]
    monkeypatch.setenv("PATH", os.pathsep.join(path))
    with queue_stays_empty(sge_jobs, cancel=["qdel"]):
        yield


def test_walkthrough_on_sge(in_tmp):
    out = in_tmp / "run"
    paths, workers = run_walkthrough("sge", out)
    assert workers == 2
    assert read_results(paths) == [18, 24, 30, 36]
    assert wait_until_empty(sge_jobs) == []
    assert files_in(in_tmp) == ["run"]  # SGE's job output went to the log directory


def test_n_workers_and_queue_reach_the_jobs(in_tmp):
    import subprocess

    logs = in_tmp / "logs"
    client = sge_cluster_setup(queue="all.q", n_workers=2, mem_per_worker="1GB", timeout=60,
                               interactive=False, log_directory=logs, **LOOPBACK)
    try:
        ids = client.cluster.acme_job_record.job_ids
        assert sorted(ids) == sorted(sge_jobs()) and len(ids) == 2
        for job in ids:
            text = subprocess.run(["qstat", "-j", job], capture_output=True, text=True).stdout
            assert "hard_queue_list:            all.q" in text
        assert len(client.scheduler_info()["workers"]) == 2
    finally:
        cluster_cleanup(client)
    assert wait_until_empty(sge_jobs) == []
    assert any(name.startswith("dask-worker") for name in files_in(logs))


def slots_of_my_job(x):
    import os

    return int(os.environ.get("NSLOTS", "0")) * 100 + x


def test_resources_ask_grid_engine_for_slots_and_memory(in_tmp):
    """Issue 17: ``resources`` -> ``-pe smp 2`` (the job gets 2 slots) and ``-l mem_free``."""
    from acme_core import ParallelMap

    out = in_tmp / "run"
    with ParallelMap(slots_of_my_job, [1, 2], backend="sge", n_workers=1, setup_timeout=60,
                     resources={"cores": 2, "mem": "1GB"}, output_dir=out,
                     backend_options={"run_dir": out, **LOOPBACK}) as pmap:
        paths = pmap.compute()
        script = pmap.executor.cluster.job_script()
    assert read_results(paths) == [201, 202]  # NSLOTS=2 in the worker's job
    assert "#$ -pe smp 2\n" in script and "#$ -l mem_free=954M\n" in script
    assert wait_until_empty(sge_jobs) == []


def test_bad_queue_lists_the_queues(in_tmp):
    with pytest.raises(ValueError, match=r"Invalid queue selection 'nosuch'.*\['all.q'\]"):
        sge_cluster_setup(queue="nosuch", interactive=False, **LOOPBACK)
    assert sge_jobs() == []


def test_memory_above_the_node_fails_before_submitting(in_tmp):
    with pytest.raises(ValueError, match="more than any node of queue all.q has"):
        sge_cluster_setup(queue="all.q", mem_per_worker="100GB", interactive=False, **LOOPBACK)
    assert sge_jobs() == []


def test_acme_n_cores_alone_is_no_conflict(in_tmp):
    """ACME's ``n_cores`` reaches the check (before: 'give cores_per_worker or n_cores')."""
    with pytest.raises(ValueError, match="`cores_per_worker` 64 is more than any node of queue "
                                         "all.q has"):
        sge_cluster_setup(queue="all.q", n_cores=64, interactive=False, **LOOPBACK)
    assert sge_jobs() == []
