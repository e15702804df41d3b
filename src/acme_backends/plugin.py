"""The hook implementations of the built-in backends (registered like any plugin).

The core knows this module only by name (:data:`acme_core.plugins.BUILTIN_PLUGINS`);
everything it needs from the backends arrives through these hooks. dask is
imported only when a hook needs it, so listing the backends is cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from acme_core.hookspecs import Register
from acme_core.plugins import hookimpl

__all__ = [
    "acme_auto_backend",
    "acme_cluster_cleanup",
    "acme_register_cluster_setups",
    "acme_register_executors",
]


@hookimpl
def acme_register_executors(register: Register[type[Any]]) -> None:
    """The ``dask-local``, ``dask``, ``slurm``, ``pbs``, ``sge``, ``slurm-array`` and
    ``sge-array`` backends."""
    from acme_backends.arrays import SgeArrayExecutor, SlurmArrayExecutor
    from acme_backends.dask import DaskClientExecutor, DaskLocalExecutor
    from acme_backends.jobqueue import PbsExecutor, SgeExecutor, SlurmExecutor

    register(DaskLocalExecutor)
    register(DaskClientExecutor)
    register(SlurmExecutor)
    register(PbsExecutor)
    register(SgeExecutor)
    register(SlurmArrayExecutor)
    register(SgeArrayExecutor)


@hookimpl
def acme_register_cluster_setups(register: Register[Callable[..., Any]]) -> None:
    """ACME's ``local``, ``slurm``, ``pbs`` and ``sge`` cluster setups."""
    from acme_backends.dask import local_cluster_setup
    from acme_backends.jobqueue import pbs_cluster_setup, sge_cluster_setup, slurm_cluster_setup

    register(local_cluster_setup, name="local")
    register(slurm_cluster_setup, name="slurm")
    register(pbs_cluster_setup, name="pbs")
    register(sge_cluster_setup, name="sge")


@hookimpl(trylast=True)
def acme_auto_backend() -> tuple[str, dict[str, Any]]:
    """acme-core's own choice: the running dask client, else a local cluster.

    Registered ``trylast``, so a site plugin that answers on its own machines wins.
    """
    from acme_backends.dask import current_client

    return ("dask", {}) if current_client() is not None else ("dask-local", {})


@hookimpl(trylast=True)
def acme_cluster_cleanup(client: Any) -> bool | None:
    """Stop a dask client (None: the one running here) and the cluster behind it."""
    from acme_backends.dask import cluster_cleanup, is_dask_client

    if client is not None and not is_dask_client(client):
        return None
    cluster_cleanup(client)
    return True
