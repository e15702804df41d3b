"""``slurm_cluster_setup``, ``pbs_cluster_setup``, ``sge_cluster_setup``: ACME's cluster starters.

Each starts dask workers as batch jobs through the matching job-queue backend
class and returns a client (or the cluster, with ``start_client=False``). They
keep ACME's signatures (its positional order, its names ``n_cores``, ``timeout``,
``interactive``); :func:`~acme_backends.jobqueue.settings.unalias` maps those
names once, for the setups and the backends alike. ``acme_core`` offers them
under the same names, resolved through the plugin registry. Stop what they
started with :func:`acme_core.cluster_cleanup`, which cancels every job of the cluster.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from acme_backends import _checks
from acme_backends.jobqueue import _docs
from acme_backends.jobqueue.executor import PbsExecutor, SgeExecutor, SlurmExecutor
from acme_backends.jobqueue.kind import JobQueueKind
from acme_backends.jobqueue.settings import INTERACTIVE_WAIT, resolve
from acme_backends.jobqueue.startup import reusable_client, start
from acme_core.prompts import can_ask

__all__ = ["pbs_cluster_setup", "sge_cluster_setup", "slurm_cluster_setup"]

_DOC = """Start dask workers as {jobs} and return a client connected to them.

    Every keyword is checked, and the request against what {title} reports,
    before anything is submitted. A running client on a {title} cluster with
    workers is returned instead when ``reuse`` is on (ACME's behaviour).

    Parameters
    ----------
    {parameters}

    Returns
    -------
    distributed.Client or {cluster}
    """


def _setup(kind: JobQueueKind, *, interactive: bool, start_client: bool,
           **keywords: Any) -> Any:
    """Check, resolve, then reuse a running client of ``kind`` or start a cluster."""
    _checks.boolean(interactive, "interactive")
    _checks.boolean(start_client, "start_client")
    # the question needs someone to answer it: not in CI, a batch job or a kernel
    settings = resolve(kind, interactive=interactive and can_ask(), **keywords)
    if settings.reuse and (client := reusable_client(kind)) is not None:
        return client if start_client else client.cluster
    cluster, client = start(kind, settings, start_client=start_client)
    return client if start_client else cluster


def slurm_cluster_setup(partition: str = "auto", n_cores: int | None = None, n_workers: int = 1,
                        processes_per_worker: int = 1, mem_per_worker: str = "auto",
                        n_workers_startup: int = 1, timeout: float = 60, interactive: bool = True,
                        interactive_wait: float = INTERACTIVE_WAIT, start_client: bool = True,
                        job_extra: list[str] | None = None, *,
                        cores_per_worker: int | None = None, queue: str | None = None,
                        log_directory: str | os.PathLike[str] | None = None,
                        security: Any = True, host: str | None = None,
                        interface: str | None = None, dashboard_address: str = "127.0.0.1:0",
                        check_resources: bool = True, reuse: bool = True,
                        mem_cushion: float = 0, walltime: str | None = None,
                        **jobqueue_options: Any) -> Any:
    return _setup(SlurmExecutor, partition=partition, n_cores=n_cores, n_workers=n_workers,
                  processes_per_worker=processes_per_worker, mem_per_worker=mem_per_worker,
                  n_workers_startup=n_workers_startup, timeout=timeout, interactive=interactive,
                  interactive_wait=interactive_wait, start_client=start_client,
                  job_extra=job_extra, cores_per_worker=cores_per_worker, queue=queue,
                  log_directory=log_directory, security=security, host=host,
                  interface=interface, dashboard_address=dashboard_address,
                  check_resources=check_resources, reuse=reuse, mem_cushion=mem_cushion,
                  walltime=walltime, **jobqueue_options)


slurm_cluster_setup.__doc__ = _DOC.format(
    parameters=_docs.parameters(_docs.SLURM_SETUP, "slurm"), **_docs.WORDS["slurm"])


def _queue_setup(kind: JobQueueKind, scheduler: str) -> Callable[..., Any]:
    """Build ``<scheduler>_cluster_setup`` for a scheduler whose queues are called queues.

    PBS and Grid Engine take the very same keywords; only the backend class differs.
    """

    def setup(queue: str = "auto", n_workers: int = 1, mem_per_worker: str = "auto",
              cores_per_worker: int | None = None, timeout: float = 60, interactive: bool = True,
              interactive_wait: float = INTERACTIVE_WAIT, start_client: bool = True,
              job_extra: list[str] | None = None, *, partition: str | None = None,
              n_cores: int | None = None, processes_per_worker: int = 1,
              n_workers_startup: int = 1,
              log_directory: str | os.PathLike[str] | None = None,
              security: Any = True, host: str | None = None,
              interface: str | None = None, dashboard_address: str = "127.0.0.1:0",
              check_resources: bool = True, reuse: bool = True, mem_cushion: float = 0,
              walltime: str | None = None, **jobqueue_options: Any) -> Any:
        return _setup(kind, partition=partition, queue=None if queue == "auto" else queue,
                      n_cores=n_cores, n_workers=n_workers,
                      processes_per_worker=processes_per_worker,
                      mem_per_worker=mem_per_worker, n_workers_startup=n_workers_startup,
                      timeout=timeout, interactive=interactive,
                      interactive_wait=interactive_wait, start_client=start_client,
                      job_extra=job_extra, cores_per_worker=cores_per_worker,
                      log_directory=log_directory, security=security, host=host,
                      interface=interface, dashboard_address=dashboard_address,
                      check_resources=check_resources, reuse=reuse, mem_cushion=mem_cushion,
                      walltime=walltime, **jobqueue_options)

    setup.__name__ = setup.__qualname__ = f"{scheduler}_cluster_setup"
    setup.__module__ = __name__
    setup.__doc__ = _DOC.format(parameters=_docs.parameters(_docs.QUEUE_SETUP, scheduler),
                                **_docs.WORDS[scheduler])
    return setup


pbs_cluster_setup = _queue_setup(PbsExecutor, "pbs")
sge_cluster_setup = _queue_setup(SgeExecutor, "sge")
