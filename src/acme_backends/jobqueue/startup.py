"""Starting a job-queue cluster: submit, wait for the workers, and say why some did not come.

:func:`start` builds the dask-jobqueue cluster from :class:`~.settings.JobQueueSettings`,
submits the jobs and waits up to ``timeout`` seconds (:func:`wait_for_workers`).
When fewer workers came up, :func:`situation` asks the scheduler why (its pending
reasons in words, :data:`PENDING_REASONS`), and the start-up goes on with the
workers that are up, fails, or asks the user (:func:`ask`) what to do.
"""

from __future__ import annotations

import getpass
import logging
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from acme_backends.dask.client import current_client
from acme_backends.dask.scheduling import SCHEDULER_OPTIONS, one_task_per_thread
from acme_backends.jobqueue._djq_hooks import (
    JobRecord,
    close_quietly,
    closing_cluster_class,
    cluster_classes,
    recording_job_class,
)
from acme_backends.jobqueue.kind import JobQueueKind
from acme_backends.jobqueue.settings import JobQueueSettings
from acme_backends.schedulers.base import SchedulerCLI
from acme_core.errors import ArgumentTypeError, SchedulerError, StartupTimeoutError
from acme_core.prompts import ask

__all__ = [
    "KEEP_WAITING",
    "PENDING_REASONS",
    "WORKER_HTTP_ADDRESS",
    "ask",
    "cluster_keywords",
    "default_log_directory",
    "describe_reason",
    "reusable_client",
    "situation",
    "start",
    "wait_for_workers",
]

log = logging.getLogger("acme")

#: Seconds "[k]eep waiting" adds (ACME's value).
KEEP_WAITING = 60

#: Scheduler reasons for a pending job, in words a user understands (SLURM's names).
PENDING_REASONS = {
    "Resources": "waiting for free resources (cores or memory are in use by other jobs)",
    "Priority": "other jobs have higher priority",
    "MaxMemPerLimit": "the job asks for more memory than the partition allows; it will never start",
    "PartitionConfig": "the request does not fit the partition's limits; it will never start",
    "PartitionNodeLimit": "the request does not fit the partition's node limits",
    "PartitionTimeLimit": "the requested walltime is above the partition's limit",
    "ReqNodeNotAvail": "the requested nodes are not available (down, drained or reserved)",
    "QOSMaxMemoryPerJob": "the job asks for more memory than your QOS allows",
    "QOSMaxCpuPerJobLimit": "the job asks for more cores than your QOS allows",
    "AssocGrpCpuLimit": "your account's CPU limit is reached",
    "AssocMaxJobsLimit": "your account's job limit is reached",
    "JobHeldUser": "the job is held (scontrol release / qrls releases it)",
    "JobHeldAdmin": "the job is held by an administrator",
    "BeginTime": "the job's start time is in the future",
    "Dependency": "the job waits for another job",
}


def describe_reason(reason: str) -> str:
    """``"(Resources)"`` -> ``"Resources: waiting for free resources (...)"``.

    A reason with details (``"ReqNodeNotAvail, UnavailableNodes:node[01-04]"``)
    keeps them after the words.
    """
    reason = reason.strip("()")
    words = PENDING_REASONS.get(reason.split(",")[0].strip())
    return f"{reason}: {words}" if words else reason or "no reason given"


def default_log_directory(kind_name: str) -> Path:
    """Where job logs go when neither a run directory nor ``log_directory`` is given.

    Batch jobs write their logs on the compute node, so the directory must be on a
    filesystem the nodes share: the home directory is, on every cluster we know
    (the current directory often is too, but must not fill up with job logs).
    """
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    return Path.home() / ".acme" / "job-logs" / f"{getpass.getuser()}_{kind_name}_{stamp}"


def _log_directory(kind: JobQueueKind, settings: JobQueueSettings) -> Path:
    if settings.log_directory is not None:
        path = settings.log_directory.expanduser()
    elif settings.run_dir is not None:
        path = settings.run_dir / "job-logs"
    else:
        path = default_log_directory(kind.name)
    path = path.absolute()
    path.mkdir(parents=True, exist_ok=True)
    return path


def reusable_client(kind: JobQueueKind) -> Any:
    """A running client on a cluster of ``kind``'s class with workers (ACME reuses those), or None."""
    client = current_client()
    if client is None or client.cluster is None:
        return None
    cluster_cls, _ = cluster_classes(kind)
    if not isinstance(client.cluster, cluster_cls):
        return None
    try:
        n = len(client.scheduler_info(n_workers=-1).get("workers", {}))
    except Exception:  # a client whose scheduler is gone
        return None
    if n == 0:
        return None
    log.info("Found existing parallel computing client %s with %d workers. Not starting a new "
             "cluster.", client, n)
    return client


#: where a job-queue worker's HTTP server listens (``worker_extra_args`` may say otherwise)
WORKER_HTTP_ADDRESS = "127.0.0.1:0"


