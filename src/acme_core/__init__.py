"""acme-core: run one function many times over many inputs, on a laptop or an HPC cluster.

>>> from acme_core import ParallelMap
>>> def f(x, y, z=3):
...     return (x + y) * z
>>> with ParallelMap(f, [2, 4, 6, 8], 4) as pmap:   # doctest: +SKIP
...     paths = pmap.compute()

Importing this package configures nothing globally (no logging handlers, no
exception hooks) and imports neither dask nor h5py.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from acme_core.cluster_setups import pbs_cluster_setup, sge_cluster_setup, slurm_cluster_setup
from acme_core.clusters import cluster_cleanup, local_cluster_setup
from acme_core.errors import MissingDependencyError, ParallelMapError
from acme_core.parallel_map import ParallelMap
from acme_core.plugins import hookimpl, list_backends, list_cluster_setups, list_stores
from acme_core.results import open_results

try:
    __version__ = version("acme-core")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "MissingDependencyError",
    "ParallelMap",
    "ParallelMapError",
    "__version__",
    "cluster_cleanup",
    "hookimpl",
    "list_backends",
    "list_cluster_setups",
    "list_stores",
    "local_cluster_setup",
    "open_results",
    "pbs_cluster_setup",
    "sge_cluster_setup",
    "slurm_cluster_setup",
]
