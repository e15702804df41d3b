"""What the job-queue modules need to know about a backend class: its class attributes.

:class:`~acme_backends.jobqueue.executor.JobQueueExecutor` and its declarative
subclasses satisfy :class:`JobQueueKind` as classes; the settings, the start-up
and the dask-jobqueue adapters take the class itself, so they never import the
executor (and a site plugin's own subclass works everywhere).
"""

from __future__ import annotations

from typing import Protocol

from acme_backends.schedulers.base import SchedulerCLI
from acme_core.errors import PluginError

__all__ = ["JobQueueKind", "check_kind"]


class JobQueueKind(Protocol):
    """The class attributes of a job-queue backend (see ``JobQueueExecutor``), read-only."""

    @property
    def name(self) -> str:
        """Registry name, e.g. ``"slurm"``."""

    @property
    def cluster_class(self) -> str | type:
        """The dask_jobqueue cluster class, or its name in dask_jobqueue (``"SLURMCluster"``)."""

    @property
    def config_name(self) -> str:
        """Section of dask's jobqueue config (``jobqueue.<config_name>.*``)."""

    @property
    def cli(self) -> type[SchedulerCLI]:
        """The scheduler's command-line tools."""

    @property
    def queue_word(self) -> str:
        """The scheduler's word for a queue, in messages (``"partition"`` on SLURM)."""

    @property
    def walltime_directive(self) -> str | None:
        """Start of the job-script line dask-jobqueue writes for its default walltime."""

    @property
    def submit_in_log_directory(self) -> bool:
        """Submit from the log directory (schedulers that write job output where qsub ran)."""

    @property
    def exact_memory_keyword(self) -> str | None:
        """Job-class keyword that takes the memory request verbatim, to the MiB."""

    @property
    def max_auto_workers(self) -> int:
        """Upper bound for ``n_workers="auto"``."""


def check_kind(kind: JobQueueKind) -> None:
    """Refuse a job-queue backend class whose author left out a required class attribute.

    Called before anything else, so the mistake shows as itself and not as a
    failure deep inside dask-jobqueue or a scheduler wrapper.

    Raises
    ------
    PluginError
        ``cluster_class`` is empty, or ``cli`` is not a scheduler wrapper of its own.
    """
    owner = getattr(kind, "__name__", type(kind).__name__)
    missing = []
    if not kind.cluster_class:
        missing.append("`cluster_class` (a dask_jobqueue cluster class or its name, "
                       "e.g. 'SLURMCluster')")
    cli = kind.cli
    if not (isinstance(cli, type) and issubclass(cli, SchedulerCLI) and cli is not SchedulerCLI):
        missing.append("`cli` (a SchedulerCLI subclass, e.g. "
                       "acme_backends.schedulers.slurm.SlurmCLI)")
    if missing:
        raise PluginError(
            f"{owner} (backend {kind.name!r}) is a JobQueueExecutor subclass without "
            f"{' and '.join(missing)}. To the author of {owner}: set these class attributes, "
            "as SlurmExecutor does.")
