"""What runs on a worker: a chunk of calls, each with its own result and failure.

A dask task (or any executor task) runs :func:`run_calls` on a *chunk* of calls.
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

#: keyword through which a function that declares it learns its call index
TASK_ID = "taskID"


class RemoteCallError(Exception):
    """Stands in for a call's exception that could not be sent back (not picklable)."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        return (RemoteCallError, (self.type_name, self.message))


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


def run_calls(
    func: Callable[..., Any],
    writer: Any,
    n_args: int,
    pass_task_id: bool,
    shared: Shared,
    calls: Sequence[Call],
) -> list[CallOutcome]:
    """Run ``calls`` one after the other; never raises for a failing call."""
    host, pid = socket.gethostname(), os.getpid()
    outcomes = []
    for call in calls:
        start = time.perf_counter()
        try:
            args, kwargs = assemble(n_args, shared, call, pass_task_id)
        except Exception as exc:  # pragma: no cover - defensive: shapes are checked up front
            outcomes.append(CallOutcome(call.task_id, False, error=_portable(exc),
                                        traceback=traceback.format_exc(), host=host, pid=pid,
                                        binding_error=True))
            continue
        try:
            value = func(*args, **kwargs)
        except Exception as exc:
            outcomes.append(CallOutcome(
                call.task_id, False, error=_portable(exc), traceback=traceback.format_exc(),
                seconds=time.perf_counter() - start, host=host, pid=pid,
                binding_error=_is_binding_error(exc)))
            continue
        try:
            reference = writer.write(call.task_id, value)
        except Exception as exc:
            outcomes.append(CallOutcome(
                call.task_id, False, error=_portable(exc), traceback=traceback.format_exc(),
                seconds=time.perf_counter() - start, host=host, pid=pid))
            continue
        outcomes.append(CallOutcome(call.task_id, True, reference=reference,
                                    seconds=time.perf_counter() - start, host=host, pid=pid))
    return outcomes


def _is_binding_error(exc: BaseException) -> bool:
    """A TypeError raised by Python while binding the arguments to the function.

    Such an error is deterministic (retrying cannot help). It is recognised by
    its traceback: it was raised at the call site, so no frame of the called
    function follows ``run_calls``'s own.
    """
    tb = exc.__traceback__
    return isinstance(exc, TypeError) and tb is not None and tb.tb_next is None
