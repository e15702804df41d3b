"""The "slurm" backend and ``slurm_cluster_setup`` against a real (single-node) SLURM.

``.ci/schedulers/slurm.sh`` starts it with partitions ``debug`` (default, the whole
node: 2 CPUs, ~24 GB), ``8GBXS``/``8GBS`` (8000 MB per node) and
``16GBXS``/``16GBS``. Every cluster here has at most 2 one-core workers.
"""

from __future__ import annotations

import logging
import time

import pytest

from acme_core import ParallelMap, cluster_cleanup, slurm_cluster_setup
from acme_core.errors import ParallelMapError
from jobqueue_util import (
    LOOPBACK,
    files_in,
    queue_stays_empty,
    read_results,
    run_walkthrough,
    scontrol_job,
    slurm_jobs,
    slurm_status,
    wait_until_empty,
    walkthrough,
)

RUNNING, WHY = slurm_status()
pytestmark = [pytest.mark.slurm, pytest.mark.skipif(not RUNNING, reason=WHY)]


@pytest.fixture(autouse=True)
def empty_queue():
    with queue_stays_empty(slurm_jobs, cancel=["scancel"]):
        yield


def record_ids(client) -> list[str]:
    return list(client.cluster.acme_job_record.job_ids)


def test_walkthrough_on_slurm(in_tmp):
    out = in_tmp / "run"
    paths, workers = run_walkthrough("slurm", out)
    assert workers == 2
    assert read_results(paths) == [18, 24, 30, 36]
    # stop_client="auto": the backend started the cluster, so leaving the block stopped it
    assert wait_until_empty(slurm_jobs) == []
    # job logs went to the run directory, not the current directory
    assert files_in(in_tmp) == ["run"]
    assert len([n for n in files_in(out / "job-logs") if n.startswith("dask-worker")]) == 4


def test_n_workers_memory_partition_reach_the_jobs(in_tmp):
    logs = in_tmp / "logs"
    client = slurm_cluster_setup(partition="8GBXS", n_workers=2, mem_per_worker="1GB",
                                 cores_per_worker=1, timeout=60, interactive=False,
                                 log_directory=logs, **LOOPBACK)
    try:
        ids = record_ids(client)
        assert sorted(ids) == sorted(slurm_jobs()) and len(ids) == 2
        for job in ids:
            info = scontrol_job(job)
            assert info["Partition"] == "8GBXS"
            assert info["NumCPUs"] == "1"
            assert info["MinMemoryNode"] == "954M"  # dask-jobqueue: 1 GB = 954 MiB
            assert info["StdOut"].startswith(str(logs))
            assert info["JobState"] == "RUNNING"
        assert len(client.scheduler_info()["workers"]) == 2
    finally:
        cluster_cleanup(client)
    assert wait_until_empty(slurm_jobs) == []
    assert files_in(in_tmp) == ["logs"]


def test_bad_partition_lists_the_partitions(in_tmp):
    with pytest.raises(ValueError, match="Invalid partition selection 'nosuch'") as err:
        slurm_cluster_setup(partition="nosuch", interactive=False, **LOOPBACK)
    for name in ("debug", "8GBXS", "8GBS", "16GBXS", "16GBS"):
        assert name in str(err.value)
    assert slurm_jobs() == []


def test_bad_partition_through_parallel_map(in_tmp):
    with pytest.raises(ValueError, match="available SLURM partitions are"):
        with ParallelMap(walkthrough, [2, 4], 4, backend="slurm", partition="8gbxs",
                         output_dir=in_tmp / "run", backend_options=LOOPBACK) as pmap:
            pmap.compute()
    assert slurm_jobs() == []


def test_memory_above_the_node_fails_before_submitting(in_tmp):
    with pytest.raises(ValueError, match="more than any node of partition debug has"):
        slurm_cluster_setup(partition="debug", mem_per_worker="100GB", interactive=False,
                            **LOOPBACK)
    assert slurm_jobs() == []


def test_memory_above_the_partition_limit_fails_before_submitting(in_tmp):
    with pytest.raises(ValueError, match="above the limit of partition 8GBXS"):
        slurm_cluster_setup(partition="8GBXS", mem_per_worker="10GB", interactive=False,
                            **LOOPBACK)
    assert slurm_jobs() == []


def test_cores_above_the_node_fail_before_submitting(in_tmp):
    with pytest.raises(ValueError, match="`cores_per_worker` 64 is more than any node"):
        slurm_cluster_setup(cores_per_worker=64, interactive=False, **LOOPBACK)
    assert slurm_jobs() == []


