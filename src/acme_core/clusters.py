"""Starting and stopping dask clients: ``local_cluster_setup`` and ``cluster_cleanup``.

Cluster setups are plugins too: :mod:`acme_backends.plugin` registers
``local_cluster_setup`` as ``local``, like a site plugin registers its presets.
"""

from __future__ import annotations

import logging
from typing import Any

from acme_core import validation
from acme_core.main_guard import check_main_guard

log = logging.getLogger("acme")

def local_cluster_setup(n_workers: int | None = None, mem_per_worker: str | None = None,
                        interactive: bool = True, start_client: bool = True,
                        threads_per_worker: int = 1, dashboard_address: str = "127.0.0.1:0",
                        **cluster_options: Any) -> Any:
    """Start a dask ``LocalCluster`` on this machine and return a client connected to it.

    Parameters
    ----------
    n_workers : int, optional
        Number of worker processes (default: dask's choice from the cores).
    mem_per_worker : str, optional
        Memory limit per worker, e.g. ``"2GB"`` (decimal units, like dask).
    interactive : bool
        Kept for ACME compatibility. acme-core never asks whether the script has a
        ``__main__`` guard: a missing guard is detected and reported instead.
    start_client : bool
        Return a ``Client`` (default) or only the ``LocalCluster``.
    threads_per_worker : int
        Threads per worker process.
    dashboard_address : str
        Where the dashboard listens; the default binds to localhost only.
    **cluster_options
        Any other ``distributed.LocalCluster`` keyword.

    Returns
    -------
    distributed.Client or distributed.LocalCluster

    Notes
    -----
    The worker processes keep freed memory for reuse as a plain Python process
    does (glibc's ``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_``, see
    :mod:`acme_core.worker_malloc`) instead of dask's immediate return, which makes
    every new array of 128 KiB and more cost page faults. Pass
    ``worker_class=distributed.Nanny`` to keep dask's setting.
    """
    validation.boolean(interactive, "interactive")
    validation.boolean(start_client, "start_client")
    if n_workers is not None:
        validation.scalar(n_workers, "n_workers", lims=(1, float("inf")))
    if mem_per_worker is not None:
        validation.mem_spec(mem_per_worker)
    validation.scalar(threads_per_worker, "threads_per_worker", lims=(1, float("inf")))
    check_main_guard()
    from distributed import Client, LocalCluster

    options: dict[str, Any] = {"threads_per_worker": threads_per_worker,
                               "dashboard_address": dashboard_address, "host": "127.0.0.1"}
    if n_workers is not None:
        options["n_workers"] = int(n_workers)
    if mem_per_worker is not None:
        options["memory_limit"] = mem_per_worker
    if cluster_options.get("processes", True) and "worker_class" not in cluster_options:
        from acme_core.worker_malloc import ReusingNanny

        # workers keep freed memory for the next call's arrays (see worker_malloc)
        options["worker_class"] = ReusingNanny
    options.update(cluster_options)
    cluster = LocalCluster(**options)
    if not start_client:
        return cluster
    client = Client(cluster)
    log.info("Local parallel computing client ready, dashboard accessible at %s",
             client.dashboard_link)
    return client


def is_dask_client(obj: Any) -> bool:
    """Whether ``obj`` is a ``distributed.Client``."""
    from distributed import Client

    return isinstance(obj, Client)


def cluster_cleanup(client: Any = None) -> None:
    """Stop a dask client and the cluster behind it (the running one by default).

    Parameters
    ----------
    client : distributed.Client, optional
        The client to stop; None stops the client running in this process, if any.
    """
    from distributed import Client

    if client is None:
        from acme_backends.dask_client import current_client

        client = current_client()
        if client is None:
            log.warning("No dangling clients or clusters found.")
            return
    if not isinstance(client, Client):
        raise TypeError(f"<cluster_cleanup> `client` has to be a dask client object, not {type(client)}")
    cluster = client.cluster
    n_workers = len(cluster.workers) if cluster is not None and hasattr(cluster, "workers") else 0
    desc = (f"{type(cluster).__name__} hosted on {client.scheduler.address}" if cluster is not None
            else f"client of scheduler {client.scheduler.address}")
    if cluster is None:
        # Connected by address: we cannot stop the cluster, only tell it to shut down.
        try:
            client.shutdown()
        except Exception as exc:  # pragma: no cover - depends on the remote side
            log.warning("Could not gracefully shut down cluster: %s", exc)
    else:
        client.close()
        try:
            cluster.close()
        except Exception as exc:  # pragma: no cover - depends on the cluster type
            log.warning("Could not gracefully shut down cluster: %s", exc)
    log.info("Successfully shut down %s containing %d workers", desc, n_workers)
