"""The Executor protocol: what ParallelMap needs from a backend.

An executor has the shape of :class:`concurrent.futures.Executor`: ``submit``,
``map``, ``shutdown`` and use as a context manager. A
:class:`~concurrent.futures.ThreadPoolExecutor` subclass with a ``name`` is a
valid executor; so is anything whose ``submit`` returns an object with
``result()``, ``cancel()``, ``done()`` and ``add_done_callback()`` (a
``distributed.Future`` qualifies).

ParallelMap also uses these *optional* members when present:

``broadcast(value) -> handle``
    Send ``value`` to every worker once and return a handle that ``submit``
    resolves back into the value on the worker. Without it, shared arguments are
    passed along with every task.
``worker_count() -> int``
    How many workers are up (for logging and chunk sizing).
``owns_resources``
    ``True`` when the executor started what it runs on (and ``shutdown()`` stops
    it); ``False`` when it attached to something the user brought. With
    ``stop_client="auto"`` ParallelMap shuts down only executors that own their
    resources.
``dashboard_link``
    A URL to show the user.
``requires``
    A class attribute mapping optional modules to the pip extra that installs
    them (``{"dask_jobqueue": "jobqueue"}``). ParallelMap imports them before
    anything starts, so a missing one fails early with the ``pip install`` command.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class FutureLike(Protocol):
    """The part of a future ParallelMap relies on."""

    def result(self, timeout: float | None = None) -> Any: ...

    def cancel(self) -> bool: ...

    def done(self) -> bool: ...

    def add_done_callback(self, fn: Callable[[Any], object]) -> None: ...


@runtime_checkable
class Executor(Protocol):
    """A backend that runs tasks somewhere (see the module docstring)."""

    #: registry name, e.g. ``"dask-local"``
    name: str

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> FutureLike: ...

    def map(
        self, fn: Callable[..., Any], *iterables: Iterable[Any], timeout: float | None = None,
        chunksize: int = 1,
    ) -> Iterator[Any]: ...

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None: ...

    def __enter__(self) -> Any: ...

    def __exit__(self, *exc_info: Any) -> Any: ...


def owns_resources(executor: Any) -> bool:
    """Whether ``shutdown()`` of ``executor`` only stops what acme-core started."""
    return bool(getattr(executor, "owns_resources", True))


def worker_count(executor: Any) -> int | None:
    """The executor's number of workers, or None when it cannot tell."""
    count = getattr(executor, "worker_count", None)
    if callable(count):
        try:
            return int(count())
        except Exception:
            return None
    workers = getattr(executor, "_max_workers", None)  # concurrent.futures pools
    return int(workers) if isinstance(workers, int) else None