def test_job_that_never_starts_times_out_with_the_reason(in_tmp):
    # check_resources=False lets the request through to SLURM, which queues it forever
    # (memory above the partition's limit): the start-up must end within setup_timeout,
    # say why, and cancel the job.
    start = time.monotonic()
    with pytest.raises(TimeoutError) as err:
        slurm_cluster_setup(partition="8GBXS", mem_per_worker="10GB", timeout=3,
                            interactive=False, check_resources=False,
                            log_directory=in_tmp / "logs", **LOOPBACK)
    assert time.monotonic() - start < 20
    message = str(err.value)
    assert "within given time-out interval of 3 seconds" in message
    assert "Only 0 of 1 workers came up" in message
    assert "MaxMemPerLimit" in message and "never start" in message


def test_submission_refused_by_the_scheduler_is_reported(in_tmp):
    from acme_core.errors import SchedulerError

    start = time.monotonic()
    with pytest.raises(SchedulerError, match="Memory specification can not be satisfied"):
        slurm_cluster_setup(partition="debug", mem_per_worker="100GB", timeout=30,
                            interactive=False, check_resources=False,
                            log_directory=in_tmp / "logs", **LOOPBACK)
    assert time.monotonic() - start < 20  # not the whole timeout


def test_fewer_workers_go_on_and_say_why(in_tmp, caplog):
    # two 16 GB jobs do not fit on the 24 GB node at once: one runs, one waits (Resources)
    caplog.set_level(logging.INFO, logger="acme")
    client = slurm_cluster_setup(partition="debug", n_workers=2, mem_per_worker="16GB",
                                 timeout=4, interactive=False, log_directory=in_tmp / "logs",
                                 **LOOPBACK)
    try:
        assert len(client.scheduler_info()["workers"]) == 1
        assert client.submit(sum, [1, 2]).result(timeout=30) == 3
        text = caplog.text
        assert "Only 1 of 2 workers came up" in text
        assert "Resources" in text
        assert "Continuing with the 1 workers that are up" in text
        assert len(slurm_jobs()) == 2
    finally:
        cluster_cleanup(client)
    # the pending job is cancelled too
    assert wait_until_empty(slurm_jobs) == []


def test_unknown_keyword_is_an_error_before_submitting(in_tmp):
    with pytest.raises(TypeError, match=r"unknown keyword argument\(s\) \['walltim'\]"):
        slurm_cluster_setup(walltim="00:10:00", interactive=False, **LOOPBACK)
    with pytest.raises(TypeError, match="use `mem_per_worker`"):
        slurm_cluster_setup(memory="1GB", interactive=False, **LOOPBACK)
    with pytest.raises(ValueError, match="backend_options"):
        ParallelMap(walkthrough, [2, 4], 4, backend="slurm", output_dir=in_tmp / "run",
                    backend_options={"no_such_option": 1})
    assert slurm_jobs() == []


def test_dask_jobqueue_keywords_pass_through(in_tmp):
    client = slurm_cluster_setup(n_workers=1, mem_per_worker="500MB", timeout=60,
                                 interactive=False, job_name="acme-pass-through",
                                 walltime="00:05:00", job_extra=["--comment=acme-test"],
                                 log_directory=in_tmp / "logs", **LOOPBACK)
    try:
        info = scontrol_job(record_ids(client)[0])
        assert info["JobName"] == "acme-pass-through"
        assert info["TimeLimit"] == "00:05:00"
        assert info["Comment"] == "acme-test"
    finally:
        cluster_cleanup(client)


def test_start_client_false_returns_the_cluster(in_tmp):
    from dask_jobqueue import SLURMCluster

    cluster = slurm_cluster_setup(n_workers=1, mem_per_worker="500MB", timeout=60,
                                  interactive=False, start_client=False,
                                  log_directory=in_tmp / "logs", **LOOPBACK)
    try:
        assert isinstance(cluster, SLURMCluster)
        assert len(slurm_jobs()) == 1
    finally:
        cluster.close()


def test_client_reuse(in_tmp):
    """stop_client=False keeps the cluster; the next ParallelMap runs on the same jobs."""
    kwargs = dict(backend="slurm", n_workers=1, mem_per_worker="1GB", setup_timeout=60,
                  backend_options={"log_directory": in_tmp / "logs", **LOOPBACK})
    with ParallelMap(walkthrough, [2, 4, 6, 8], 4, output_dir=in_tmp / "one", stop_client=False,
                     **kwargs) as pmap:
        first = read_results(pmap.compute())
        client = pmap.executor.client
    jobs = slurm_jobs()
    assert len(jobs) == 1 and client.status == "running"
    try:
        with ParallelMap(walkthrough, [1, 2], 4, output_dir=in_tmp / "two", **kwargs) as again:
            second = read_results(again.compute())
            assert again.executor.client is client  # attached, not started anew
        # the second run did not start the cluster, so "auto" left it running
        assert slurm_jobs() == jobs and client.status == "running"
        with ParallelMap(walkthrough, [3], 4, output_dir=in_tmp / "three", backend="auto") as auto:
            third = read_results(auto.compute())
    finally:
        cluster_cleanup(client)
    assert first == [18, 24, 30, 36] and second == [15, 18] and third == [21]
    assert wait_until_empty(slurm_jobs) == []


