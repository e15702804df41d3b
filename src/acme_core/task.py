"""What runs on a worker: a chunk of calls, each with its own result and failure.

A dask task (or any executor task) runs :func:`run_chunk_calls` on a *chunk* of calls.
Every call is bound, run and written on its own; an exception in one call is
captured into its :class:`CallOutcome` and does not affect the others, so one
chunk can hold many short calls without losing per-call results, failures or
retries.
"""

from __future__ import annotations

import os
import pickle
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from acme_core.errors import CallTimeoutError, RemoteCallError
from acme_core.store import WritesChunks

#: keyword through which a function that declares it learns its call index
TASK_ID = "taskID"


@dataclass
class Shared:
    """Arguments every call shares, sent to each worker once when possible."""

    #: positional index -> value
    args: dict[int, Any] = field(default_factory=dict)
    #: keyword -> value
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Call:
    """One call's own (non-shared) arguments."""

    task_id: int
    #: positional index -> value
    args: dict[int, Any]
    kwargs: dict[str, Any]


@dataclass
class CallOutcome:
    """What one call produced: a reference to its stored result, or its error."""

    task_id: int
    ok: bool
    #: the store writer's reference (a path, or the value for in-memory stores)
    reference: Any = None
    error: BaseException | None = None
    #: the formatted remote traceback (text survives any pickling)
    traceback: str = ""
    seconds: float = 0.0
    host: str = ""
    pid: int = 0
    #: True when the call failed before the function ran (binding the arguments)
    binding_error: bool = False
    #: True when the whole task was lost with its worker (the call itself may be fine)
    worker_lost: bool = False


def assemble(n_args: int, shared: Shared, call: Call, pass_task_id: bool) -> tuple[list[Any], dict[str, Any]]:
    """Merge shared and per-call arguments into the call's ``(args, kwargs)``."""
    args = [call.args[i] if i in call.args else shared.args[i] for i in range(n_args)]
    kwargs = dict(shared.kwargs)
    kwargs.update(call.kwargs)
    if pass_task_id:
        kwargs[TASK_ID] = call.task_id
    return args, kwargs


def portable_exception(exc: BaseException) -> BaseException:
    """Return ``exc`` if it survives pickling, else a RemoteCallError with its text."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RemoteCallError(type(exc).__name__, str(exc))


@dataclass
class Chunk:
    """The calls one executor task runs, with their own arguments stored by column.

    Columns (one list per split argument) pickle as a few lists instead of one
    object per call, which keeps submitting 100,000 short calls cheap.
    """

    task_ids: list[int]
    #: positional index -> this chunk's values, one per call
    args: dict[int, list[Any]] = field(default_factory=dict)
    #: keyword -> this chunk's values, one per call
    kwargs: dict[str, list[Any]] = field(default_factory=dict)
    #: stop starting calls after this many seconds and hand the rest back (None: run all)
    budget: float | None = None
    #: seconds each call may run (None: no limit)
    timeout: float | None = None

    def __len__(self) -> int:
        return len(self.task_ids)


@dataclass
class ChunkResult:
    """What a chunk produced: the finished calls by column, the failed ones in full.

    Successful calls travel as two parallel lists (no object per call), so that
    collecting 100,000 short calls costs the driver little; failures keep their
    own :class:`CallOutcome` with error and traceback.
    """

    ok_ids: list[int]
    #: the store writer's reference for each of ``ok_ids``
    references: list[Any]
    failed: list[CallOutcome]
    #: seconds spent in the successful calls (function and write), for chunk sizing
    seconds: float = 0.0
    host: str = ""
    pid: int = 0
    #: calls not started because the chunk's time budget was spent (they run later)
    not_run: list[int] = field(default_factory=list)
    #: threads still stuck in calls that overran their time and could not be interrupted
    stuck: int = 0

    def outcomes(self) -> list[CallOutcome]:
        """Every call's :class:`CallOutcome` (successes get the chunk's mean duration)."""
        mean = self.seconds / len(self.ok_ids) if self.ok_ids else 0.0
        ok = [CallOutcome(i, True, reference=r, seconds=mean, host=self.host, pid=self.pid)
              for i, r in zip(self.ok_ids, self.references, strict=True)]
        return sorted(ok + self.failed, key=lambda o: o.task_id)


_HOST: str | None = None


def _hostname() -> str:
    """This machine's name, looked up once per worker process (not once per call)."""
    global _HOST
    if _HOST is None:
        _HOST = socket.gethostname()
    return _HOST


def run_chunk_calls(func: Callable[..., Any], writer: Any, n_args: int, pass_task_id: bool,
                    shared: Shared, chunk: Chunk) -> ChunkResult:
    """Run every call of ``chunk`` one after the other; never raises for a failing call.

    Every call is bound, run and written on its own; its exception goes into its
    own :class:`CallOutcome`. What all calls share (the positional template, the
    shared keywords, the writer's bound method) is prepared once per chunk.

    With ``chunk.budget``, no call starts once the chunk ran that long (the first
    always runs): the calls not started come back in ``not_run``. So a chunk can be
    sized generously before anything is known about the calls: long calls return
    after one call each, short ones all run in one task.

    With ``chunk.timeout``, every call has that many seconds (see
    :mod:`acme_core.timeouts`): one that overruns is stopped and fails with a
    :class:`~acme_core.errors.CallTimeoutError`; the others go on.
    """
    missing = [i for i in range(n_args) if i not in shared.args and i not in chunk.args]
    if missing:  # pragma: no cover - defensive: shapes are checked up front
        return _unbindable(chunk, KeyError(f"no value for positional argument(s) {missing}"))
    out = ChunkResult([], [], [], 0.0, _hostname(), os.getpid())
    if not isinstance(writer, WritesChunks):
        _run_chunk(func, writer, n_args, pass_task_id, shared, chunk, out)
        return out
    # a writer that keeps the task's calls together (acme_core.store.WritesChunks): its
    # calls count only once the writer made them durable
    start = time.perf_counter()
    try:
        writer.begin_chunk(list(chunk.task_ids))
        _run_chunk(func, writer, n_args, pass_task_id, shared, chunk, out)
        writer.end_chunk()
    except Exception as exc:
        _lose_written(out, exc, time.perf_counter() - start)
    return out


