"""How the calls' shared context (function, writer, shared arguments) reaches the workers.

:func:`make_handle` chooses, by what the executor can do:

* it broadcasts (:class:`~acme_core.executor.SupportsBroadcast`): sent to every
  worker once, or inline with every task when small and plain (numbers, short
  texts) - a broadcast costs a round trip to every worker;
* threads of this process: the context itself (nothing to copy);
* any other executor (processes, batch jobs): cloudpickled once here and unpickled
  once per worker process, so functions defined in a script or notebook travel by
  value as they do on dask.

:func:`run_chunk` is the task every executor runs: a chunk of calls with the
context the handle stands for.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import pickle
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from acme_core.executor import ReportsWorkers, SupportsBroadcast
from acme_core.task import Chunk, ChunkResult, Shared, run_chunk_calls

__all__ = ["INLINE_CONTEXT_BYTES", "PLAIN_TYPES", "PickledContext", "TaskContext",
           "context_lost", "make_handle", "run_chunk"]

log = logging.getLogger("acme")

#: A context (function, writer, no shared arguments) up to this size travels with
#: every task instead of being broadcast to the workers first.
INLINE_CONTEXT_BYTES = 64 * 1024

#: Shared arguments of these exact types (numbers, short texts) may travel inline too:
#: unpickling them costs nothing, unlike arrays or user objects (sent once per worker).
PLAIN_TYPES = (int, float, complex, bool, str, bytes, type(None))


@dataclass
class TaskContext:
    """Everything every call shares; sent to each worker once when the executor can broadcast."""

    func: Callable[..., Any]
    writer: Any
    n_args: int
    pass_task_id: bool
    shared: Shared


class PickledContext:
    """A small :class:`TaskContext` pickled once by the driver, unpickled once per worker.

    It travels with every task (a few hundred bytes, no broadcast round trip), but
    neither side pays for the function and writer per task: the driver pickles
    them once per run, and a worker process keeps what it unpickled by ``key``.
    """

    __slots__ = ("key", "blob")

    def __init__(self, key: str, blob: bytes) -> None:
        self.key = key
        self.blob = blob

    def __reduce__(self) -> tuple[Any, ...]:
        # Unpickled, it *is* the context: the function's module is imported where the
        # executor deserializes task arguments (dask: its worker's main thread, as for
        # plain client.map), not later in the thread that runs the task, where import-time
        # code such as signal.signal() fails.
        return (_load_context, (self.key, self.blob))

    def load(self) -> TaskContext:
        return _load_context(self.key, self.blob)


def _load_context(key: str, blob: bytes) -> TaskContext:
    """The context pickled as ``blob``, unpickled once per process (cached by ``key``)."""
    context = _LOADED.get(key)
    if context is None:
        context = pickle.loads(blob)  # cloudpickle's output loads with pickle
        _LOADED[key] = context
        while len(_LOADED) > LOADED_CONTEXTS:
            _LOADED.popitem(last=False)
    return context


#: contexts a worker process keeps unpickled (runs overlap rarely; a few are plenty)
LOADED_CONTEXTS = 4
_LOADED: OrderedDict[str, TaskContext] = OrderedDict()


def run_chunk(context: TaskContext | PickledContext, chunk: Chunk) -> ChunkResult:
    """The executor task: run a chunk of calls with the shared context."""
    if isinstance(context, PickledContext):
        context = context.load()
    return run_chunk_calls(context.func, context.writer, context.n_args, context.pass_task_id,
                           context.shared, chunk)


def make_handle(executor: Any, context: TaskContext, attempts: int = 8) -> Any:
    """What tasks receive the context through (see the module docstring)."""
    if isinstance(executor, concurrent.futures.ThreadPoolExecutor):
        return context
    if not isinstance(executor, SupportsBroadcast):
        return pickled(context)
    inline = _inline(context)
    if inline is not None:
        return inline
    for attempt in range(attempts):
        try:
            return executor.broadcast(context)
        except Exception as exc:  # workers died while receiving it: try again
            if attempt == attempts - 1:
                raise
            log.debug("Sending the shared arguments failed (%s); trying again", exc)
            time.sleep(0.5 * (attempt + 1))
            if isinstance(executor, ReportsWorkers):
                with contextlib.suppress(Exception):  # the next attempt reports it
                    executor.wait_for_workers(1, timeout=30)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def _inline(context: TaskContext) -> PickledContext | None:
    """The context pickled once, if it is small and plain enough to travel with every task."""
    shared = context.shared
    values = [*shared.args.values(), *shared.kwargs.values()]
    if any(type(v) not in PLAIN_TYPES for v in values):
        return None  # shared objects are sent to each worker once, never per task
    try:
        inline = pickled(context)
    except Exception:  # let the executor report what cannot be pickled
        return None
    return inline if len(inline.blob) <= INLINE_CONTEXT_BYTES else None


def pickled(context: TaskContext) -> PickledContext:
    """The context cloudpickled once (functions of a script or notebook by value)."""
    import cloudpickle

    return PickledContext(uuid.uuid4().hex, cloudpickle.dumps(context))


def context_lost(executor: Any, handle: Any) -> bool:
    """Whether a broadcast context died with every worker that held it."""
    return isinstance(executor, SupportsBroadcast) and executor.broadcast_lost(handle)
