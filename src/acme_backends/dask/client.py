"""Executors on a dask ``distributed`` client, and stopping a client with its cluster.

:class:`DaskClientExecutor` runs on a client it is given (or the one already
running in the process): it attaches and leaves the client alone at the end.
Subclasses that start a cluster (:class:`~acme_backends.dask.local.DaskLocalExecutor`,
the job-queue backends) pass the client they started and set ``owns_resources``.

Why not ``distributed``'s own ``ClientExecutor`` (``client.get_executor()``)? It
turns dask futures into ``concurrent.futures`` futures, and acme-core needs the
dask ones: :meth:`~DaskClientExecutor.broadcast` hands a scattered future to
``submit``, :meth:`~DaskClientExecutor.gather` fetches many results in one round
trip from their ``status``, and :meth:`~DaskClientExecutor.lost_worker` recognises
dask's ``KilledWorker``. Its ``shutdown`` also closes the client unconditionally.

:func:`cluster_cleanup` lives here, not with the local cluster, because
:meth:`DaskClientExecutor.shutdown` needs it for every kind of cluster.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, ClassVar

from acme_core.errors import ArgumentTypeError, ArgumentValueError

__all__ = [
    "DaskClientExecutor",
    "SysPathPlugin",
    "cluster_cleanup",
    "current_client",
    "is_dask_client",
    "sys_path_plugin",
]

log = logging.getLogger("acme")

#: client -> the sys.path its workers were given (see DaskClientExecutor._prepare_workers)
_REGISTERED: weakref.WeakKeyDictionary[Any, list[str]] = weakref.WeakKeyDictionary()


def current_client() -> Any:
    """The dask client running in this process, or None (never starts one)."""
    from distributed import get_client

    try:
        client = get_client()
    except ValueError:  # distributed's way of saying "no client"
        return None
    return client if client.status == "running" else None


def is_dask_client(obj: object) -> bool:
    """Whether ``obj`` is a ``distributed.Client``."""
    from distributed import Client

    return isinstance(obj, Client)


def cluster_cleanup(client: Any = None) -> None:
    """Stop a dask client and the cluster behind it (the running one by default).

    Parameters
    ----------
    client : distributed.Client, optional
        The client to stop; None stops the client running in this process, if any
        (and says so when there is none).

    Raises
    ------
    ArgumentTypeError
        ``client`` is not a dask client.
    """
    if client is None:
        client = current_client()
        if client is None:
            log.warning("No dangling clients or clusters found.")
            return
    if not is_dask_client(client):
        raise ArgumentTypeError(
            f"<cluster_cleanup> `client` has to be a dask client object, not {type(client)}",
            parameter="client")
    cluster = client.cluster
    n_workers = len(cluster.workers) if cluster is not None and hasattr(cluster, "workers") else 0
    desc = (f"{type(cluster).__name__} hosted on {client.scheduler.address}" if cluster is not None
            else f"client of scheduler {client.scheduler.address}")
    if cluster is None:
        # connected by address: the cluster is not ours to close, only to ask to shut down
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


def _set_sys_path(paths: list[str]) -> None:
    for path in reversed(paths):
        if path not in sys.path:
            sys.path.insert(0, path)


class SysPathPlugin:
    """Worker plugin giving workers the caller's ``sys.path`` (ACME does the same).

    Functions imported from a module next to the user's script (not installed)
    can then be unpickled on the workers.
    """

    name = "acme-sys-path"

    def __init__(self, paths: list[str]) -> None:
        self.paths = paths

    def setup(self, worker: Any) -> None:
        _set_sys_path(self.paths)

    def teardown(self, worker: Any) -> None:  # pragma: no cover - nothing to undo
        pass


def sys_path_plugin(paths: list[str]) -> Any:
    """A :class:`SysPathPlugin` that distributed accepts.

    distributed refuses duck-typed plugins, but importing it at module level would
    make listing the backends import dask; so the WorkerPlugin subclass is made here.
    Worker processes started by a LocalCluster inherit ``sys.path`` anyway; batch-job
    workers (SLURM, PBS, SGE) only get it through this plugin.
    """
    from distributed.diagnostics.plugin import WorkerPlugin

    class _SysPathWorkerPlugin(SysPathPlugin, WorkerPlugin):
        pass

    return _SysPathWorkerPlugin(paths)


class DaskClientExecutor:
    """Run tasks on an existing dask client.

    Parameters
    ----------
    client : distributed.Client, optional
        The client to use; by default the client running in this process.

    Raises
    ------
    ArgumentValueError
        No client is given and none is running.
    """

    name: ClassVar[str] = "dask"
    #: attached to a client the user brought: shutdown() leaves it running
    owns_resources: bool = False
    #: whether starting the cluster already logged the dashboard link (ParallelMap
    #: logs it otherwise)
    announces_dashboard: ClassVar[bool] = False

    def __init__(self, client: Any = None) -> None:
        if client is None:
            client = current_client()
            if client is None:
                raise ArgumentValueError(
                    "`backend` 'dask' attaches to a running dask client, but none is running; "
                    "start one (e.g. acme_core.local_cluster_setup()) or use backend='dask-local'",
                    parameter="backend")
            log.info("Attaching to parallel computing client %s", client)
        self.client: Any = client
        self._prepared = False

    # -- concurrent.futures shape -------------------------------------------
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` on a worker; a ``distributed.Future``."""
        self._prepare_workers()
        # pure=False: calls with identical arguments must each run (ACME dedups them)
        return self.client.submit(fn, *args, pure=False, **kwargs)

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any], timeout: float | None = None,
            chunksize: int = 1) -> Iterator[Any]:
        """``concurrent.futures.Executor.map`` on :meth:`submit` (acme-core itself does not use it)."""
        futures = [self.submit(fn, *args) for args in zip(*iterables, strict=False)]

        def results() -> Iterator[Any]:
            for future in futures:
                yield future.result(timeout=timeout)

        return results()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the client and its cluster if this executor started them; safe to call twice.

        A client the executor attached to (``owns_resources`` False) keeps running.
        """
        client, self.client = self.client, None
        if client is None or not self.owns_resources:
            return
        cluster_cleanup(client)

    def stop_borrowed(self) -> None:
        """Stop the client (and its cluster) although the user started it (ACME's
        ``stop_client=True``)."""
        client, self.client = self.client, None
        if client is not None:
            cluster_cleanup(client)

    def __enter__(self) -> DaskClientExecutor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    # -- optional capabilities (acme_core.executor) -------------------------
    def broadcast(self, value: Any) -> Any:
        """Send ``value`` to every worker once; tasks receive it through the future."""
        self._prepare_workers()
        # hash=False: a fresh key per run, so a later run on the same client never
        # depends on data an earlier run released ("computation on lost data").
        return self.client.scatter(value, broadcast=True, hash=False)

    def gather(self, futures: list[Any]) -> list[tuple[bool, Any]]:
        """Results of finished ``futures`` in one round trip: ``(True, value)`` or ``(False, exc)``.

        ``Future.result()`` fetches one result per round trip; a batch of chunks
        that finished together comes back at once here.
        """
        finished = [f for f in futures if f.status == "finished"]
        values: dict[Any, Any] = {}
        if finished:
            try:
                values = dict(zip(finished, self.client.gather(finished), strict=True))
            except Exception:  # e.g. a worker died meanwhile: ask each future on its own
                values = {}
        out: list[tuple[bool, Any]] = []
        for future in futures:
            if future in values:
                out.append((True, values[future]))
                continue
            try:
                out.append((True, future.result()))
            except Exception as exc:
                out.append((False, exc))
        return out

    @classmethod
    def planned_workers(cls, options: Mapping[str, Any]) -> int | None:
        """The workers of the client the executor will attach to (None: no client running)."""
        client = options.get("client") or current_client()
        if client is None:
            return None
        try:
            return len(client.scheduler_info(n_workers=-1).get("workers", {})) or None
        except Exception:  # a client that lost its scheduler
            return None

    def worker_count(self) -> int:
        """How many workers the client's scheduler knows now."""
        return len(self.client.scheduler_info(n_workers=-1).get("workers", {}))

    def lost_worker(self, exc: BaseException) -> bool:
        """Whether a task failed because the workers running it died.

        dask already reruns a task whose worker died; after a few deaths it gives
        up with ``KilledWorker``, which ParallelMap then resubmits itself.
        """
        from distributed.comm.core import CommClosedError
        from distributed.scheduler import KilledWorker

        return isinstance(exc, (KilledWorker, CommClosedError))

    def broadcast_lost(self, handle: Any) -> bool:
        """Whether a :meth:`broadcast` value is gone (every worker holding it died)."""
        return getattr(handle, "status", "finished") != "finished"

    def wait_for_workers(self, n: int, timeout: float) -> None:
        """Block until ``n`` workers are up (``TimeoutError`` after ``timeout`` s)."""
        self.client.wait_for_workers(n, timeout=timeout)

    @property
    def dashboard_link(self) -> str | None:
        """The dashboard URL of the client's cluster, or None."""
        try:
            return str(self.client.dashboard_link)
        except Exception:
            return None

    def _prepare_workers(self) -> None:
        if self._prepared:
            return
        self._prepared = True
        paths = list(sys.path)
        # Registering waits for every worker; a client reused by many ParallelMaps
        # (the common case in notebooks and tests) needs it only when sys.path changed.
        # Workers that join later get the plugin from the scheduler anyway.
        try:
            if _REGISTERED.get(self.client) == paths:
                return
        except TypeError:  # pragma: no cover - a client that cannot be weakly referenced
            pass
        try:
            self.client.register_plugin(sys_path_plugin(paths), name=SysPathPlugin.name)
        except Exception as exc:  # pragma: no cover - old distributed versions
            log.debug("could not forward sys.path to the workers: %s", exc)
            return
        with contextlib.suppress(TypeError):
            _REGISTERED[self.client] = paths

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.client!r})"