def cluster_keywords(kind: JobQueueKind, settings: JobQueueSettings, log_dir: Path,
                     job_cls: type[Any]) -> dict[str, Any]:
    """The keywords of dask-jobqueue's cluster class for ``settings``."""
    import dask

    extra = dict(settings.extra)
    if settings.security is True:
        # dask-jobqueue makes temporary credentials and writes the workers' copy to
        # shared_temp_directory, which the jobs must read: a directory only we can enter
        tls_dir = log_dir / ".tls"
        tls_dir.mkdir(mode=0o700, exist_ok=True)
        tls_dir.chmod(0o700)
        extra.setdefault("shared_temp_directory", str(tls_dir))
    scheduler_options = dict(dask.config.get(f"jobqueue.{kind.config_name}.scheduler-options",
                                             {}) or {})
    scheduler_options.setdefault("dashboard_address", settings.dashboard_address)
    # as on local clusters (dask.scheduling): lost tasks retried once, frozen workers
    # given up after a minute
    for key, value in SCHEDULER_OPTIONS.items():
        scheduler_options.setdefault(key, value)
    scheduler_options.update(extra.pop("scheduler_options", None) or {})
    if settings.host is not None:
        scheduler_options["host"] = settings.host
    worker_args = list(extra.pop("worker_extra_args", None) or dask.config.get(
        f"jobqueue.{kind.config_name}.worker-extra-args", None) or [])
    if not any(str(arg).startswith("--dashboard-address") for arg in worker_args):
        # a worker's HTTP server (/health, /metrics, /sitemap.json) would answer anybody
        # who reaches its node, without TLS: this node only, like the scheduler's dashboard
        worker_args += ["--dashboard-address", WORKER_HTTP_ADDRESS]
    if settings.gpus and kind.cli.gpu_in_select and kind.cli.gpu_option:
        # dask-jobqueue's own select statement (PBSJob) with the GPUs in it
        extra.setdefault("resource_spec", f"select=1:ncpus={settings.cores}:mem="
                         f"{settings.memory_mib}mb:{kind.cli.gpu_option.format(n=settings.gpus)}")
    skip = list(extra.pop("job_directives_skip", None) or [])
    if settings.walltime is None and kind.walltime_directive:
        skip.append(kind.walltime_directive)  # the partition's own limit applies (ACME)
    optional = {"queue": settings.queue, "walltime": settings.walltime,
                "interface": settings.interface,
                "security": settings.security if settings.security is not False else None}
    if kind.exact_memory_keyword:
        optional[kind.exact_memory_keyword] = f"{settings.memory_mib}M"
    return {
        "cores": settings.cores, "memory": settings.memory, "processes": settings.processes,
        "log_directory": str(log_dir), "job_extra_directives": list(settings.job_extra),
        "job_directives_skip": skip, "scheduler_options": scheduler_options,
        "worker_extra_args": worker_args,
        "python": sys.executable, "job_cls": job_cls,
        **{key: value for key, value in optional.items() if value is not None},
        **extra,
    }


def start(kind: JobQueueKind, settings: JobQueueSettings, *, start_client: bool) -> tuple[Any, Any]:
    """Submit the jobs and wait for the workers; (cluster, client or None).

    Whatever fails after the cluster object exists closes it again, which
    cancels every job it submitted.
    """
    cluster_cls, job_cls = cluster_classes(kind)
    log_dir = _log_directory(kind, settings)
    record = JobRecord()
    submit_dir = log_dir if kind.submit_in_log_directory else None
    kwargs = cluster_keywords(kind, settings, log_dir,
                              recording_job_class(job_cls, record, submit_dir))
    try:
        with one_task_per_thread():
            cluster = closing_cluster_class(cluster_cls, kind.cli, record)(**kwargs)
    except TypeError as exc:  # a keyword dask-jobqueue accepted by name but not by value
        raise ArgumentTypeError(f"{getattr(kind, '__name__', kind.name)}: {exc}") from exc
    try:
        log.info("Submitting %d %s job(s) (%s %s, %s, %d core(s) each); job logs in %s",
                 settings.n_workers, kind.cli.title, kind.queue_word,
                 settings.queue or "(default)", settings.memory, settings.cores, log_dir)
        cluster.scale(settings.n_workers * settings.processes)
        wait_for_workers(kind, cluster, record, settings, log_dir)
        client = None
        if start_client:
            from distributed import Client

            client = Client(cluster)  # type: ignore[no-untyped-call]  # distributed is untyped
            log.info("Parallel computing client ready, dashboard accessible at %s",
                     client.dashboard_link)
        return cluster, client
    except BaseException:
        close_quietly(cluster)
        raise


