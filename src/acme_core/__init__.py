"""acme-core: run one function many times over many inputs, on a laptop or an HPC cluster.

>>> from acme_core import ParallelMap
>>> def f(x, y, z=3):
...     return (x + y) * z
>>> with ParallelMap(f, [2, 4, 6, 8], 4) as pmap:   # doctest: +SKIP
...     paths = pmap.compute()

Importing this package configures nothing globally (no logging handlers, no
exception hooks) and imports neither dask nor h5py nor any backend or store:
``local_cluster_setup``, ``slurm_cluster_setup``, ``pbs_cluster_setup`` and
``sge_cluster_setup`` are looked up in the plugin registry on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from acme_core._version import __version__
from acme_core.arguments import shared
from acme_core.clients import ACME_SETUP_NAMES, cluster_cleanup, cluster_setup
from acme_core.errors import AcmeError, MissingDependencyError, ParallelMapError
from acme_core.parallel_map import ParallelMap
from acme_core.plugins import hookimpl, list_backends, list_cluster_setups, list_stores
from acme_core.results import open_results

if TYPE_CHECKING:  # what the registry gives back, for type checkers and IDEs
    local_cluster_setup: Callable[..., Any]
    slurm_cluster_setup: Callable[..., Any]
    pbs_cluster_setup: Callable[..., Any]
    sge_cluster_setup: Callable[..., Any]

__all__ = [
    "AcmeError",
    "MissingDependencyError",
    "ParallelMap",
    "ParallelMapError",
    "__version__",
    "cluster_cleanup",
    "cluster_setup",
    "hookimpl",
    "list_backends",
    "list_cluster_setups",
    "list_stores",
    "local_cluster_setup",
    "open_results",
    "shared",
    "pbs_cluster_setup",
    "sge_cluster_setup",
    "slurm_cluster_setup",
]


def __getattr__(name: str) -> Callable[..., Any]:
    """ACME's cluster-setup names, resolved through the plugin registry (PEP 562)."""
    if name in ACME_SETUP_NAMES:
        return cluster_setup(ACME_SETUP_NAMES[name])
    raise AttributeError(f"module 'acme_core' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(ACME_SETUP_NAMES))
