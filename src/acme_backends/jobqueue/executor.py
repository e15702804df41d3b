"""The job-queue backends: dask workers as batch jobs on SLURM, PBS and SGE (dask-jobqueue).

:class:`JobQueueExecutor` checks every keyword and the request against the
scheduler (:func:`~acme_backends.jobqueue.settings.resolve`), then attaches to a
running cluster of its kind or starts one (:func:`~acme_backends.jobqueue.startup.start`).
:class:`SlurmExecutor`, :class:`PbsExecutor` and :class:`SgeExecutor` only set
class attributes, as dask-jobqueue's cluster classes do; a site plugin adds a
scheduler (or a preset) the same way.

dask-jobqueue is imported only when a cluster starts, so listing the backends
never needs it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any, ClassVar

from acme_backends.dask.client import DaskClientExecutor
from acme_backends.dask.revive import WorkerReviver
from acme_backends.jobqueue import _docs
from acme_backends.jobqueue._djq_hooks import cluster_classes
from acme_backends.jobqueue.kind import check_kind
from acme_backends.jobqueue.settings import (
    INTERACTIVE_WAIT,
    JobQueueRequest,
    JobQueueSettings,
    check_jobqueue_keywords,
    check_scalars,
    more_memory,
    resolve,
)
from acme_backends.jobqueue.startup import reusable_client, start
from acme_backends.schedulers.base import SchedulerCLI
from acme_backends.schedulers.pbs import PbsCLI
from acme_backends.schedulers.sge import SgeCLI
from acme_backends.schedulers.slurm import SlurmCLI

__all__ = ["JobQueueExecutor", "PbsExecutor", "SgeExecutor", "SlurmExecutor"]

log = logging.getLogger("acme")

_DOC = """Start dask workers as {jobs} ({cluster}) and run tasks on them.

    Every keyword is checked, and the request against what {title} reports,
    before anything is submitted. The first five are ACME's cluster keywords,
    which ``ParallelMap`` passes on; ``run_dir`` and ``n_calls`` come from
    ``ParallelMap`` too. Unless ``reuse`` finds a running cluster of this kind,
    the executor starts one (TLS, dashboard on localhost) and stops it, with
    every job it submitted, at ``shutdown()``.

    Parameters
    ----------
    {parameters}
    """


class JobQueueExecutor(DaskClientExecutor):
    __doc__ = _DOC.format(parameters=_docs.parameters(_docs.BACKEND, "any"),
                          **_docs.WORDS["any"])

    name: ClassVar[str] = "jobqueue"
    owns_resources = True
    #: the cluster start logs its dashboard link itself
    announces_dashboard: ClassVar[bool] = True
    #: the dask_jobqueue cluster class, or its name ("SLURMCluster"); a subclass must set it
    cluster_class: ClassVar[str | type] = ""
    #: section of dask's jobqueue config ("jobqueue.<config_name>.*")
    config_name: ClassVar[str] = ""
    #: the scheduler's command-line tools
    cli: ClassVar[type[SchedulerCLI]] = SchedulerCLI
    #: the scheduler's word for a partition, in messages
    queue_word: ClassVar[str] = "queue"
    #: start of the job-script line dask-jobqueue writes for the default walltime
    walltime_directive: ClassVar[str | None] = None
    #: submit from the log directory (for schedulers writing job output to the submit dir)
    submit_in_log_directory: ClassVar[bool] = False
    #: job-class keyword taking the memory request verbatim; set, the request is exact to the
    #: MiB (SLURMJob rounds ``memory`` above 1 GiB up to whole GiB: 7900 MiB became 8G, more
    #: than an 8000 MB partition allows, so the job never started)
    exact_memory_keyword: ClassVar[str | None] = None
    #: upper bound for n_workers="auto"
    max_auto_workers: ClassVar[int] = 100

    def __init__(self, partition: str = "auto", n_workers: int | str = "auto",
                 mem_per_worker: str = "auto", setup_timeout: float = 60,
                 setup_interactive: bool = False, *, cores_per_worker: int | None = None,
                 queue: str | None = None, timeout: float | None = None,
                 interactive: bool | None = None, interactive_wait: float = INTERACTIVE_WAIT,
                 n_workers_startup: int = 1, processes_per_worker: int = 1,
                 job_extra: list[str] | None = None, walltime: str | None = None,
                 log_directory: str | os.PathLike[str] | None = None,
                 run_dir: str | os.PathLike[str] | None = None, security: Any = True,
                 host: str | None = None, interface: str | None = None,
                 dashboard_address: str = "127.0.0.1:0", check_resources: bool = True,
                 reuse: bool = True, n_calls: int | None = None, mem_cushion: float = 0,
                 resources: dict[str, Any] | None = None,
                 retry_memory_factor: float | None = None,
                 **jobqueue_options: Any) -> None:
        self.settings = resolve(
            type(self), partition=partition, n_workers=n_workers, mem_per_worker=mem_per_worker,
            setup_timeout=setup_timeout, setup_interactive=setup_interactive,
            cores_per_worker=cores_per_worker, queue=queue, timeout=timeout,
            interactive=interactive, interactive_wait=interactive_wait,
            n_workers_startup=n_workers_startup, processes_per_worker=processes_per_worker,
            job_extra=job_extra, walltime=walltime, log_directory=log_directory,
            run_dir=run_dir, security=security, host=host, interface=interface,
            dashboard_address=dashboard_address, check_resources=check_resources, reuse=reuse,
            n_calls=n_calls, mem_cushion=mem_cushion, resources=resources,
            retry_memory_factor=retry_memory_factor, **jobqueue_options)
        #: memory step -> the executor with more memory per worker (retry_memory_factor)
        self._bigger: dict[int, DaskClientExecutor | None] = {}
        self._reviver = WorkerReviver("worker job(s)")
        existing = reusable_client(type(self)) if self.settings.reuse else None
        if existing is not None:
            super().__init__(existing)
            self.owns_resources = False  # the user's cluster: shutdown() leaves it running
            self.cluster: Any = existing.cluster
            return
        self.cluster, client = start(type(self), self.settings, start_client=True)
        super().__init__(client)

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        """Refuse what ``cls(**options)`` would refuse, before anything is submitted.

        ParallelMap calls this at construction, before the run directory exists:
        a class attribute the backend's author forgot, a missing dask-jobqueue,
        unknown or reserved keywords and wrong values fail first; then the request
        is checked against the scheduler (partition, memory, cores, GPUs), unless
        ``check_resources=False``.
        """
        check_kind(cls)
        cluster_classes(cls)
        request = JobQueueRequest.from_keywords(options)
        check_jobqueue_keywords(cls, request.extra)
        check_scalars(cls, request)
        resolve(cls, **options)

    # -- optional capabilities (acme_core.executor) -------------------------
    def worker_count(self) -> int:
        """How many workers are up now, after resubmitting jobs the cluster gave up on."""
        self.restore_workers()
        return super().worker_count()

    def restore_workers(self) -> int:
        """RestoresWorkers: submit again the worker jobs a cluster we started lost for good.

        A job cancelled, out of walltime or on a failed node is forgotten by
        dask-jobqueue after ``distributed.deploy.lost-worker-timeout`` and never
        submitted again (:mod:`acme_backends.dask.revive`).
        """
        return self._reviver(self.cluster) if self.owns_resources else 0

    def memory_exceeded(self, exc: BaseException) -> bool:
        """EscalatesMemory: whether the task's last worker (here or a bigger one) hit its limit."""
        if self.client is not None and super().memory_exceeded(exc):
            return True
        return any(b is not None and b.client is not None and b.memory_exceeded(exc)
                   for b in self._bigger.values())

    def with_more_memory(self, level: int) -> DaskClientExecutor | None:
        """EscalatesMemory: a one-job cluster with ``retry_memory_factor ** level`` times the
        memory per worker, up to the largest node of the queue (None: no more to have)."""
        if level not in self._bigger:
            settings = more_memory(type(self), self.settings, level)
            self._bigger[level] = None if settings is None else self._start_bigger(settings)
        return self._bigger[level]

    def _start_bigger(self, settings: JobQueueSettings) -> DaskClientExecutor:
        log.warning("Submitting a %s job with %s (instead of %s) for calls that exceeded their "
                    "worker's memory", self.cli.title, settings.memory, self.settings.memory)
        _, client = start(type(self), settings, start_client=True)
        bigger = DaskClientExecutor(client)
        bigger.owns_resources = True  # shutdown() stops its cluster and cancels its job
        return bigger

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop what this executor started (the bigger-memory clusters too); safe twice."""
        bigger, self._bigger = self._bigger, {}
        for executor in bigger.values():
            if executor is not None:
                executor.shutdown(wait)
        super().shutdown(wait, cancel_futures=cancel_futures)

    @classmethod
    def planned_workers(cls, options: Mapping[str, Any]) -> int | None:
        """``n_workers`` when it is a number (``"auto"`` depends on the run: None)."""
        n = options.get("n_workers")
        return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else None


class SlurmExecutor(JobQueueExecutor):
    __doc__ = _DOC.format(parameters=_docs.parameters(_docs.BACKEND, "slurm"),
                          **_docs.WORDS["slurm"])

    name = "slurm"
    cluster_class = "SLURMCluster"
    config_name = "slurm"
    cli = SlurmCLI
    queue_word = "partition"
    walltime_directive = "#SBATCH -t "
    exact_memory_keyword = "job_mem"


class PbsExecutor(JobQueueExecutor):
    __doc__ = _DOC.format(parameters=_docs.parameters(_docs.BACKEND, "pbs"),
                          **_docs.WORDS["pbs"])

    name = "pbs"
    cluster_class = "PBSCluster"
    config_name = "pbs"
    cli = PbsCLI
    queue_word = "queue"
    walltime_directive = "#PBS -l walltime="
    # PBS writes job output where qsub ran unless -o/-e are honoured (Torque wrappers ignore them)
    submit_in_log_directory = True


class SgeExecutor(JobQueueExecutor):
    __doc__ = _DOC.format(parameters=_docs.parameters(_docs.BACKEND, "sge"),
                          **_docs.WORDS["sge"])

    name = "sge"
    cluster_class = "SGECluster"
    config_name = "sge"
    cli = SgeCLI
    queue_word = "queue"
    walltime_directive = "#$ -l h_rt="
