"""The ``"dask-local"`` backend: a dask ``LocalCluster`` on this machine."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar

from acme_backends.dask_client import DaskClientExecutor


class DaskLocalExecutor(DaskClientExecutor):
    """Start a local dask cluster (worker processes on this machine) and run on it.

    Parameters
    ----------
    n_workers : int or "auto"
        Number of worker processes; ``"auto"`` lets dask choose from the cores.
    mem_per_worker : str
        Memory limit per worker, e.g. ``"2GB"`` (``"auto"``: dask's default).
    threads_per_worker : int
        Threads in each worker process (1: the calls run in parallel processes).
    **cluster_options
        Passed to :func:`acme_core.local_cluster_setup` / ``LocalCluster``.
    """

    name: ClassVar[str] = "dask-local"
    #: worker processes re-import the user's script: ParallelMap checks the main guard
    starts_local_processes: ClassVar[bool] = True
    owns_resources = True
    #: local_cluster_setup logs the dashboard link when the cluster is up
    announces_dashboard = True

    def __init__(self, n_workers: int | str = "auto", mem_per_worker: str = "auto",
                 threads_per_worker: int = 1, **cluster_options: Any) -> None:
        from acme_core.clusters import local_cluster_setup

        client = local_cluster_setup(
            n_workers=None if isinstance(n_workers, str) else n_workers,
            mem_per_worker=None if mem_per_worker == "auto" else mem_per_worker,
            threads_per_worker=threads_per_worker, interactive=False, **cluster_options)
        super().__init__(client)

    @classmethod
    def planned_workers(cls, options: Mapping[str, Any]) -> int | None:
        """``n_workers`` when given, else dask's choice: one worker per core here."""
        n = options.get("n_workers")
        if isinstance(n, int) and not isinstance(n, bool) and n > 0:
            return n
        return os.cpu_count()

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> None:
        """Reject keywords neither we nor LocalCluster/Nanny/Worker know, before starting.

        LocalCluster forwards unknown keywords to its worker processes, where they
        fail only after the cluster started; checking here fails early and clearly.
        """
        import inspect

        from distributed import LocalCluster, Nanny, Worker

        known = set(inspect.signature(cls).parameters)
        for target in (LocalCluster, Nanny, Worker):
            known |= {name for name, p in inspect.signature(target).parameters.items()
                      if p.kind is not p.VAR_KEYWORD}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(f"unexpected keyword argument(s) {unknown} for LocalCluster")
