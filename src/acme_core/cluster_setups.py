"""``slurm_cluster_setup``, ``pbs_cluster_setup``, ``sge_cluster_setup``: ACME's cluster starters.

Each starts dask workers as batch jobs through the matching job-queue backend
(:mod:`acme_backends.jobqueue`) and returns a client (or the cluster with
``start_client=False``). They take ACME's keywords, plus any dask-jobqueue
keyword; an unknown keyword is an error before anything is submitted. Stop
what they started with :func:`acme_core.cluster_cleanup`, which cancels every
job of the cluster.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from acme_core.prompts import can_ask


def _setup(backend: str, *, partition: str | None, n_workers: int, mem_per_worker: str,
           cores_per_worker: int | None, n_cores: int | None, timeout: float, interactive: bool,
           start_client: bool, job_extra: list[str] | None, reuse: bool,
           **options: Any) -> Any:
    from acme_backends import jobqueue
    from acme_core import validation

    cls = {"slurm": jobqueue.SlurmExecutor, "pbs": jobqueue.PbsExecutor,
           "sge": jobqueue.SgeExecutor}[backend]
    name = f"<{backend}_cluster_setup>"
    if not isinstance(interactive, bool):
        raise TypeError(f"{name} `interactive` has to be Boolean, not {interactive}")
    if not isinstance(start_client, bool):
        raise TypeError(f"{name} `start_client` has to be Boolean, not {start_client}")
    if job_extra is not None and not isinstance(job_extra, (list, tuple)):
        raise TypeError(f"`job_extra` has to be a list, not {type(job_extra)}")
    if n_cores is not None and cores_per_worker is not None and n_cores != cores_per_worker:
        raise ValueError(f"{name} give `cores_per_worker` or ACME's `n_cores`, not both")
    cores = cores_per_worker if cores_per_worker is not None else n_cores
    if cores is not None:
        validation.scalar(cores, "cores_per_worker", lims=(1, float("inf")))
    settings = cls.prepare(
        partition="auto" if partition is None else partition, n_workers=n_workers,
        mem_per_worker=mem_per_worker, cores_per_worker=int(cores or 1), timeout=timeout,
        interactive=interactive and can_ask(), job_extra=job_extra, reuse=reuse, **options)
    if reuse:
        client = cls._reusable_client()
        if client is not None:
            return client if start_client else client.cluster
    cluster, client = cls._start(settings, start_client=start_client)
    return client if start_client else cluster


def slurm_cluster_setup(partition: str = "auto", n_cores: int | None = None, n_workers: int = 1,
                        processes_per_worker: int = 1, mem_per_worker: str = "auto",
                        n_workers_startup: int = 1, timeout: float = 60, interactive: bool = True,
                        interactive_wait: float = 120, start_client: bool = True,
                        job_extra: list[str] | None = None, *,
                        cores_per_worker: int | None = None, queue: str | None = None,
                        log_directory: str | os.PathLike[str] | None = None,
                        security: Any = True, host: str | None = None,
                        interface: str | None = None, dashboard_address: str = "127.0.0.1:0",
                        check_resources: bool = True, reuse: bool = True,
                        mem_cushion: float = 0, walltime: str | None = None,
                        **jobqueue_options: Any) -> Any:
    """Start dask workers as SLURM jobs and return a client connected to them.

    Parameters
    ----------
    partition : str
        SLURM partition; ``"auto"``: the default partition. One SLURM does not have
        is a ``ValueError`` listing the partitions it has.
    n_cores : int, optional
        ACME's name for ``cores_per_worker``.
    n_workers : int
        Number of worker jobs.
    processes_per_worker : int
        dask worker processes per job.
    mem_per_worker : str
        Memory per job, e.g. ``"2GB"``; ``"auto"``: the partition's default memory
        per core times the cores. More than a node has, or than the partition allows,
        is a ``ValueError`` before anything is submitted.
    n_workers_startup : int
        After ``timeout``, go on when at least this many workers are up.
    timeout : float
        Seconds to wait for the workers; when fewer came up, the log says how many
        and the scheduler's reason for the rest. None up: ``TimeoutError``.
    interactive : bool
        Ask whether to keep waiting, abort or continue when workers are missing
        (only with a terminal on stdin).
    interactive_wait : float
        Seconds that question waits for an answer before taking the default.
    start_client : bool
        Return a ``distributed.Client`` (default) or the cluster object.
    job_extra : list of str
        Extra ``#SBATCH`` options, e.g. ``["--qos=long"]``.
    cores_per_worker : int, optional
        Cores per job (default 1).
    queue : str, optional
        Same as ``partition``.
    log_directory : str, optional
        Where job logs go (default ``~/.acme/job-logs/<user>_slurm_<time>``).
    security : bool or Security
        TLS with temporary credentials (default), ``False`` for plain TCP.
    host, interface : str, optional
        Address / network interface for the scheduler (login nodes with several networks).
    dashboard_address : str
        Default ``"127.0.0.1:0"``: this machine only, on a free port.
    check_resources : bool
        Check partition, memory and cores with the scheduler before submitting.
    reuse : bool
        Return the running client when it already runs on a SLURM cluster with
        workers (ACME's behaviour) instead of starting another.
    mem_cushion : float
        MB left free below the partition's memory when ``mem_per_worker="auto"``.
    walltime : str, optional
        Job time limit; default: the partition's.
    **jobqueue_options
        Any other ``dask_jobqueue.SLURMCluster`` keyword (``account``,
        ``worker_extra_args``, ``scheduler_options``, ``job_script_prologue``, ...).

    Returns
    -------
    distributed.Client or dask_jobqueue.SLURMCluster
    """
    return _setup("slurm", partition=partition, n_cores=n_cores, n_workers=n_workers,
                  processes_per_worker=processes_per_worker, mem_per_worker=mem_per_worker,
                  n_workers_startup=n_workers_startup, timeout=timeout, interactive=interactive,
                  interactive_wait=interactive_wait, start_client=start_client,
                  job_extra=job_extra, cores_per_worker=cores_per_worker, queue=queue,
                  log_directory=log_directory, security=security, host=host,
                  interface=interface, dashboard_address=dashboard_address,
                  check_resources=check_resources, reuse=reuse, mem_cushion=mem_cushion,
                  walltime=walltime, **jobqueue_options)


def _queue_setup(kind: str, doc: str) -> Callable[..., Any]:
    """Build ``<kind>_cluster_setup`` for a scheduler whose queues are called queues.

    PBS and Grid Engine take the very same keywords; only the scheduler differs.
    """

    def setup(queue: str = "auto", n_workers: int = 1, mem_per_worker: str = "auto",
              cores_per_worker: int = 1, timeout: float = 60, interactive: bool = True,
              interactive_wait: float = 120, start_client: bool = True,
              job_extra: list[str] | None = None, *, partition: str | None = None,
              n_cores: int | None = None, processes_per_worker: int = 1,
              n_workers_startup: int = 1,
              log_directory: str | os.PathLike[str] | None = None,
              security: Any = True, host: str | None = None,
              interface: str | None = None, dashboard_address: str = "127.0.0.1:0",
              check_resources: bool = True, reuse: bool = True,
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
                      check_resources=check_resources, reuse=reuse, walltime=walltime,
                      **jobqueue_options)

    setup.__name__ = setup.__qualname__ = f"{kind}_cluster_setup"
    setup.__doc__ = doc
    return setup


pbs_cluster_setup = _queue_setup("pbs", """Start dask workers as PBS jobs and return a client connected to them.

    The keywords are :func:`slurm_cluster_setup`'s, with ``queue`` first
    (``partition`` is accepted as its synonym); ``job_extra`` items are ``#PBS``
    options and ``**jobqueue_options`` go to ``dask_jobqueue.PBSCluster``
    (``resource_spec``, ``account``, ...). Job output is written to
    ``log_directory``: qsub runs there, since some PBS versions ignore ``-o``/``-e``.

    Returns
    -------
    distributed.Client or dask_jobqueue.PBSCluster
    """)

sge_cluster_setup = _queue_setup("sge", """Start dask workers as (Son of) Grid Engine jobs and return a client connected to them.

    The keywords are :func:`slurm_cluster_setup`'s, with ``queue`` first
    (``partition`` is accepted as its synonym); ``job_extra`` items are ``#$``
    options and ``**jobqueue_options`` go to ``dask_jobqueue.SGECluster``
    (``resource_spec`` requests memory the way your site wants, e.g.
    ``"h_vmem=4G"``; without it the jobs request no memory).

    Returns
    -------
    distributed.Client or dask_jobqueue.SGECluster
    """)
