"""``esi_cluster_setup``: dask workers on ESI's SLURM cluster, with ESI's partition rules."""

from __future__ import annotations

import getpass
import logging
import math
import os
import shutil
from datetime import datetime
from typing import Any

from acme_esi.partitions import INVALID_PARTITIONS, pick_partition

log = logging.getLogger("acme")

#: ESI's shared log area (ACME writes job logs there); used when it exists
ESI_LOG_ROOT = "/cs/slurm"


def _memory_need_gb(mem_per_worker: str) -> float:
    """GB that ``mem_per_worker`` asks for: a size (``"12GB"``) or ACME's ``"estimate_memuse:<GB>"``."""
    if mem_per_worker.startswith("estimate_memuse:"):
        try:
            return float(mem_per_worker.split(":", 1)[1])
        except ValueError:
            raise ValueError(f"`mem_per_worker` estimate has to be 'estimate_memuse:<GB>', not "
                             f"{mem_per_worker!r}") from None
    from acme_core import validation
    from dask.utils import parse_bytes

    validation.mem_spec(mem_per_worker)
    return parse_bytes(mem_per_worker) / 1e9


def _log_directory() -> str | None:
    if not os.path.isdir(ESI_LOG_ROOT):
        return None  # acme-core's default (~/.acme/job-logs/...)
    user = getpass.getuser()
    return os.path.join(ESI_LOG_ROOT, user, f"{user}_{datetime.now():%Y%m%d-%H%M%S}")


def esi_cluster_setup(partition: str, n_workers: int = 2, mem_per_worker: str = "auto",
                      cores_per_worker: int | None = None, n_workers_startup: int = 1,
                      timeout: float = 60, interactive: bool = True,
                      interactive_wait: float = 120, start_client: bool = True,
                      job_extra: list[str] | None = None, mem_cushion: float = 100,
                      **kwargs: Any) -> Any:
    """Start dask workers as SLURM jobs on ESI's cluster and return a client.

    Parameters
    ----------
    partition : str
        An ESI partition (``"8GBXS"``, ``"16GBS"``, ...), or ``"auto"``: the
        smallest ``<N>GBS`` partition whose memory fits ``mem_per_worker`` (ACME
        picks the nearest one, which can be too small). ``PREPO`` and ``ESI`` are
        refused. Required, as in ACME.
    n_workers : int
        Number of worker jobs.
    mem_per_worker : str
        ``"auto"``: the partition's memory (less ``mem_cushion``); a size such as
        ``"12GB"``; or ACME's ``"estimate_memuse:<GB>"`` from its memory estimate.
    cores_per_worker : int, optional
        Default: as many cores as the memory takes at the partition's memory per
        core (ESI's rule), at least 1.
    n_workers_startup, timeout, interactive, interactive_wait, start_client, job_extra
        As in :func:`acme_core.slurm_cluster_setup`.
    mem_cushion : float
        MB kept free below the partition's memory when ``mem_per_worker`` is "auto".
    **kwargs
        Any other :func:`acme_core.slurm_cluster_setup` or dask-jobqueue keyword
        (``log_directory`` defaults to ``/cs/slurm/<user>/<user>_<time>`` when
        ``/cs/slurm`` exists). Unknown keywords are an error.

    Returns
    -------
    distributed.Client or dask_jobqueue.SLURMCluster
        A running client is reused (ACME's behaviour) when it runs on SLURM workers.
    """
    from acme_core import local_cluster_setup, slurm_cluster_setup

    if not isinstance(partition, str):
        raise TypeError(f"`partition` has to be 'auto' or a valid SLURM partition name, not "
                        f"{partition!r}")
    if partition in INVALID_PARTITIONS:
        raise ValueError(f"partition {partition!r} is not for dask workers; use one of the "
                         f"<N>GB<length> partitions (or 'auto')")
    if not isinstance(mem_per_worker, str):
        raise TypeError(f"`mem_per_worker` has to be a string, not {type(mem_per_worker)}")
    if partition == "auto" and mem_per_worker == "auto":
        raise ValueError("partition='auto' picks the partition from the memory each worker "
                         "needs: give `mem_per_worker` (e.g. '12GB')")
    if shutil.which("sinfo") is None:
        # ACME starts a local cluster instead; say so instead of doing it silently
        log.warning("SLURM does not seem to be installed on this machine (%s): starting a local "
                    "multi-processing cluster instead of SLURM workers", os.uname().nodename)
        return local_cluster_setup(n_workers=n_workers, interactive=False,
                                   start_client=start_client)

    from acme_backends.jobqueue import SlurmCLI

    names, _ = SlurmCLI.queues()
    if partition == "auto":
        need = _memory_need_gb(mem_per_worker)
        partition = pick_partition(need, names)
        log.info("Picked partition %s based on estimated memory consumption of %g GB",
                 partition, need)
        if mem_per_worker.startswith("estimate_memuse:"):
            mem_per_worker = "auto"  # the whole partition's memory, as ACME does
    elif mem_per_worker.startswith("estimate_memuse:"):
        mem_per_worker = "auto"
    if cores_per_worker is None and partition not in names:
        cores_per_worker = 1  # slurm_cluster_setup reports the unknown partition
    if cores_per_worker is None:
        _, per_cpu = SlurmCLI.queue_memory(partition)
        per_cpu = max(per_cpu or 1000, 1000)
        if mem_per_worker == "auto":
            cores_per_worker = 1
        else:
            from dask.utils import parse_bytes

            cores_per_worker = max(1, math.floor(parse_bytes(mem_per_worker) / 2**20 / per_cpu))
    kwargs.setdefault("log_directory", _log_directory())
    return slurm_cluster_setup(
        partition=partition, n_workers=n_workers, mem_per_worker=mem_per_worker,
        cores_per_worker=cores_per_worker, n_workers_startup=n_workers_startup, timeout=timeout,
        interactive=interactive, interactive_wait=interactive_wait, start_client=start_client,
        job_extra=job_extra, mem_cushion=mem_cushion, **kwargs)
