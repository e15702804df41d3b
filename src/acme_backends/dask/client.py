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

from acme_core.errors import ArgumentTypeError, ArgumentValueError, WorkerLostError

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


#: seconds to fetch the results of finished tasks before asking for each on its own
FETCH_TIMEOUT = 30.0


def _host_and_pid() -> tuple[str, int]:
    """Run on a worker: where it runs (the task code reports the same pair)."""
    import os
    import socket

    return socket.gethostname(), os.getpid()


def _last_worker(exc: BaseException) -> str | None:
    """The address of the last worker a ``KilledWorker`` names (None: not one)."""
    worker = getattr(exc, "last_worker", None)
    address = getattr(worker, "address", worker)
    return address if isinstance(address, str) else None


def _size(value: object) -> str:
    from dask.utils import format_bytes

    return str(format_bytes(int(value))) if isinstance(value, (int, float)) else "?"


def _exit_words(code: object) -> str | None:
    """A worker process's exit code in words (negative: killed by that signal)."""
    if not isinstance(code, int):
        return None
    if code < 0:
        return f"worker killed by signal {-code}"
    return f"worker exited with exit code {code}"


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
        #: workers seen so far (address -> pid, host), to name one that disappears
        self._seen: dict[str, dict[str, Any]] = {}

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

    @classmethod
    def check_sendable(cls, value: Any) -> None:
        """ChecksSendable: raise TypeError when dask cannot send ``value`` to the workers.

        dask's own serializers come first (a read-only ``h5py.Dataset`` travels by
        reference), then pickle, as when the value is broadcast.
        """
        from distributed.protocol.serialize import serialize

        quiet = logging.getLogger("distributed.protocol.pickle")
        level = quiet.level
        quiet.setLevel(logging.CRITICAL)  # the failure is ours to report, by name
        try:
            serialize(value, serializers=("dask", "pickle"), on_error="raise")
        finally:
            quiet.setLevel(level)

    def gather(self, futures: list[Any]) -> list[tuple[bool, Any]]:
        """Results of finished ``futures`` in one round trip: ``(True, value)`` or ``(False, exc)``.

        ``Future.result()`` fetches one result per round trip; a batch of chunks
        that finished together comes back at once here. Never blocks on a future
        that is not done: a result lost with its worker before it was fetched (dask
        then quietly computes it again) is reported as lost, and acme-core runs
        those calls again itself.
        """
        finished = [f for f in futures if f.status == "finished"]
        values: dict[Any, Any] = {}
        if finished:
            try:
                values = dict(zip(finished, self._fetch(finished), strict=True))
            except Exception:  # e.g. a worker died meanwhile: ask each future on its own
                values = {}
        return [(True, values[f]) if f in values else self._outcome(f) for f in futures]

    def _fetch(self, futures: list[Any]) -> list[Any]:
        """``Client.gather`` with a time limit.

        When a result is lost with its worker before it is fetched, ``Client.gather``
        quietly waits for dask to compute it again, which may never happen while
        workers keep dying; the driver must not block on it. ``gather`` takes no
        time limit, so its coroutine runs through ``Client.sync`` with one (the one
        private name this module uses).
        """
        return list(self.client.sync(self.client._gather, futures,
                                     callback_timeout=FETCH_TIMEOUT))

    @staticmethod
    def _outcome(future: Any) -> tuple[bool, Any]:
        """One future's outcome, without waiting for a result that is not there."""
        if future.status in ("error", "cancelled"):
            try:
                return False, future.exception(timeout=5)
            except Exception as exc:
                return False, exc
        if future.status == "finished":
            try:
                return True, future.result(timeout=FETCH_TIMEOUT)
            except TimeoutError:  # lost meanwhile, and dask waits for it to be recomputed
                pass
            except Exception as exc:
                return False, exc
        future.cancel()  # dask would compute it again; acme-core reruns its calls instead
        return False, WorkerLostError(f"the result of task {future.key} was lost with its "
                                      "worker before it could be fetched")

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
        """How many workers the client's scheduler knows now (a worker gone is named)."""
        workers = self.client.scheduler_info(n_workers=-1).get("workers", {})
        gone = [address for address in self._seen if address not in workers]
        for address in gone:
            info = self._seen.pop(address)
            log.warning("Worker %s (%s on %s) is gone: its calls run elsewhere", address,
                        info.get("name", "?"), info.get("host", "?"))
        for address, info in workers.items():
            self._seen.setdefault(address, {"name": info.get("name"), "host": info.get("host")})
        return len(workers)

    def lost_worker_cause(self, exc: BaseException) -> str | None:
        """Why the last worker of a task that raised ``exc`` died, from the scheduler's events.

        A nanny over its memory limit reports it (distributed does); acme-core's local
        nannies also report the exit code or signal of any worker that ended.
        """
        from acme_backends.dask.malloc import WORKER_EXIT_TOPIC

        address = _last_worker(exc)
        if address is None:
            return None
        event = self._memory_event(address)
        if event is not None:
            return f"it exceeded its memory limit (RSS {_size(event.get('rss'))})"
        for _, event in reversed(self.client.get_events(WORKER_EXIT_TOPIC)):
            if isinstance(event, dict) and event.get("worker") == address:
                return _exit_words(event.get("exitcode"))
        return None

    def memory_exceeded(self, exc: BaseException) -> bool:
        """Whether the last worker of a task that raised ``exc`` went over its memory limit."""
        address = _last_worker(exc)
        return address is not None and self._memory_event(address) is not None

    def _memory_event(self, address: str) -> dict[str, Any] | None:
        """The nanny's report that worker ``address`` was restarted for its memory, or None."""
        for _, event in reversed(self.client.get_events("worker-restart-memory")):
            if isinstance(event, dict) and event.get("worker") == address:
                return event
        return None

    def replace_worker(self, host: str, pid: int) -> bool:
        """Restart the worker process ``pid`` on ``host`` (a call is stuck in it)."""
        try:
            where = self.client.run(_host_and_pid, on_error="ignore")
        except Exception:  # workers coming and going: try again next time
            return False
        matches = [address for address, answer in where.items()
                   if isinstance(answer, tuple) and answer == (host, pid)]
        if not matches:
            return False
        try:
            status = self.client.restart_workers(matches, raise_for_error=False)
        except Exception as exc:  # a worker without a nanny cannot be restarted
            log.debug("could not restart %s: %s", matches, exc)
            return False
        return all(value == "OK" for value in dict(status).values())

    def lost_worker(self, exc: BaseException) -> bool:
        """Whether a task failed because the workers running it died.

        dask already reruns a task whose worker died; after a few deaths it gives
        up with ``KilledWorker``, which ParallelMap then resubmits itself.
        """
        from distributed.comm.core import CommClosedError
        from distributed.scheduler import KilledWorker

        return isinstance(exc, (KilledWorker, CommClosedError, WorkerLostError))

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