def test_auto_memory_is_the_partitions_and_the_job_starts(in_tmp):
    # dask-jobqueue rounds --mem above 1 GiB up to whole GiB (8000 MiB -> 8G = 8192M, more
    # than 8GBXS allows): the request must be exact for the job to start at all
    client = slurm_cluster_setup(partition="8GBXS", n_workers=1, timeout=60, interactive=False,
                                 log_directory=in_tmp / "logs", **LOOPBACK)
    try:
        info = scontrol_job(record_ids(client)[0])
        assert info["MinMemoryNode"] == "8000M" and info["JobState"] == "RUNNING"
        assert len(client.scheduler_info()["workers"]) == 1
    finally:
        cluster_cleanup(client)


def test_jobs_that_die_at_once_fail_fast_and_point_to_the_logs(in_tmp):
    logs = in_tmp / "logs"
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="every SLURM job ended before its dask worker") as err:
        slurm_cluster_setup(n_workers=1, mem_per_worker="500MB", timeout=60, interactive=False,
                            job_script_prologue=["exit 3"], log_directory=logs, **LOOPBACK)
    assert time.monotonic() - start < 30  # not the 60 s timeout
    assert str(logs) in str(err.value)


def test_interactive_question_takes_its_default_when_nobody_answers(in_tmp, monkeypatch):
    import os
    import sys

    import acme_backends.jobqueue.setups

    read_end, write_end = os.pipe()  # stdin that never gets an answer
    monkeypatch.setattr(sys, "stdin", os.fdopen(read_end))
    monkeypatch.setattr(acme_backends.jobqueue.setups, "can_ask", lambda: True)
    start = time.monotonic()
    try:
        with pytest.raises(TimeoutError, match="aborted by the user.*MaxMemPerLimit"):
            slurm_cluster_setup(partition="8GBXS", mem_per_worker="10GB", timeout=2,
                                interactive=True, interactive_wait=1, check_resources=False,
                                log_directory=in_tmp / "logs", **LOOPBACK)
    finally:
        os.close(write_end)
    assert time.monotonic() - start < 20


def sleepy_job_square(x, record_dir):
    """Record which SLURM job ran the call, then take a moment (so a job can be cancelled)."""
    import os
    from pathlib import Path

    Path(record_dir, os.environ.get("SLURM_JOB_ID", "none")).touch()
    time.sleep(0.5)
    return x * x


def test_scancel_of_a_worker_job_mid_run_loses_nothing(in_tmp):
    """Issue 5: a worker job cancelled mid-run (scancel, walltime) never loses its calls."""
    import subprocess
    import threading

    import h5py

    record = in_tmp / "jobs"
    record.mkdir()
    cancelled: list[str] = []

    def cancel_first_job_seen() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not cancelled:
            seen = [p.name for p in record.iterdir() if p.name != "none"]
            if seen:
                subprocess.run(["scancel", seen[0]], check=True)
                cancelled.append(seen[0])
            time.sleep(0.1)

    out = in_tmp / "run"
    canceller = threading.Thread(target=cancel_first_job_seen)
    canceller.start()
    with ParallelMap(sleepy_job_square, list(range(12)), str(record), backend="slurm",
                     n_workers=2, mem_per_worker="1GB", setup_timeout=60, output_dir=out,
                     chunk_size=1, backend_options={"run_dir": out, **LOOPBACK}) as pmap:
        paths = pmap.compute()
    canceller.join()
    assert len(cancelled) == 1
    assert len(paths) == 12
    for x, path in enumerate(paths):
        with h5py.File(path, "r") as h5f:  # every result complete and right
            assert int(h5f["result_0"][0]) == x * x
    assert wait_until_empty(slurm_jobs) == []


def test_every_worker_job_cancelled_mid_run_is_submitted_again(in_tmp):
    """Issue 17: a cluster acme-core started brings its workers back (RestoresWorkers).

    dask-jobqueue forgets a cancelled job after ``lost-worker-timeout`` and never
    submits it again; without the executor's restore the run would wait for nothing.
    """
    import subprocess
    import threading

    import dask
    import distributed  # noqa: F401  # its config defaults first: set() would drop them on exit

    record = in_tmp / "jobs"
    record.mkdir()
    cancelled: list[str] = []

    def cancel_every_job_once_two_ran_calls() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            seen = [p.name for p in record.iterdir() if p.name != "none"]
            if len(seen) == 2:
                subprocess.run(["scancel", *seen], check=True)
                cancelled.extend(seen)
                return
            time.sleep(0.1)

    out = in_tmp / "run"
    canceller = threading.Thread(target=cancel_every_job_once_two_ran_calls)
    canceller.start()
    with dask.config.set({"distributed.deploy.lost-worker-timeout": "1s"}), \
            ParallelMap(sleepy_job_square, list(range(16)), str(record), backend="slurm",
                        n_workers=2, mem_per_worker="1GB", setup_timeout=120, output_dir=out,
                        chunk_size=1, backend_options={"run_dir": out, **LOOPBACK}) as pmap:
        paths = pmap.compute()
    canceller.join()
    assert len(cancelled) == 2
    assert read_results(paths) == [x * x for x in range(16)]
    # calls ran in jobs submitted after both first jobs were cancelled
    assert set(p.name for p in record.iterdir()) - set(cancelled) - {"none"}
    assert wait_until_empty(slurm_jobs) == []


