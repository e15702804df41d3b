"""Pins of what ``acme_backends.jobqueue._djq_hooks`` relies on in dask-jobqueue and distributed.

Each test runs the installed dask-jobqueue's real job and cluster classes, with
stand-in scheduler commands (a Python one-liner instead of ``sbatch``) so no
scheduler is needed. When one fails after an upgrade, the module's docstring
says which hook moved.
"""

from __future__ import annotations

import asyncio
import shlex
import subprocess
import sys
import textwrap

import pytest

from acme_backends.jobqueue._djq_hooks import (
    JobRecord,
    closing_cluster_class,
    import_dask_jobqueue,
    recording_job_class,
)
from acme_backends.schedulers import JobState, SchedulerCLI

djq = import_dask_jobqueue("these tests")


def python_command(code: str) -> str:
    """A submit command that runs ``code`` (dask-jobqueue appends the job script's path)."""
    return shlex.join([sys.executable, "-c", code])


def job_class(submit: str) -> type:
    class StandIn(djq.SLURMCluster.job_cls):
        submit_command = python_command(submit)

    return StandIn


def make_job(cls: type):
    return cls(scheduler="tcp://127.0.0.1:1", name="w", cores=1, memory="1GB",
               python=sys.executable)


def test_start_submits_and_records_the_job_id():
    """``Job.start()`` runs ``submit_command`` + script and sets ``job_id`` (public hook)."""
    record = JobRecord()
    recording = recording_job_class(job_class("print('Submitted batch job 4242')"), record, None)
    assert recording.__name__ == "StandIn" and issubclass(recording, djq.SLURMCluster.job_cls)
    job = make_job(recording)
    asyncio.run(job.start())
    assert job.job_id == "4242"
    assert record.job_ids == ["4242"] and record.failures == []


def test_a_refused_submission_is_recorded_with_the_schedulers_words():
    record = JobRecord()
    refuse = "import sys; sys.exit('sbatch: error: Memory specification can not be satisfied')"
    job = make_job(recording_job_class(job_class(refuse), record, None))
    with pytest.raises(RuntimeError, match="Command exited with non-zero exit code"):
        asyncio.run(job.start())
    assert record.job_ids == []
    assert len(record.failures) == 1
    assert "Memory specification can not be satisfied" in record.failures[0]


def test_submit_dir_runs_the_submit_command_there(tmp_path):
    """``submit_command`` (a documented class attribute) carries the directory, no ``cwd``."""
    record = JobRecord()
    where = tmp_path / "job logs"  # a space: the command is quoted, not pasted
    where.mkdir()
    submit = "import sys; open('submitted-here', 'w').write(sys.argv[1]); print('77')"
    job = make_job(recording_job_class(job_class(submit), record, where))
    asyncio.run(job.start())
    assert record.job_ids == ["77"]
    script = (where / "submitted-here").read_text()
    assert script.endswith(".sh")  # the job script's path came last, as dask-jobqueue adds it


class Scheduler(SchedulerCLI):
    """Lists job 12 as still queued; records what it was asked to cancel."""

    title = "stand-in"
    cancelled: list[list[str]] = []

    @classmethod
    def job_states(cls, job_ids):
        return {j: JobState("PENDING", "Priority") for j in job_ids if j == "12"}

    @classmethod
    def cancel(cls, job_ids):
        cls.cancelled.append(list(job_ids))


def closing_cluster(record: JobRecord):
    cls = closing_cluster_class(djq.SLURMCluster, Scheduler, record)
    return cls(cores=1, memory="1GB", processes=1, n_workers=0, python=sys.executable,
               scheduler_options={"host": "127.0.0.1", "dashboard_address": ":0"})


def test_close_cancels_the_jobs_the_scheduler_still_lists():
    """``close()`` (public) is overridden, not distributed's private ``_close``."""
    Scheduler.cancelled = []
    record = JobRecord()
    record.job_ids = ["11", "12"]
    cluster = closing_cluster(record)
    assert type(cluster).__name__ == "SLURMCluster" and cluster.acme_job_record is record
    cluster.close()
    assert Scheduler.cancelled == [["12"]]  # 11 is gone already
    cluster.close()  # closing twice is harmless and asks again
    assert Scheduler.cancelled == [["12"], ["12"]]


def test_leaving_a_with_block_closes_through_close():
    Scheduler.cancelled = []
    record = JobRecord()
    record.job_ids = ["12"]
    with closing_cluster(record):
        pass
    assert Scheduler.cancelled == [["12"]]


def test_security_true_writes_the_worker_credentials_where_we_say(tmp_path):
    """dask-jobqueue's own ``security=True`` + ``shared_temp_directory``, no Security of ours."""
    import stat

    tls = tmp_path / ".tls"
    tls.mkdir(mode=0o700)
    cluster = djq.SLURMCluster(cores=1, memory="1GB", security=True,
                               shared_temp_directory=str(tls), python=sys.executable,
                               scheduler_options={"host": "127.0.0.1", "dashboard_address": ":0"})
    try:
        assert cluster.scheduler_address.startswith("tls://")
        keys = list(tls.iterdir())
        assert keys and all(stat.S_IMODE(k.stat().st_mode) == 0o600 for k in keys)
        assert str(tls) in cluster.job_script()
    finally:
        cluster.close()


def test_importing_dask_jobqueue_replaces_the_sigint_handler_and_we_put_it_back():
    """dask_jobqueue.runner replaces Ctrl-C's handler on import; the workaround undoes it.

    If the first assertion fails, dask-jobqueue stopped doing it and
    ``import_dask_jobqueue`` can become a plain import.
    """
    code = textwrap.dedent("""
        import signal, sys
        if sys.argv[1] == "plain":
            import dask_jobqueue
        else:
            from acme_backends.jobqueue._djq_hooks import import_dask_jobqueue
            import_dask_jobqueue("test")
        handler = signal.getsignal(signal.SIGINT)
        print(getattr(handler, "__module__", ""), handler is signal.default_int_handler)
    """)
    plain = subprocess.run([sys.executable, "-c", code, "plain"], capture_output=True,
                           text=True, check=True).stdout.split()
    assert plain == ["dask_jobqueue.runner", "False"]
    ours = subprocess.run([sys.executable, "-c", code, "ours"], capture_output=True,
                          text=True, check=True).stdout.split()
    assert ours[-1] == "True"
