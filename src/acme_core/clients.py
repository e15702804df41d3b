"""ACME's names for starting and stopping dask clients, resolved through the plugins.

``local_cluster_setup``, ``slurm_cluster_setup``, ``pbs_cluster_setup`` and
``sge_cluster_setup`` are the cluster setups registered as ``local``, ``slurm``,
``pbs`` and ``sge`` (by :mod:`acme_backends`, or by a plugin that registers those
names first); ``acme_core`` looks them up on first use (PEP 562), so importing
the core imports no backend. :func:`cluster_cleanup` asks the plugins, through
:func:`~acme_core.hookspecs.acme_cluster_cleanup`, which of them can stop the client.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from acme_core.errors import ArgumentTypeError
from acme_core.plugins import get_plugin_manager, list_cluster_setups, lookup

__all__ = ["ACME_SETUP_NAMES", "cluster_cleanup", "cluster_setup"]

#: ``acme_core`` attribute -> the registered cluster-setup name it stands for
ACME_SETUP_NAMES = {
    "local_cluster_setup": "local",
    "slurm_cluster_setup": "slurm",
    "pbs_cluster_setup": "pbs",
    "sge_cluster_setup": "sge",
}


def cluster_setup(name: str) -> Callable[..., Any]:
    """The cluster setup registered as ``name`` (``"local"``, ``"slurm"``, ``"esi"``, ...)."""
    return lookup("cluster setup", name, list_cluster_setups(), "name")


def cluster_cleanup(client: Any = None) -> None:
    """Stop a dask client and the cluster behind it (the running one by default).

    Parameters
    ----------
    client : distributed.Client, optional
        The client to stop; None stops the client running in this process, if any.
    """
    handled = get_plugin_manager().hook.acme_cluster_cleanup(client=client)
    if not handled:
        raise ArgumentTypeError(
            f"<cluster_cleanup> `client` has to be a dask client object, not {type(client)}",
            parameter="client")
