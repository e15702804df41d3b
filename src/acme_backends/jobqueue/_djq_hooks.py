"""Where acme-core adapts dask-jobqueue: the only module that subclasses or patches it.

Everything here goes through dask-jobqueue's and distributed's public surface,
except one workaround (the SIGINT handler, below) for which none exists:

- job ids and submission errors are recorded by overriding ``Job.start()``
  (distributed's ``ProcessInterface.start``, which dask-jobqueue implements by
  submitting the job and setting ``job_id``); earlier versions overrode the
  private ``_submit_job`` and called ``_call`` and ``_job_id_from_submit_output``;
- submitting from another directory sets the job class's ``submit_command``,
  the attribute dask-jobqueue documents for subclasses, instead of passing
  ``cwd`` to the private ``_call``;
- cancelling every job at the end overrides the cluster's public ``close()``
  instead of distributed's private ``_close``;
- TLS credentials come from dask-jobqueue's own ``security=True`` with
  ``shared_temp_directory`` (the directory is ours, mode 0700) instead of a
  ``Security.temporary()`` of our own.

``tests/backends/test_djq_hooks.py`` pins each of these to the installed
dask-jobqueue: it runs the real job and cluster classes with stand-in
scheduler commands.
"""

from __future__ import annotations

import inspect
import logging
import shlex
import signal
import threading
from collections.abc import Awaitable
from pathlib import Path
from types import ModuleType
from typing import Any

from acme_backends.jobqueue.kind import JobQueueKind
from acme_backends.schedulers.base import SchedulerCLI
from acme_core.errors import PluginError, SchedulerError, require

__all__ = [
    "JobRecord",
    "close_quietly",
    "closing_cluster_class",
    "cluster_classes",
    "import_dask_jobqueue",
    "recording_job_class",
]

log = logging.getLogger("acme")


def import_dask_jobqueue(what: str) -> ModuleType:
    """Import dask_jobqueue without its side effect on Ctrl-C.

    Importing ``dask_jobqueue`` (its ``runner`` module) replaces the process's
    SIGINT handler with a silent ``sys.exit()``: Ctrl-C would then end a user's
    script with exit status 0, no ``KeyboardInterrupt`` and no word about
    resuming. There is no option to prevent it, so the handler the process had
    before (Python's own, normally) is put back. Only a handler from
    ``dask_jobqueue.runner`` is replaced, so a user's own handler stays.
    """
    on_main_thread = threading.current_thread() is threading.main_thread()
    before = signal.getsignal(signal.SIGINT)
    djq = require("dask_jobqueue", "jobqueue", what)
    now = signal.getsignal(signal.SIGINT)
    if on_main_thread and getattr(now, "__module__", "") == "dask_jobqueue.runner":
        ours = before if getattr(before, "__module__", "") != "dask_jobqueue.runner" else None
        signal.signal(signal.SIGINT, ours or signal.default_int_handler)
    return djq


def cluster_classes(kind: JobQueueKind) -> tuple[type[Any], type[Any]]:
    """The dask-jobqueue cluster class of ``kind`` and its job class.

    Raises
    ------
    PluginError
        ``kind`` names no dask-jobqueue cluster class: a mistake of the backend's
        author, not of its user, and the message says so.
    """
    djq = import_dask_jobqueue(f"The {kind.name!r} backend")
    wanted = kind.cluster_class
    cls = getattr(djq, wanted, None) if isinstance(wanted, str) and wanted else wanted
    job_cls = getattr(cls, "job_cls", None)
    if not (isinstance(cls, type) and issubclass(cls, djq.JobQueueCluster)
            and isinstance(job_cls, type)):
        owner = getattr(kind, "__name__", type(kind).__name__)
        raise PluginError(
            f"{owner} (backend {kind.name!r}) sets no usable `cluster_class` "
            f"({wanted!r}). To its author: set the class attribute `cluster_class` to a "
            "dask_jobqueue cluster class or its name, e.g. cluster_class = 'SLURMCluster'.")
    return cls, job_cls


class JobRecord:
    """Job ids submitted for one cluster, and submission errors (dask-jobqueue only logs them)."""

    def __init__(self) -> None:
        self.job_ids: list[str] = []
        self.failures: list[str] = []


def _submit_from(directory: Path, submit_command: str) -> str:
    """``submit_command`` run from ``directory`` (dask-jobqueue appends the script's path)."""
    return shlex.join(["sh", "-c", 'cd "$0" && exec "$@"', str(directory)]) + " " + submit_command


def recording_job_class(job_cls: type[Any], record: JobRecord,
                        submit_dir: Path | None) -> type[Any]:
    """A subclass of dask-jobqueue's job class that records job ids and submission errors.

    ``submit_dir``: run the submit command there, for schedulers that put job output
    into the directory they were submitted from (Slurm's PBS wrappers do).
    """

    async def start(self: Any) -> None:
        # dask-jobqueue's start() submits the job and sets job_id; a failed submission
        # raises with the scheduler's message, which dask-jobqueue would only log
        try:
            await super(recording, self).start()
        except Exception as exc:
            record.failures.append(str(exc).strip())
            raise
        finally:
            if getattr(self, "job_id", None) and self.job_id not in record.job_ids:
                record.job_ids.append(self.job_id)

    namespace: dict[str, Any] = {"start": start, "__doc__": job_cls.__doc__}
    if submit_dir is not None:
        namespace["submit_command"] = _submit_from(submit_dir, job_cls.submit_command)
    recording: type[Any] = type(job_cls.__name__, (job_cls,), namespace)
    return recording


def closing_cluster_class(cluster_cls: type[Any], cli: type[SchedulerCLI],
                          record: JobRecord) -> type[Any]:
    """A subclass of the cluster class whose ``close()`` also cancels every job it submitted.

    dask-jobqueue cancels the jobs it still tracks; a job whose worker died or
    whose start-up raised can escape that, and would otherwise wait in the queue
    for hours. ``cluster_cleanup``, the executor's shutdown, ``with cluster:``
    and distributed's exit handler all go through ``close()``.
    """

    def acme_cancel_jobs(self: Any) -> list[str]:
        """Cancel the jobs of this cluster that the scheduler still lists."""
        try:
            left = list(cli.job_states(record.job_ids))
            if left:
                cli.cancel(left)
                log.debug("cancelled leftover jobs %s", left)
            return left
        except SchedulerError as exc:
            log.warning("Could not cancel jobs %s: %s", record.job_ids, exc)
            return []

    def close(self: Any, timeout: float | None = None) -> Any:
        try:
            done = super(closing, self).close(timeout)
        except BaseException:
            self.acme_cancel_jobs()
            raise
        if inspect.isawaitable(done):  # an asynchronous cluster: cancel once it closed
            return _then(done, self.acme_cancel_jobs)
        self.acme_cancel_jobs()
        return done

    closing: type[Any] = type(cluster_cls.__name__, (cluster_cls,), {
        "acme_job_record": record, "acme_cancel_jobs": acme_cancel_jobs, "close": close,
        "__doc__": cluster_cls.__doc__})
    return closing


async def _then(awaitable: Awaitable[Any], after: Any) -> Any:
    try:
        return await awaitable
    finally:
        after()


def close_quietly(cluster: Any) -> None:
    """Close a cluster whose start failed; the start-up error is the one to report."""
    try:
        cluster.close()
    except Exception as exc:
        log.debug("closing the cluster after a failed start: %s", exc)
        cancel = getattr(cluster, "acme_cancel_jobs", None)
        if callable(cancel):
            cancel()
