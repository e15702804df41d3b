"""``esi_cluster_setup``: dask workers on ESI's SLURM cluster, with ESI's partition rules."""

from __future__ import annotations

import getpass
import logging
import math
import os
import shutil
import subprocess
from datetime import datetime
from typing import Any

from acme_backends.dask import current_client, local_cluster_setup
from acme_backends.jobqueue import slurm_cluster_setup
from acme_backends.schedulers.slurm import SlurmCLI
from acme_core.errors import ArgumentTypeError, ArgumentValueError

from acme_esi.partitions import INVALID_PARTITIONS, pick_partition

__all__ = ["ESI_LOG_ROOT", "esi_cluster_setup"]

log = logging.getLogger("acme")

#: ESI's shared log area (ACME writes job logs there); used when it exists
ESI_LOG_ROOT = "/cs/slurm"

#: ACME's way of passing its memory estimate: "estimate_memuse:<GB>"
ESTIMATE = "estimate_memuse:"


def _bytes(mem_per_worker: str) -> int:
    """``"12GB"`` -> bytes; anything that is not a positive size is an ArgumentValueError."""
    from dask.utils import parse_bytes

    try:
        size = int(parse_bytes(mem_per_worker))
    except (ValueError, TypeError):
        size = 0
    if size <= 0:
        raise ArgumentValueError(f"`mem_per_worker` has to be a valid memory specifier (e.g., "
                                 f"'8GB', '12000MB'), not {mem_per_worker!r}",
                                 parameter="mem_per_worker")
    return size


def _memory_need_gb(mem_per_worker: str) -> float:
    """GB that ``mem_per_worker`` asks for: a size (``"12GB"``) or ACME's ``"estimate_memuse:<GB>"``."""
    if mem_per_worker.startswith(ESTIMATE):
        try:
            return float(mem_per_worker.split(":", 1)[1])
        except ValueError:
            raise ArgumentValueError(f"`mem_per_worker` estimate has to be "
                                     f"'estimate_memuse:<GB>', not {mem_per_worker!r}",
                                     parameter="mem_per_worker") from None
    return _bytes(mem_per_worker) / 1e9


def _log_directory() -> str | None:
    if not os.path.isdir(ESI_LOG_ROOT):
        return None  # acme-core's default (~/.acme/job-logs/...)
    user = getpass.getuser()
    return os.path.join(ESI_LOG_ROOT, user, f"{user}_{datetime.now():%Y%m%d-%H%M%S}")


def _check_arguments(partition: object, mem_per_worker: object) -> None:
    """ESI's own rules, checked before SLURM is asked anything."""
    if not isinstance(partition, str):
        raise ArgumentTypeError(f"`partition` has to be 'auto' or a valid SLURM partition name, "
                                f"not {partition!r}", parameter="partition")
    if partition in INVALID_PARTITIONS:
        raise ArgumentValueError(f"partition {partition!r} is not for dask workers; use one of "
                                 "the <N>GB<length> partitions (or 'auto')", parameter="partition")
    if not isinstance(mem_per_worker, str):
        raise ArgumentTypeError(f"`mem_per_worker` has to be a string, not {type(mem_per_worker)}",
                                parameter="mem_per_worker")



def _check_auto_partition(partition: str, mem_per_worker: str) -> None:
    """On SLURM only: ``partition="auto"`` needs the memory to pick a partition from."""
    if partition == "auto" and mem_per_worker == "auto":
        raise ArgumentValueError("partition='auto' picks the partition from the memory each "
                                 "worker needs: give `mem_per_worker` (e.g. '12GB')",
                                 parameter="mem_per_worker")


def _partition_and_memory(partition: str, mem_per_worker: str,
                          names: list[str]) -> tuple[str, str]:
    """``partition="auto"`` resolved from the memory need; ACME's estimate -> ``"auto"`` memory."""
    if partition == "auto":
        need = _memory_need_gb(mem_per_worker)
        partition = pick_partition(need, names)
        log.info("Picked partition %s based on estimated memory consumption of %g GB",
                 partition, need)
    if mem_per_worker.startswith(ESTIMATE):
        mem_per_worker = "auto"  # the whole partition's memory, as ACME does
    return partition, mem_per_worker


def slurm_answers() -> bool:
    """Whether SLURM can be used from here: ``sinfo`` is installed *and* answers.

    ACME checks ``sinfo``'s exit code: a workstation with the SLURM client but no
    reachable controller counts as no SLURM.
    """
    if shutil.which("sinfo") is None:
        return False
    try:
        done = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def _local_instead(n_workers: int, start_client: bool) -> Any:
    """Off SLURM, as ACME: the running client if there is one, else a new local cluster."""
    existing = current_client()
    if existing is not None:
        log.info("Found existing parallel computing client %s. Not starting a new cluster.",
                 existing)
        return existing if start_client else existing.cluster
    # ACME starts a local cluster silently; say so
    log.warning("SLURM is not available on this machine (%s: `sinfo` is missing or does not "
                "answer): starting a local multi-processing cluster instead of SLURM workers",
                os.uname().nodename)
    return local_cluster_setup(n_workers=n_workers, interactive=False, start_client=start_client)


def _cores(partition: str, mem_per_worker: str) -> int:
    """ESI's rule: as many cores as the memory takes at the partition's memory per core."""
    if mem_per_worker == "auto":
        return 1
    per_cpu = max(SlurmCLI.queue_memory(partition).default_per_cpu_mb or 1000, 1000)
    return max(1, math.floor(_bytes(mem_per_worker) / 2**20 / per_cpu))


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
    _check_arguments(partition, mem_per_worker)
    if not slurm_answers():
        return _local_instead(n_workers, start_client)
    _check_auto_partition(partition, mem_per_worker)
    names = SlurmCLI.queues().names
    partition, mem_per_worker = _partition_and_memory(partition, mem_per_worker, names)
    if cores_per_worker is None:
        # an unknown partition: slurm_cluster_setup reports it with the list of partitions
        cores_per_worker = _cores(partition, mem_per_worker) if partition in names else 1
    kwargs.setdefault("log_directory", _log_directory())
    return slurm_cluster_setup(
        partition=partition, n_workers=n_workers, mem_per_worker=mem_per_worker,
        cores_per_worker=cores_per_worker, n_workers_startup=n_workers_startup, timeout=timeout,
        interactive=interactive, interactive_wait=interactive_wait, start_client=start_client,
        job_extra=job_extra, mem_cushion=mem_cushion, **kwargs)
