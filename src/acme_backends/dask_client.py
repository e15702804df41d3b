"""Executors on a dask ``distributed`` client.

:class:`DaskClientExecutor` runs on a client it is given (or the one already
running in the process): it attaches and, by default, leaves the client alone
at the end. Subclasses that start a cluster (local, SLURM, ...) only implement
:meth:`DaskClientExecutor._start`.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, ClassVar

log = logging.getLogger("acme")

#: client -> the sys.path its workers were given (see DaskClientExecutor._prepare_workers)
_REGISTERED: weakref.WeakKeyDictionary[Any, list[str]] = weakref.WeakKeyDictionary()


def current_client() -> Any:
    """The dask client running in this process, or None (never starts one)."""
    try:
        from distributed import get_client
    except ImportError:  # pragma: no cover - distributed is a core dependency
        return None
    try:
        client = get_client()
    except ValueError:
        return None
    return client if client.status == "running" else None


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
    """

    name: ClassVar[str] = "dask"
    #: attached to a client the user brought: shutdown() leaves it running
    owns_resources: bool = False
    #: whether starting the cluster already logged the dashboard link (ParallelMap
    #: logs it otherwise)
    announces_dashboard: bool = False

    def __init__(self, client: Any = None) -> None:
        if client is None:
            client = current_client()
            if client is None:
                raise ValueError(
                    "`backend` 'dask' attaches to a running dask client, but none is running; "
                    "start one (e.g. acme_core.local_cluster_setup()) or use backend='dask-local'")
            log.info("Attaching to parallel computing client %s", client)
        self.client = client
        self._prepared = False

    # -- concurrent.futures shape -------------------------------------------
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        self._prepare_workers()
        # pure=False: calls with identical arguments must each run (ACME dedups them)
        return self.client.submit(fn, *args, pure=False, **kwargs)

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any], timeout: float | None = None,
            chunksize: int = 1) -> Iterator[Any]:
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
        from acme_core.clusters import cluster_cleanup

        cluster_cleanup(client)

    def stop_borrowed(self) -> None:
        """Stop the client (and its cluster) even though the user started it (ACME's
        ``stop_client=True``)."""
        client, self.client = self.client, None
        if client is not None:
            from acme_core.clusters import cluster_cleanup

            cluster_cleanup(client)

    def __enter__(self) -> DaskClientExecutor:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.shutdown()

    # -- optional members ParallelMap uses ------------------------------------
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
        self.client.wait_for_workers(n, timeout=timeout)

    @property
    def dashboard_link(self) -> str | None:
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
