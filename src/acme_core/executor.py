"""The executor contract: what ``ParallelMap`` needs from a backend, and what it may use.

A backend is a class registered through :func:`~acme_core.hookspecs.acme_register_executors`
and created as ``cls(**backend_options)``. This module is the whole contract; a
plugin author needs nothing else.

Required (:class:`Executor`)
----------------------------
``name``
    Class attribute: the registry name, e.g. ``"dask-local"``.
``submit(fn, /, *args, **kwargs) -> future``
    Run ``fn(*args, **kwargs)`` somewhere and return a future with ``result()``,
    ``cancel()``, ``done()`` and ``add_done_callback()`` (:class:`FutureLike`; a
    :class:`concurrent.futures.Future` and a ``distributed.Future`` qualify).
    ``fn`` and its arguments are picklable. Identical submissions must each run.
``shutdown(wait=True)``
    Release what the executor started. Safe to call several times; never stops
    anything the executor did not start (a client it attached to keeps running).

So a :class:`concurrent.futures.ThreadPoolExecutor` subclass with a ``name`` is an
executor. Nothing else is required: the core checks each optional capability
below with ``isinstance`` and does without it when it is missing.

Optional capabilities (runtime-checkable Protocols)
---------------------------------------------------
:class:`SupportsBroadcast`
    ``broadcast(value)`` sends the shared arguments to every worker once and returns
    a handle that ``submit`` turns back into the value on the worker;
    ``broadcast_lost(handle)`` tells whether every copy died with its workers.
    Without it, shared arguments travel with every task.
:class:`SupportsGather`
    ``gather(futures)`` fetches many finished results in one round trip, as
    ``(True, value)`` or ``(False, exception)`` pairs in the order given.
:class:`ReportsWorkers`
    ``worker_count()`` (sizes chunks and the submission window) and
    ``wait_for_workers(n, timeout)``.
:class:`DetectsLostWorkers`
    ``lost_worker(exc)``: whether a task failed because its worker died (its calls
    are then rerun elsewhere, one by one, so that a call that kills its worker fails
    alone) rather than because of a call.
:class:`ExplainsLostWorkers`
    ``lost_worker_cause(exc)``: why the worker died, in words (``"killed by signal
    9"``, ``"exceeded its memory limit"``, ``"exit code 1"``), for the error of the
    call that killed it.
:class:`RestoresWorkers`
    ``restore_workers()``: bring workers back when none is left (a cluster the
    executor started, whose processes died); returns how many it asked for.
    Called when no worker has been up for a few seconds.
:class:`ReplacesWorkers`
    ``replace_worker(host, pid)``: replace the worker process ``pid`` on ``host``,
    in which a call that overran its ``timeout`` is stuck in code that could not be
    interrupted; returns whether it did.
:class:`EscalatesMemory`
    ``memory_exceeded(exc)``: whether the worker of a task that raised ``exc`` was
    stopped for exceeding its memory; ``with_more_memory(level)``: an executor
    whose workers have more memory (``level`` 1, 2, ... asks for more each time;
    e.g. ``retry_memory_factor ** level`` times as much, up to the largest node),
    or ``None`` when there is no more to have or the user did not ask for it. A
    call that ran alone and exceeded its worker's memory runs again there, and the
    log says so. The executor owns what it returns and stops it in ``shutdown()``.
:class:`OwnsResources`
    ``owns_resources``: ``True`` when the executor started what it runs on. With
    ``stop_client="auto"``, ParallelMap shuts down only executors that own their
    resources. Without the attribute, an executor ParallelMap created is taken to
    own its resources and one the user passed in is not.
:class:`StopsBorrowed`
    ``stop_borrowed()``: stop what the executor attached to but did not start (a
    dask client the user started). ParallelMap calls it only for ACME's
    ``stop_client=True``; ``shutdown()`` never does this.
:class:`HasDashboard`
    ``dashboard_link``: a URL to show the user (``None`` when there is none).
:class:`ChecksOptions`
    Class method ``check_options(options)``: raise ``TypeError`` or ``ValueError``
    for options the class cannot take, *before* anything starts. ParallelMap calls
    it at construction with ``backend_options`` (and the ACME cluster keywords the
    class's signature names).
:class:`ChecksSendable`
    Class method ``check_sendable(value)``: raise ``TypeError`` when the executor
    could not send ``value`` (a shared argument) to its workers. For executors that
    broadcast with serializers of their own (dask sends a read-only ``h5py.Dataset``
    by reference); without it, shared arguments must pickle.
:class:`PlansWorkers`
    Class method ``planned_workers(options)``: how many workers an executor created
    with ``options`` will have, or ``None`` (the dry run's estimate uses it).
:class:`RunsDetached`
    Whole runs as batch jobs that outlive the driver (job arrays). The core writes
    the run's function, shared arguments and chunks of calls into the run directory
    (authenticated, see :mod:`acme_core.detached`) and asks the executor to run
    *elements*: ``submit_elements(command, count, name=, log_dir=)`` runs
    ``command + [str(first + k)]`` for every element and returns the
    :class:`ElementJob` s it submitted; ``element_states(jobs)`` answers, in **one**
    scheduler query, the state of every element the scheduler still lists;
    ``cancel_jobs(job_ids)`` cancels them; ``plan_elements(n_calls)`` says how
    many elements ``n_calls`` calls should be spread over; ``detached_options()``
    gives the JSON-able options that recreate the executor (``cls(**options)``) in
    a later process (``ParallelMap.attach``, ``acme wait``); optionally
    ``element_cause(job, k)`` says in words why element ``k`` of ``job`` ended
    early (for the log). With it,
    ``compute()`` runs through the same whole-run path and ``ParallelMap.submit()``
    returns once the jobs are queued.

Metadata (class attributes, all optional)
-----------------------------------------
``description`` (str)
    One line for ``acme plugins``.
``requires`` (dict[str, str])
    Optional modules -> the pip extra that installs them. ParallelMap imports them
    before anything starts, so a missing one fails early with the ``pip install`` command.
``starts_local_processes`` (bool, default ``False``)
    The executor starts worker processes on this machine that re-import the user's
    script; ParallelMap then checks for the ``if __name__ == "__main__":`` guard first.
``announces_dashboard`` (bool, default ``False``)
    Starting the executor already logged its dashboard link; ParallelMap does not
    repeat it.

ParallelMap also passes the ACME cluster keywords (``n_workers``, ``partition``,
``mem_per_worker``, ``setup_timeout``, ``setup_interactive``) and the run hints
``run_dir`` and ``n_calls`` to a class whose signature names them (a ``**kwargs``
catch-all does not count).
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

__all__ = [
    "ChecksOptions",
    "ChecksSendable",
    "DetectsLostWorkers",
    "ElementJob",
    "EscalatesMemory",
    "Executor",
    "ExplainsLostWorkers",
    "ExecutorInfo",
    "FutureLike",
    "HasDashboard",
    "OwnsResources",
    "PlansWorkers",
    "ReplacesWorkers",
    "ReportsWorkers",
    "RestoresWorkers",
    "RunsDetached",
    "SupportsBroadcast",
    "StopsBorrowed",
    "SupportsGather",
    "executor_info",
    "owns_resources",
    "worker_count",
]


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
    name: ClassVar[str]

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> FutureLike: ...

    def shutdown(self, wait: bool = True) -> None: ...


@runtime_checkable
class SupportsBroadcast(Protocol):
    """Shared arguments go to every worker once, not with every task."""

    def broadcast(self, value: Any) -> Any:
        """Send ``value`` to every worker; return a handle ``submit`` resolves on the worker."""
        ...

    def broadcast_lost(self, handle: Any) -> bool:
        """Whether every copy of a broadcast value died with its workers."""
        ...


@runtime_checkable
class SupportsGather(Protocol):
    """Many finished results in one round trip."""

    def gather(self, futures: list[Any]) -> list[tuple[bool, Any]]:
        """``(True, value)`` or ``(False, exception)`` for each of ``futures``, in order."""
        ...


@runtime_checkable
class ReportsWorkers(Protocol):
    """The executor knows how many workers it has and can wait for them."""

    def worker_count(self) -> int:
        """How many workers are up now."""
        ...

    def wait_for_workers(self, n: int, timeout: float) -> None:
        """Block until ``n`` workers are up; raise ``TimeoutError`` after ``timeout`` s."""
        ...


@runtime_checkable
class DetectsLostWorkers(Protocol):
    """The executor tells a dead worker from a failing call."""

    def lost_worker(self, exc: BaseException) -> bool:
        """Whether a task raised ``exc`` because its worker died."""
        ...


@runtime_checkable
class ExplainsLostWorkers(Protocol):
    """The executor knows why a worker died."""

    def lost_worker_cause(self, exc: BaseException) -> str | None:
        """Why the worker of a task that raised ``exc`` died, in words (None: unknown)."""
        ...


@runtime_checkable
class RestoresWorkers(Protocol):
    """The executor can bring its workers back when none is left."""

    def restore_workers(self) -> int:
        """Start workers again; return how many were asked for (0: it cannot now)."""
        ...


@runtime_checkable
class ReplacesWorkers(Protocol):
    """The executor can replace one worker process (a call is stuck in it)."""

    def replace_worker(self, host: str, pid: int) -> bool:
        """Replace worker process ``pid`` on ``host``; whether that happened."""
        ...


@runtime_checkable
class EscalatesMemory(Protocol):
    """The executor can run a call again on a worker with more memory."""

    def memory_exceeded(self, exc: BaseException) -> bool:
        """Whether the task that raised ``exc`` lost its worker to its memory limit."""
        ...

    def with_more_memory(self, level: int) -> Executor | None:
        """An executor with more memory per worker (None: no more to have)."""
        ...


@runtime_checkable
class OwnsResources(Protocol):
    """The executor says whether it started what it runs on."""

    owns_resources: bool


@runtime_checkable
class StopsBorrowed(Protocol):
    """The executor can stop what it attached to (ACME's ``stop_client=True``)."""

    def stop_borrowed(self) -> None:
        """Stop the resources the executor runs on although it did not start them."""
        ...


@runtime_checkable
class HasDashboard(Protocol):
    """The executor has a dashboard to show the user."""

    @property
    def dashboard_link(self) -> str | None: ...


@runtime_checkable
class ChecksOptions(Protocol):
    """The class checks its options before anything starts (checked on the class)."""

    def check_options(self, options: dict[str, Any]) -> None: ...


@runtime_checkable
class ChecksSendable(Protocol):
    """The class says whether it can send a value to its workers (checked on the class)."""

    def check_sendable(self, value: Any) -> None: ...


@runtime_checkable
class PlansWorkers(Protocol):
    """The class knows how many workers ``cls(**options)`` will have (checked on the class)."""

    def planned_workers(self, options: Mapping[str, Any]) -> int | None: ...


@dataclass(frozen=True)
class ElementJob:
    """One submitted job (an array job) running elements ``first .. first + count - 1``.

    Its own element ``k`` (0-based) runs the core's element ``first + k``.
    """

    job_id: str
    first: int
    count: int


@runtime_checkable
class RunsDetached(Protocol):
    """Whole runs as batch jobs that outlive the driver (see the module docstring)."""

    def submit_elements(self, command: list[str], count: int, *, name: str,
                        log_dir: str) -> list[ElementJob]:
        """Run ``command + [str(element)]`` for elements ``0 .. count - 1`` (``first``
        of each job added); return the jobs, once they are queued."""
        ...

    def element_states(self, jobs: list[ElementJob]) -> dict[str, dict[int, tuple[str, str]]]:
        """Job id -> its element ``k`` -> ``(state, reason)``, for the elements the scheduler
        still lists (``"PENDING"``, ``"RUNNING"``, ...), in one query for all ``jobs``.
        An element not listed has ended."""
        ...

    def cancel_jobs(self, job_ids: list[str]) -> None:
        """Cancel the jobs ``job_ids`` (every element of each)."""
        ...

    def plan_elements(self, n_calls: int) -> int:
        """How many elements ``n_calls`` calls are spread over."""
        ...

    def detached_options(self) -> dict[str, Any]:
        """JSON-able options that recreate this executor in a later process."""
        ...


@dataclass(frozen=True)
class ExecutorInfo:
    """The metadata class attributes of an executor class, with their defaults."""

    name: str
    description: str
    requires: Mapping[str, str]
    starts_local_processes: bool
    announces_dashboard: bool


def executor_info(cls: type[Any]) -> ExecutorInfo:
    """Read the documented metadata attributes of ``cls`` (see the module docstring).

    This is the one place that reads them: each is optional and has a default, so
    they are plain class attributes rather than a Protocol to satisfy.
    """
    return ExecutorInfo(
        name=str(getattr(cls, "name", "") or cls.__name__),
        description=str(getattr(cls, "description", "") or ""),
        requires=dict(getattr(cls, "requires", None) or {}),
        starts_local_processes=bool(getattr(cls, "starts_local_processes", False)),
        announces_dashboard=bool(getattr(cls, "announces_dashboard", False)),
    )


def owns_resources(executor: object, *, created_here: bool) -> bool:
    """Whether ``shutdown()`` of ``executor`` only stops what was started for this run.

    ``created_here``: ParallelMap created the executor (from a name or a class)
    rather than receiving an instance from the user.
    """
    if not created_here:
        return False
    if isinstance(executor, OwnsResources):
        return bool(executor.owns_resources)
    return True


def worker_count(executor: object) -> int | None:
    """The executor's number of workers, or None when it cannot tell."""
    if isinstance(executor, ReportsWorkers):
        try:
            return int(executor.worker_count())
        except Exception:  # a scheduler that does not answer right now
            return None
    if isinstance(executor, (concurrent.futures.ThreadPoolExecutor,
                             concurrent.futures.ProcessPoolExecutor)):
        # the standard library's pools know their size but say it only privately
        workers = vars(executor).get("_max_workers")
        return int(workers) if isinstance(workers, int) else None
    return None
