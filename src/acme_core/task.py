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

from acme_core.errors import RemoteCallError

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


def _portable(exc: BaseException) -> BaseException:
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
    """
    host, pid = _hostname(), os.getpid()
    write = writer.write
    template = [shared.args.get(i) for i in range(n_args)]
    split_args = list(chunk.args.items())
    split_kwargs = list(chunk.kwargs.items())
    shared_kwargs = shared.kwargs
    plain_kwargs = not (split_kwargs or shared_kwargs or pass_task_id)
    missing = [i for i in range(n_args) if i not in shared.args and i not in chunk.args]
    if missing:  # pragma: no cover - defensive: shapes are checked up front
        return _unbindable(chunk, KeyError(f"no value for positional argument(s) {missing}"))
    ok_ids: list[int] = []
    references: list[Any] = []
    failed: list[CallOutcome] = []
    busy = 0.0
    clock = time.perf_counter
    deadline = None if chunk.budget is None else clock() + chunk.budget
    task_ids = chunk.task_ids
    not_run: list[int] = []
    for j, task_id in enumerate(task_ids):
        start = clock()
        if deadline is not None and j and start > deadline:
            not_run = list(task_ids[j:])
            break
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
            reference = write(task_id, func(*args, **kwargs))
        except Exception as exc:  # the call's (or its write's) failure, not the chunk's
            failed.append(CallOutcome(
                task_id, False, error=_portable(exc), traceback=traceback.format_exc(),
                seconds=clock() - start, host=host, pid=pid,
                binding_error=_is_binding_error(exc)))
            continue
        busy += clock() - start
        ok_ids.append(task_id)
        references.append(reference)
    return ChunkResult(ok_ids, references, failed, busy, host, pid, not_run)


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
