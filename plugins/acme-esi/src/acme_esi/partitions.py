"""ESI's SLURM partitions and the rules that map a memory need to one of them.

ESI names its x86 partitions ``<N>GB<length>``: ``N`` GB of memory per core
(``DefMemPerCPU``) and a run-time class (``XS`` < 1 h, ``S`` < 1 day, ``L``,
``VL`` longer). ``E880`` holds the IBM POWER nodes; ``PREPO`` and ``ESI`` are
not for compute jobs.
"""

from __future__ import annotations

import math
import os
import re
import socket
from collections.abc import Iterable

from acme_core.errors import ArgumentValueError

__all__ = [
    "AUTO_CLASS",
    "ESI_PARTITIONS",
    "INVALID_PARTITIONS",
    "is_esi_host",
    "partition_memory_gb",
    "pick_partition",
]

#: x86 partitions of ESI's cluster (memory in GB per core is in the name)
ESI_PARTITIONS: tuple[str, ...] = (
    "8GBXS", "8GBS", "8GBL", "8GBVL",
    "16GBXS", "16GBS", "16GBL", "16GBVL",
    "24GBXS", "24GBS", "24GBL",
    "32GBXS", "32GBS", "32GBL",
    "48GBS", "64GBS", "64GBL", "128GBS", "128GBL",
)
#: partitions that exist but must not run dask workers
INVALID_PARTITIONS: tuple[str, ...] = ("PREPO", "ESI")
#: the run-time class partition="auto" chooses from (ACME uses "S" since 2023)
AUTO_CLASS = "S"

_NAME = re.compile(r"^(\d+)GB([A-Z]*)$")


def partition_memory_gb(name: str) -> int | None:
    """The memory in GB an ESI partition name stands for (``"16GBS"`` -> 16), or None."""
    m = _NAME.match(name)
    return int(m.group(1)) if m else None


def pick_partition(mem_gb: float, available: Iterable[str], size_class: str = AUTO_CLASS) -> str:
    """The smallest ``<N>GB<size_class>`` partition whose memory fits ``mem_gb``.

    ACME picks the *nearest* size, which can be too small (10 GB -> 8GBS); a job
    in a partition smaller than its need gets killed or never starts.

    Raises
    ------
    ArgumentValueError
        No partition of that class is large enough; the message lists them.
    """
    if not (isinstance(mem_gb, (int, float)) and mem_gb > 0 and math.isfinite(mem_gb)):
        raise ArgumentValueError(f"memory estimate has to be a positive number of GB, not "
                                 f"{mem_gb!r}", parameter="mem_per_worker")
    sizes = sorted((partition_memory_gb(p), p) for p in available
                   if (m := _NAME.match(p)) and m.group(2) == size_class)
    for gb, name in sizes:
        if gb is not None and gb >= mem_gb:
            return name
    raise ArgumentValueError(f"no {size_class!r} partition has {mem_gb:g} GB: the largest of "
                             f"{[n for _, n in sizes]} is too small. Pick a partition yourself "
                             "or need less memory.", parameter="mem_per_worker")


def is_esi_host() -> bool:
    """True on ESI's login nodes (ACME's test: host name ``esi-sv*`` and ``/cs`` exists)."""
    return socket.gethostname().startswith("esi-sv") and os.path.isdir("/cs")
