"""The hook implementations acme-core loads through the ``acme`` entry point ``esi``."""

from __future__ import annotations

from acme_core import hookimpl


@hookimpl
def acme_register_cluster_setups(register) -> None:
    from acme_esi.setup import esi_cluster_setup

    register(esi_cluster_setup, name="esi")


@hookimpl
def acme_auto_backend():
    """On ESI's own machines, ``backend="auto"`` means SLURM in ESI's default partition.

    Anywhere else (a laptop, a CI runner, another cluster with ``sbatch``), and
    when a dask client is already running (ACME attaches to it), the plugin stays
    silent and acme-core's own choice applies.
    """
    from acme_backends.dask_client import current_client

    from acme_esi.partitions import is_esi_host

    if not is_esi_host() or current_client() is not None:
        return None
    return ("slurm", {"partition": "8GBXS"})