def memory_hog(x):
    """Call 3 needs 1.6 GB: more than a 1 GB worker has, less than a 2 GB one."""
    import numpy as np

    if x == 3:
        block = np.ones(int(1.6e9 / 8))
        time.sleep(1)
        return float(block[0]) + x
    return float(x)


def test_memory_escalation_requeues_the_call_with_double_memory(in_tmp, caplog):
    """Issue 17: ``retry_memory_factor=2``: the call over its worker's memory runs again
    in a job with twice the memory; the other calls never leave their workers."""
    out = in_tmp / "run"
    with caplog.at_level(logging.INFO, logger="acme"), \
            ParallelMap(memory_hog, list(range(6)), backend="slurm", n_workers=1,
                        mem_per_worker="1GB", setup_timeout=60, chunk_size=1, output_dir=out,
                        retry_memory_factor=2,
                        backend_options={"run_dir": out, **LOOPBACK}) as pmap:
        paths = pmap.compute()
    assert read_results(paths) == [0, 1, 2, 4, 4, 5]
    assert "Call 3 exceeded its worker's memory; running it again" in caplog.text
    assert "Submitting a SLURM job with 1908MiB (instead of 1GB)" in caplog.text
    assert wait_until_empty(slurm_jobs) == []


def test_without_retry_memory_factor_the_call_fails_naming_its_memory(in_tmp):
    out = in_tmp / "run"
    with pytest.raises(ParallelMapError, match=r"1/4 calls .* failed \(task ids: 3\)") as err, \
            ParallelMap(memory_hog, list(range(4)), backend="slurm", n_workers=1,
                        mem_per_worker="1GB", setup_timeout=60, chunk_size=1, output_dir=out,
                        backend_options={"run_dir": out, **LOOPBACK}) as pmap:
        pmap.compute()
    assert "exceeded its memory limit" in str(err.value)
    assert wait_until_empty(slurm_jobs) == []


def test_gpus_on_a_partition_without_them_are_refused_before_anything(in_tmp):
    out = in_tmp / "run"
    with pytest.raises(ValueError, match=r"`resources\['gpus'\]` 1: partition debug has no GPUs"):
        ParallelMap(walkthrough, [2, 4], 4, backend="slurm", resources={"gpus": 1},
                    output_dir=out, backend_options=LOOPBACK)
    assert not out.exists()
    assert slurm_jobs() == []


SIGINT_DRIVER = '''
import sys, time
from acme_core import ParallelMap

def slow(x):
    time.sleep(0.5)
    return x + 1

if __name__ == "__main__":
    with ParallelMap(slow, list(range(40)), output_dir=sys.argv[1], backend="slurm",
                     n_workers=2, mem_per_worker="1GB", setup_timeout=60, chunk_size=1,
                     backend_options={"interface": "lo", "run_dir": sys.argv[1]}) as pmap:
        print("RESULTS", len(pmap.compute()), flush=True)
'''


def test_ctrl_c_cancels_the_jobs_this_run_started(tmp_path):
    """Issue 5: SIGINT to a driver on SLURM leaves no job in the queue and valid files."""
    import signal
    import subprocess
    import sys

    import h5py

    script = tmp_path / "driver.py"
    script.write_text(SIGINT_DRIVER)
    run_dir = tmp_path / "run"
    payload = run_dir / "slow_payload"
    proc = subprocess.Popen([sys.executable, str(script), str(run_dir)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if payload.is_dir() and len(list(payload.glob("*.h5"))) >= 3:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the run never got going")
        assert len(slurm_jobs()) == 2  # its two worker jobs are running
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0 and "RESULTS" not in out, (out, err[-3000:])
    assert "rerun with resume=True" in err
    assert wait_until_empty(slurm_jobs) == []  # every job this run started is gone
    finished = sorted(payload.glob("*.h5"))
    assert 3 <= len(finished) < 40
    for path in finished:
        with h5py.File(path, "r") as h5f:
            assert "result_0" in h5f
