"""Backends on dask ``distributed``: attach to a client, or start a local cluster.

- :mod:`~acme_backends.dask.client`: :class:`DaskClientExecutor` (``"dask"``),
  :func:`current_client`, :func:`cluster_cleanup`;
- :mod:`~acme_backends.dask.local`: :class:`DaskLocalExecutor` (``"dask-local"``),
  :func:`local_cluster_setup`;
- :mod:`~acme_backends.dask.malloc`: ``ReusingNanny``, the worker nanny of local
  clusters (imported only when a local cluster starts: it imports distributed).

Importing this package does not import dask.
"""

from __future__ import annotations

from acme_backends.dask.client import (
    DaskClientExecutor,
    cluster_cleanup,
    current_client,
    is_dask_client,
)
from acme_backends.dask.local import DaskLocalExecutor, check_cluster_options, local_cluster_setup

__all__ = [
    "DaskClientExecutor",
    "DaskLocalExecutor",
    "check_cluster_options",
    "cluster_cleanup",
    "current_client",
    "is_dask_client",
    "local_cluster_setup",
]
