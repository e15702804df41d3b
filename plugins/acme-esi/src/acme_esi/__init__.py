"""acme-esi: acme-core presets for the ESI HPC cluster.

>>> from acme_esi import esi_cluster_setup
>>> client = esi_cluster_setup(partition="8GBXS", n_workers=10)   # doctest: +SKIP

This package is also the worked example of an institution plugin: a partition
table with memory rules (:mod:`acme_esi.partitions`), a ``cluster_setup``
function built on :func:`acme_core.slurm_cluster_setup` (:mod:`acme_esi.setup`)
and its registration through the ``acme`` entry-point group (:mod:`acme_esi.plugin`).
"""

from __future__ import annotations

from acme_esi.partitions import (
    ESI_PARTITIONS,
    INVALID_PARTITIONS,
    is_esi_host,
    partition_memory_gb,
    pick_partition,
)
from acme_esi.setup import esi_cluster_setup

__all__ = [
    "ESI_PARTITIONS",
    "INVALID_PARTITIONS",
    "esi_cluster_setup",
    "is_esi_host",
    "partition_memory_gb",
    "pick_partition",
]