def _lose_written(out: ChunkResult, exc: Exception, seconds: float) -> None:
    """The writer could not keep the chunk's calls: each that had succeeded fails with ``exc``."""
    text = traceback.format_exc()
    error = portable_exception(exc)
    out.failed.extend(CallOutcome(i, False, error=error, traceback=text, host=out.host,
                                  pid=out.pid, seconds=seconds / max(len(out.ok_ids), 1))
                      for i in out.ok_ids)
    out.ok_ids, out.references, out.seconds = [], [], 0.0


def _run_chunk(func: Callable[..., Any], writer: Any, n_args: int, pass_task_id: bool,
               shared: Shared, chunk: Chunk, out: ChunkResult) -> None:
    """The calls of ``chunk``, recorded into ``out`` (see :func:`run_chunk_calls`)."""
    deadline = None if chunk.budget is None else time.perf_counter() + chunk.budget
    if chunk.timeout is None:
        _run_calls(func, writer, n_args, pass_task_id, shared, chunk, 0, deadline, out, None)
        return
    from acme_core import timeouts

    def run(first: int, watch: timeouts.Watch) -> None:
        _run_calls(func, writer, n_args, pass_task_id, shared, chunk, first, deadline, out,
                   watch)

    def overran(j: int) -> None:
        error = CallTimeoutError(chunk.task_ids[j], chunk.timeout or 0.0)
        out.failed.append(CallOutcome(chunk.task_ids[j], False, error=error,
                                      traceback=f"{error} (stuck in code that could not be "
                                                "interrupted)", host=out.host, pid=out.pid,
                                      seconds=chunk.timeout or 0.0))

    out.stuck = timeouts.run_guarded(run, len(chunk.task_ids), chunk.timeout, overran)


def _run_calls(func: Callable[..., Any], writer: Any, n_args: int, pass_task_id: bool,
               shared: Shared, chunk: Chunk, first: int, deadline: float | None,
               out: ChunkResult, watch: Any) -> None:
    """The calls ``chunk.task_ids[first:]``, recorded into ``out``.

    ``watch`` (a :class:`acme_core.timeouts.Watch`, or None) is told when each call
    starts and ends; a thread it gave up on stops recording.
    """
    write = writer.write
    template = [shared.args.get(i) for i in range(n_args)]
    split_args = list(chunk.args.items())
    split_kwargs = list(chunk.kwargs.items())
    shared_kwargs = shared.kwargs
    plain_kwargs = not (split_kwargs or shared_kwargs or pass_task_id)
    clock = time.perf_counter
    task_ids = chunk.task_ids
    for j in range(first, len(task_ids)):
        task_id = task_ids[j]
        start = clock()
        if deadline is not None and j and start > deadline:
            out.not_run.extend(task_ids[j:])
            return
        if watch is not None and not watch.begin(j, start):
            return  # given up on: another thread goes on with the calls
        try:
            args = template.copy()
            for index, values in split_args:
                args[index] = values[j]
            if plain_kwargs:
                kwargs: dict[str, Any] = {}
            else:
                kwargs = dict(shared_kwargs)
                for key, values in split_kwargs:
                    kwargs[key] = values[j]
                if pass_task_id:
                    kwargs[TASK_ID] = task_id
            value = func(*args, **kwargs)
            if watch is not None and watch.abandoned:
                return  # overran and was recorded as failed: its late value is not kept
            reference = write(task_id, value)
        except Exception as exc:  # the call's (or its write's) failure, not the chunk's
            if watch is not None:
                if not watch.end(j):
                    return
                exc = watch.explain(exc, task_id)
            out.failed.append(CallOutcome(
                task_id, False, error=portable_exception(exc), traceback=traceback.format_exc(),
                seconds=clock() - start, host=out.host, pid=out.pid,
                binding_error=_is_binding_error(exc)))
            continue
        if watch is not None and not watch.end(j):
            return
        out.seconds += clock() - start
        out.ok_ids.append(task_id)
        out.references.append(reference)


def _unbindable(chunk: Chunk, error: Exception) -> ChunkResult:
    """Every call of ``chunk`` failed before it ran: its arguments could not be bound."""
    host, pid = _hostname(), os.getpid()
    failed = [CallOutcome(i, False, error=error, traceback=repr(error), host=host, pid=pid,
                          binding_error=True) for i in chunk.task_ids]
    return ChunkResult([], [], failed, 0.0, host, pid)


def _is_binding_error(exc: BaseException) -> bool:
    """A TypeError raised by Python while binding the arguments to the function.

    Such an error is deterministic (retrying cannot help). It is recognised by
    its traceback: it was raised at the call site, so no frame of the called
    function follows ``run_chunk_calls``'s own.
    """
    tb = exc.__traceback__
    return isinstance(exc, TypeError) and tb is not None and tb.tb_next is None
