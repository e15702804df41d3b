"""ParallelMap's ``resources`` on a local cluster: what each worker process gets.

``{"cores": 4, "gpus": 1, "mem": "8GB"}`` means, per call's worker:

- ``cores``: the worker's BLAS/OpenMP thread pools get that many threads
  (``OMP_NUM_THREADS`` and friends, which dask sets to 1 by default), and
  ``n_workers="auto"`` starts only as many workers as the machine's cores allow;
- ``mem``: the worker's memory limit (dask's ``memory_limit``), and no more
  workers than the machine's memory holds;
- ``gpus``: as many GPUs as ``nvidia-smi -L`` lists per worker, and no more
  workers than the GPUs allow (each worker also gets the dask worker resource
  ``GPU``). A machine without GPUs refuses the request.

A request this machine cannot satisfy is refused before a process starts,
naming the limit.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from acme_backends import _checks
from acme_core.errors import ArgumentTypeError, ArgumentValueError

__all__ = ["LocalResources", "local_gpus", "local_resources"]

#: the thread-pool variables a worker's BLAS/OpenMP libraries read
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass(frozen=True)
class LocalResources:
    """What the local cluster starts with for ``resources``."""

    #: worker count (None: as dask chooses)
    n_workers: int | None
    #: memory limit per worker (None: dask's default)
    memory: str | None
    #: environment variables of every worker process
    env: Mapping[str, str] = field(default_factory=dict)
    #: dask worker resources of every worker
    worker_resources: Mapping[str, float] = field(default_factory=dict)


def local_gpus() -> int:
    """GPUs on this machine as ``nvidia-smi -L`` lists them (0 without the tool)."""
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return 0
    try:
        listed = subprocess.run([tool, "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU ") for line in listed.stdout.splitlines())


def _machine_memory() -> int:
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def local_resources(resources: Mapping[str, Any] | None, n_workers: int | None,
                    memory: str | None) -> LocalResources:
    """Map ``resources`` onto a local cluster of ``n_workers`` (None: auto) with ``memory``.

    Raises
    ------
    ArgumentTypeError, ArgumentValueError
        ``resources`` is not a dict, disagrees with ``mem_per_worker``, or asks for
        more than this machine has (the message names the limit).
    """
    if not resources:
        return LocalResources(n_workers, memory)
    if not isinstance(resources, Mapping):
        raise ArgumentTypeError(f"`resources` has to be a dict, not {resources!r}",
                                parameter="resources")
    # dask's own choice without n_workers: one worker per core
    limits = [n_workers if n_workers is not None else os.cpu_count() or 1]
    env: dict[str, str] = {}
    worker_resources: dict[str, float] = {}
    if "cores" in resources:
        cores = _checks.count(resources["cores"], "resources['cores']")
        limits.append(_fit("cores", cores, os.cpu_count() or 1, "CPU cores"))
        env = {name: str(cores) for name in THREAD_VARIABLES}
    if "mem" in resources:
        memory = _memory(resources["mem"], memory)
        from dask.utils import parse_bytes

        limits.append(_fit("mem", parse_bytes(memory), _machine_memory(), "bytes of memory"))
    gpus = _checks.count(resources.get("gpus", 0), "resources['gpus']", minimum=0)
    if gpus:
        limits.append(_fit("gpus", gpus, local_gpus(), "GPUs (nvidia-smi -L)"))
        worker_resources["GPU"] = gpus
    return LocalResources(min(limits), memory, env, worker_resources)


def _memory(mem: Any, mem_per_worker: str | None) -> str:
    mem = _checks.mem_spec(mem, "resources['mem']")
    if mem_per_worker is not None and mem_per_worker != mem:
        raise ArgumentValueError(f"`resources['mem']` {mem!r} and `mem_per_worker` "
                                 f"{mem_per_worker!r} disagree: give one", parameter="resources")
    return str(mem)


def _fit(name: str, wanted: float, available: float, unit: str) -> int:
    """How many workers of ``wanted`` fit into ``available``; refused if not one."""
    if wanted > available:
        shown = f"{available:,}" if available else "no"
        raise ArgumentValueError(
            f"`resources['{name}']` {wanted:,} per worker is more than this machine has "
            f"({shown} {unit}): no local worker could run it. Ask for less, or use a cluster "
            "backend ('slurm', 'sge', 'pbs')", parameter="resources")
    return max(1, math.floor(available / wanted))