def wait_for_workers(kind: JobQueueKind, cluster: Any, record: JobRecord,
                     settings: JobQueueSettings, log_dir: Path) -> None:
    """Wait until every worker is up, or decide at the deadline (see :func:`_at_deadline`).

    Fails early when every submission failed or every job already left the queue
    without its worker connecting (waiting for the timeout would tell nothing).
    """
    name = f"<{kind.name}_cluster_setup>"
    wanted = settings.n_workers * settings.processes
    deadline = time.monotonic() + settings.timeout
    next_queue_check = time.monotonic() + 2
    shown = -1
    while True:
        up = len(cluster.scheduler_info.get("workers", {}))
        if up != shown:
            log.debug("%s %s workers ready: %d/%d", name, kind.cli.title, up, wanted)
            shown = up
        if up >= wanted:
            log.info("%s %d %s workers ready", name, up, kind.cli.title)
            return
        if record.failures and len(record.failures) >= settings.n_workers:
            raise SchedulerError(f"{name} every {kind.cli.title} job submission failed; the "
                                 f"first error was:\n{record.failures[0]}")
        if up == 0 and time.monotonic() >= next_queue_check:
            next_queue_check = time.monotonic() + 2
            if (len(record.job_ids) >= settings.n_workers
                    and not _still_queued(kind.cli, record.job_ids)):
                raise SchedulerError(
                    f"{name} every {kind.cli.title} job ended before its dask worker connected. "
                    f"{situation(kind.cli, record, up, wanted, log_dir)}")
        if time.monotonic() >= deadline:
            more = _at_deadline(kind, record, settings, up, wanted, log_dir)
            if more is None:
                return
            deadline = time.monotonic() + more
        time.sleep(0.25)


def _at_deadline(kind: JobQueueKind, record: JobRecord, settings: JobQueueSettings, up: int,
                 wanted: int, log_dir: Path) -> float | None:
    """At the deadline: seconds to keep waiting, or None to go on with the ``up`` workers.

    Goes on when at least ``n_workers_startup`` (and one) workers are up, else
    raises :class:`~acme_core.errors.StartupTimeoutError` (a ``TimeoutError``); with ``interactive``, the user decides instead.
    """
    name = f"<{kind.name}_cluster_setup>"
    report = situation(kind.cli, record, up, wanted, log_dir)
    enough = up >= max(1, settings.n_workers_startup)
    if settings.interactive:
        if enough:
            question = (f"{name} {report}\nDo you want to [k]eep waiting for {KEEP_WAITING}s, "
                        f"[a]bort or [c]ontinue with {up} workers?")
            answer = ask(question, "kac", "c", settings.interactive_wait)
        else:
            question = f"{name} {report}\nDo you want to [k]eep waiting for {KEEP_WAITING}s or [a]bort?"
            answer = ask(question, "ka", "a", settings.interactive_wait)
        if answer == "k":
            return KEEP_WAITING
        if answer == "c":
            log.warning("%s continuing with %d of %d workers", name, up, wanted)
            return None
        raise StartupTimeoutError(f"{name} aborted by the user. {report}")
    if enough:
        log.warning("%s %s Continuing with the %d workers that are up; jobs that start later "
                    "join the run.", name, report, up)
        return None
    raise StartupTimeoutError(f"{name} {kind.cli.title} workers could not be started within given "
                       f"time-out interval of {settings.timeout:g} seconds. {report}")


def situation(cli: type[SchedulerCLI], record: JobRecord, up: int, wanted: int,
              log_dir: Path) -> str:
    """One paragraph: how many workers are up and why the others are not."""
    parts = [f"Only {up} of {wanted} workers came up."]
    try:
        states = cli.job_states(record.job_ids)
    except SchedulerError as exc:
        states = {}
        parts.append(f"(Could not ask the scheduler about the jobs: {exc})")
    pending: dict[str, list[str]] = {}
    for job, (state, reason) in states.items():
        if state != "RUNNING":
            pending.setdefault(f"{state.lower()}, {describe_reason(reason)}", []).append(job)
    if pending:
        parts.append("Jobs not running: " + "; ".join(
            f"{', '.join(jobs)} ({why})" for why, jobs in pending.items()) + ".")
    running = [j for j, s in states.items() if s.state == "RUNNING"]
    gone = [j for j in record.job_ids if j not in states]
    if len(running) > up:
        parts.append(f"Jobs {', '.join(running)} are running but their workers have not "
                     f"connected yet (see the job logs in {log_dir}).")
    if gone:
        parts.append(f"Jobs {', '.join(gone)} already ended: their workers died or could not "
                     f"connect; see the job logs in {log_dir}.")
    if record.failures:
        parts.append(f"{len(record.failures)} submission(s) failed: {record.failures[0]}")
    return " ".join(parts)


def _still_queued(cli: type[SchedulerCLI], job_ids: Sequence[str]) -> bool:
    """Whether the scheduler still lists any of ``job_ids`` (True when it cannot tell)."""
    try:
        return bool(cli.job_states(job_ids))
    except SchedulerError:
        return True
