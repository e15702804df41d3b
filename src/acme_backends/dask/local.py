"""A dask ``LocalCluster`` on this machine: ``local_cluster_setup`` and the ``"dask-local"`` backend.

Both check every keyword before a process starts. LocalCluster passes keywords
it does not know on to its workers, where they fail only after the cluster
started (``TypeError`` inside a worker, reported as "Nanny failed to start"), and
it checks the types of none, so :func:`check_cluster_options` does it first:
the names against the signatures of ``LocalCluster``, ``Nanny`` and ``Worker``,
and the types of the keywords users pass most.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Mapping
from typing import Any, ClassVar

from acme_backends import _checks
from acme_backends.dask.client import DaskClientExecutor
from acme_backends.dask.resources import local_resources
from acme_backends.dask.revive import WorkerReviver
from acme_backends.dask.scheduling import SCHEDULER_OPTIONS, one_task_per_thread
from acme_core.errors import ArgumentTypeError
from acme_core.main_guard import check_main_guard
from acme_core.plugins import did_you_mean

__all__ = ["DaskLocalExecutor", "check_cluster_options", "local_cluster_setup"]

log = logging.getLogger("acme")

_NONE = type(None)

#: LocalCluster keywords -> the types it works with, and those in words
KEYWORD_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "processes": ((bool, _NONE), "True or False"),
    "dashboard_address": ((str, _NONE), "an address such as '127.0.0.1:8787' (or None)"),
    "host": ((str, _NONE), "a host name or address"),
    "interface": ((str, _NONE), "a network interface name such as 'lo'"),
    "scheduler_port": ((int,), "a port number"),
    "worker_class": ((type, str), "a class such as distributed.Nanny"),
    "memory_limit": ((str, int, float, _NONE), "a size such as '2GB' or a number of bytes"),
}


def _keywords_taken() -> set[str]:
    """Every keyword LocalCluster takes itself or hands on to its Nanny and Worker."""
    from distributed import LocalCluster, Nanny, Worker

    known: set[str] = set()
    for target in (LocalCluster, Nanny, Worker):
        known |= {name for name, p in inspect.signature(target).parameters.items()
                  if p.kind is not p.VAR_KEYWORD}
    return known


def check_cluster_options(options: Mapping[str, Any], who: str) -> None:
    """Refuse ``options`` LocalCluster would fail on only after starting processes.

    Parameters
    ----------
    options : mapping
        Keywords on their way to ``distributed.LocalCluster``.
    who : str
        The function or class the user called, for the message.

    Raises
    ------
    ArgumentTypeError
        A keyword neither ``who`` nor LocalCluster, Nanny or Worker take (the
        message names it, with the closest known name), or a value of the wrong
        type for one of :data:`KEYWORD_TYPES`.
    """
    known = _keywords_taken()
    unknown = sorted(set(options) - known)
    if unknown:
        hints = "".join(did_you_mean(name, sorted(known)) for name in unknown)
        raise ArgumentTypeError(
            f"{who} got unexpected keyword argument(s) {unknown}: neither it nor dask's "
            f"LocalCluster, Nanny or Worker take them.{hints}", parameter=unknown[0])
    for name, (types, what) in KEYWORD_TYPES.items():
        if name in options:
            _checks.instance_of(options[name], name, types, what)




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
        Any other ``distributed.LocalCluster`` keyword (or one it hands on to its
        ``Nanny``/``Worker``). Any other keyword is a ``TypeError`` before a
        process starts.

    Returns
    -------
    distributed.Client or distributed.LocalCluster

    Notes
    -----
    The worker processes keep freed memory for reuse as a plain Python process
    does (glibc's ``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_``, see
    :mod:`acme_backends.dask.malloc`) instead of dask's immediate return, which makes
    every new array of 128 KiB and more cost page faults. Pass
    ``worker_class=distributed.Nanny`` to keep dask's setting.

    A worker that stops answering (stopped, hung) is given up after
    :data:`~acme_backends.dask.scheduling.FROZEN_WORKER_TTL` (dask: 5 minutes) and its calls
    run elsewhere;
    ``scheduler_kwargs={"worker_ttl": ...}`` sets another limit.
    """
    _checks.boolean(interactive, "interactive")
    _checks.boolean(start_client, "start_client")
    if n_workers is not None:
        _checks.count(n_workers, "n_workers")
    if mem_per_worker is not None:
        _checks.mem_spec(mem_per_worker)
    _checks.count(threads_per_worker, "threads_per_worker")
    _checks.instance_of(dashboard_address, "dashboard_address", (str, type(None)),
                        KEYWORD_TYPES["dashboard_address"][1])
    check_cluster_options(cluster_options, "local_cluster_setup()")
    check_main_guard()
    from distributed import Client, LocalCluster

    options: dict[str, Any] = {"threads_per_worker": int(threads_per_worker),
                               "dashboard_address": dashboard_address, "host": "127.0.0.1"}
    if n_workers is not None:
        options["n_workers"] = int(n_workers)
    if mem_per_worker is not None:
        options["memory_limit"] = mem_per_worker
    if cluster_options.get("processes", True) and "worker_class" not in cluster_options:
        from acme_backends.dask.malloc import ReusingNanny

        # workers keep freed memory for the next call's arrays (see dask.malloc)
        options["worker_class"] = ReusingNanny
    options.update(cluster_options)
    # frozen workers given up after a minute, lost tasks retried once (dask.scheduling)
    options["scheduler_kwargs"] = {**SCHEDULER_OPTIONS,
                                   **dict(options.get("scheduler_kwargs") or {})}
    with one_task_per_thread():
        # distributed's constructors are untyped: the client and cluster are Any from here
        cluster = LocalCluster(**options)  # type: ignore[no-untyped-call]
    if not start_client:
        return cluster
    client = Client(cluster)  # type: ignore[no-untyped-call]
    log.info("Local parallel computing client ready, dashboard accessible at %s",
             client.dashboard_link)
    return client


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
    resources : dict, optional
        ParallelMap's ``{"cores": ..., "gpus": ..., "mem": ...}`` per worker, mapped
        onto this machine (:mod:`acme_backends.dask.resources`); a request it cannot
        satisfy is refused before a process starts.
    **cluster_options
        Passed to :func:`local_cluster_setup` / ``LocalCluster``.

    Raises
    ------
    ArgumentTypeError, ArgumentValueError
        A keyword is unknown or its value wrong; raised before a process starts.
    """

    name: ClassVar[str] = "dask-local"
    #: worker processes re-import the user's script: ParallelMap checks the main guard
    starts_local_processes: ClassVar[bool] = True
    owns_resources = True
    #: local_cluster_setup logs the dashboard link when the cluster is up
    announces_dashboard: ClassVar[bool] = True

    _OWN: ClassVar[frozenset[str]] = frozenset({"n_workers", "mem_per_worker",
                                                 "threads_per_worker", "resources"})

    def __init__(self, n_workers: int | str = "auto", mem_per_worker: str = "auto",
                 threads_per_worker: int = 1, resources: dict[str, Any] | None = None,
                 **cluster_options: Any) -> None:
        workers, memory = self._own_options(n_workers, mem_per_worker)
        wanted = local_resources(resources, workers, memory)
        if wanted.env:
            cluster_options["env"] = {**wanted.env, **dict(cluster_options.get("env") or {})}
        if wanted.worker_resources:
            cluster_options.setdefault("resources", dict(wanted.worker_resources))
        self._reviver = WorkerReviver()
        client = local_cluster_setup(
            n_workers=wanted.n_workers, mem_per_worker=wanted.memory,
            threads_per_worker=threads_per_worker, interactive=False, **cluster_options)
        super().__init__(client)

    @staticmethod
    def _own_options(n_workers: Any, mem_per_worker: Any) -> tuple[int | None, str | None]:
        """``n_workers`` and ``mem_per_worker`` checked, with ``"auto"`` as None (dask decides)."""
        memory = _checks.mem_spec(mem_per_worker)
        return _checks.workers(n_workers), None if memory == "auto" else memory

    @classmethod
    def planned_workers(cls, options: Mapping[str, Any]) -> int | None:
        """``n_workers`` when given, else dask's choice: one worker per core here."""
        n = options.get("n_workers")
        if isinstance(n, int) and not isinstance(n, bool) and n > 0:
            return n
        return os.cpu_count()

    def worker_count(self) -> int:
        """How many workers are up now, after restarting those the cluster gave up on."""
        self._revive_lost_workers()
        return super().worker_count()

    def restore_workers(self) -> int:
        """RestoresWorkers: start the workers the cluster lost for good; how many."""
        return self._revive_lost_workers()

    def _revive_lost_workers(self) -> int:
        """Start again the workers the LocalCluster dropped for good (:mod:`.revive`).

        ParallelMap asks :meth:`worker_count` every tick, so this runs often.
        """
        return self._reviver(getattr(self.client, "cluster", None))

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> None:
        """Refuse what ``cls(**options)`` would fail on, before anything starts.

        The same checks as :func:`local_cluster_setup` (unknown keywords, wrong
        types), plus this class's own ``n_workers`` and ``mem_per_worker``.
        """
        workers, memory = cls._own_options(options.get("n_workers", "auto"),
                                           options.get("mem_per_worker", "auto"))
        local_resources(options.get("resources"), workers, memory)
        if "threads_per_worker" in options:
            _checks.count(options["threads_per_worker"], "threads_per_worker")
        rest = {k: v for k, v in options.items() if k not in cls._OWN}
        check_cluster_options(rest, f"{cls.__name__} ({cls.name!r})")
