"""ACME's ``ParallelMap`` and ``ACMEdaemon`` on acme-core.

:class:`ParallelMap` is :class:`acme_core.ParallelMap` (every keyword, every
behaviour) plus ACME's ``daemon``: in ACME, ``with ParallelMap(...) as pmap``
bound an ``ACMEdaemon`` that ran the calls and held the dask client, and code
such as Syncopy reads ``pmap.daemon.client``. Here ``with`` binds the
ParallelMap itself (its ``compute()`` returns the results, as the daemon's
did), and ``pmap.daemon`` is a small view of the same run.
"""

from __future__ import annotations

from typing import Any

import acme_core
from acme_core.errors import ArgumentTypeError, UsageError

__all__ = ["ACMEdaemon", "ParallelMap"]

#: ``backend`` values with which a run attaches to the dask client running in this
#: process when there is one (acme-core's documented ``backend="auto"``)
ATTACHING_BACKENDS = ("auto", "dask")


def running_client() -> Any:
    """The dask client running in this process, or None (never starts one)."""
    from distributed import get_client

    try:
        client = get_client()
    except ValueError:
        return None
    return client if client.status == "running" else None


class ParallelMap(acme_core.ParallelMap):
    """ACME's ``ParallelMap``: :class:`acme_core.ParallelMap` with ACME's ``daemon``.

    Every parameter is :class:`acme_core.ParallelMap`'s (ACME's keywords keep
    ACME's meaning; ``pmap.kwargv`` edits before ``compute()`` are honoured).

    Attributes
    ----------
    daemon : ACMEdaemon
        ACME's daemon view of this run: ``daemon.client`` is the dask client the
        run uses, ``daemon.compute()`` runs it.

    Examples
    --------
    >>> from acme import ParallelMap
    >>> def f(x, y, z=3):
    ...     return (x + y) * z
    >>> with ParallelMap(f, [2, 4, 6, 8], 4, write_worker_results=False) as pmap:  # doctest: +SKIP
    ...     pmap.compute()
    [18, 24, 30, 36]
    """

    def __init__(self, func: Any, *args: Any, **kwargs: Any) -> None:
        backend = kwargs.get("backend", "auto")
        super().__init__(func, *args, **_acme_layout(kwargs))
        # which client daemon.client may name before the run starts (see there)
        self._compat_backend = backend
        self.daemon = ACMEdaemon(self)


def _acme_layout(kwargs: dict[str, Any]) -> dict[str, Any]:
    """ACME's layout on the ``"hdf5"`` store for any number of calls.

    ACME code opens ``comp_<i>`` in the container and the per-call files that
    ``compute()`` returns; acme-core's ``"hdf5"`` store writes runs of 10,000 calls
    or more in shards (``shard_calls="auto"``), which have neither. Under
    ``import acme`` the per-call layout stays unless the code asks for shards.
    """
    flags = (kwargs.get("write_worker_results", True), kwargs.get("write_pickle", False),
             kwargs.get("single_file", False))
    if kwargs.get("store") not in (None, "hdf5") or flags != (True, False, False):
        return kwargs
    options = dict(kwargs.get("store_options") or {})
    options.setdefault("shard_calls", False)
    return {**kwargs, "store_options": options}


class ACMEdaemon:
    """ACME's daemon of a :class:`ParallelMap`: the run seen as ACME's ``pmap.daemon``.

    Parameters
    ----------
    pmap : acme_core.ParallelMap
        The run (an :class:`acme.ParallelMap` or an :class:`acme_core.ParallelMap`).

    Raises
    ------
    TypeError
        ``pmap`` is not a ParallelMap (ACME's message).
    """

    def __init__(self, pmap: acme_core.ParallelMap) -> None:
        if not isinstance(pmap, acme_core.ParallelMap):
            raise ArgumentTypeError(f"`pmap` has to be a `ParallelMap` instance, not "
                                    f"{type(pmap)}", parameter="pmap")
        self.pmap = pmap

    @property
    def client(self) -> Any:
        """The dask client that runs (or will run) the calls.

        ACME started or attached to its client in the constructor; acme-core does
        so at the first ``compute()``. Before that, this is the client running in
        this process, which the run attaches to (``backend="auto"`` or
        ``"dask"``, acme-core's documented choice).

        Raises
        ------
        acme_core.errors.UsageError
            No client yet (none running, and the run has not started its own), or
            the run's backend is not a dask client.
        """
        executor = self.pmap.executor
        if executor is not None:
            return _client_of(executor)
        backend = getattr(self.pmap, "_compat_backend", "auto")
        if isinstance(backend, str) and backend in ATTACHING_BACKENDS:
            client = running_client()
            if client is not None:
                return client
        elif not isinstance(backend, (str, type)):  # an executor instance the user brought
            return _client_of(backend)
        raise UsageError(
            "`daemon.client`: this run has no dask client yet. acme-core starts the cluster at "
            "the first compute() (ACME started it in the constructor), and no client runs in "
            "this process to attach to. Start one first (e.g. `acme.local_cluster_setup()` "
            "or `acme.esi_cluster_setup(...)`), or read `daemon.client` after compute()")

    @property
    def results_container(self) -> str | None:
        """The run's aggregate container (None when the store has none)."""
        container: str | None = self.pmap.results_container
        return container

    def compute(self, debug: bool = False) -> Any:
        """Run the calls and return the results (:meth:`acme_core.ParallelMap.compute`)."""
        return self.pmap.compute(debug)

    def cleanup(self) -> None:
        """Stop the client as ``stop_client`` says (what leaving the ``with`` block does)."""
        self.pmap.cleanup()

    def __repr__(self) -> str:
        return f"ACMEdaemon({self.pmap.func_name})"


def _client_of(executor: Any) -> Any:
    """The dask client an executor runs on (a UsageError for executors without one)."""
    client = getattr(executor, "client", None)
    if client is None:
        raise UsageError(f"`daemon.client`: the run's backend {type(executor).__name__} runs "
                         "on no dask client")
    return client
