"""The hook implementations acme-core loads through the ``acme`` entry point ``esi``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from acme_backends.dask import current_client
from acme_core import hookimpl
from acme_core.hookspecs import Register

from acme_esi import partitions
from acme_esi.setup import esi_cluster_setup

__all__ = ["acme_auto_backend", "acme_register_cluster_setups"]


@hookimpl
def acme_register_cluster_setups(register: Register[Callable[..., Any]]) -> None:
    """``esi``: :func:`~acme_esi.setup.esi_cluster_setup`."""
    register(esi_cluster_setup, name="esi")


@hookimpl
def acme_auto_backend() -> tuple[str, dict[str, Any]] | None:
    """On ESI's own machines, ``backend="auto"`` means SLURM in ESI's default partition.

    Anywhere else (a laptop, a CI runner, another cluster with ``sbatch``), and
    when a dask client is already running (ACME attaches to it), the plugin stays
    silent and acme-core's own choice applies.
    """
    if not partitions.is_esi_host() or current_client() is not None:
        return None
    return ("slurm", {"partition": "8GBXS"})
