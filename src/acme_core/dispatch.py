"""Submitting calls to an executor and collecting their outcomes.

* Calls travel in **chunks** (one executor task runs several calls) sized from
  measured call durations and the number of workers, while every call keeps its
  own outcome and retries.
* Submission is **bounded**: at most ``max_pending`` chunks are outstanding, so
  a million calls do not mean a million futures in the driver.
* Collection is **event-driven**: futures report completion through
  ``add_done_callback`` into a queue; nothing polls every future.

How ``chunk_size="auto"`` sizes chunks (see :meth:`Dispatcher.chunk_size`): a
chunk holds about :data:`TARGET_CHUNK_SECONDS` of work at the per-call duration the
workers measured last (at most :data:`UNMEASURED_CHUNK_CALLS` calls before any
chunk came back), never more than a fair share of the work not done yet
(``(queued + in flight) / (2 * workers)``, so every worker stays busy until the end;
``/ workers`` before any chunk came back, so a small run takes one round trip per worker)
and never more than :data:`MAX_CHUNK_CALLS`. Every auto-sized chunk also carries a
time budget (:data:`CHUNK_BUDGET_SECONDS`): the worker starts no further call once
it is spent and hands the rest back, which the driver queues again. So nothing has
to be probed first: short calls run many per task from the start, while a chunk of
long calls comes back after its first call instead of holding the others hostage.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import math
import pickle
import queue
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from acme_core.arguments import Distribution
from acme_core.executor import (
    DetectsLostWorkers,
    ReportsWorkers,
    SupportsBroadcast,
    SupportsGather,
    worker_count,
)
from acme_core.task import CallOutcome, Chunk, ChunkResult, Shared, _portable, run_chunk_calls

log = logging.getLogger("acme")

#: A chunk should hold about this much work (seconds) once call durations are known:
#: long enough to hide the per-task overhead (a few ms per dask task), short enough
#: to balance the load and to report progress often.
TARGET_CHUNK_SECONDS = 0.2

#: Upper bound of calls per chunk: bounds what one lost worker makes run again and
#: the arguments in flight (with the window, ``max_pending * MAX_CHUNK_CALLS`` calls).
MAX_CHUNK_CALLS = 10_000

#: Calls per chunk at most before any chunk came back (durations still unknown): bounds
#: the arguments sent ahead of the first measurement.
UNMEASURED_CHUNK_CALLS = 64

#: An auto-sized chunk starts no call after running this long and returns the rest.
#: Well above the target, so a chunk sized from a good estimate never hits it.
CHUNK_BUDGET_SECONDS = 2.5 * TARGET_CHUNK_SECONDS

#: Outstanding chunks per worker (the bounded submission window): enough to keep a
#: worker busy while its next chunk travels, few enough to keep the driver lean.
PENDING_PER_WORKER = 4

#: A context (function, writer, no shared arguments) up to this size travels with
#: every task instead of being broadcast to the workers first.
INLINE_CONTEXT_BYTES = 64 * 1024

#: Shared arguments of these exact types (numbers, short texts) may travel inline too:
#: unpickling them costs nothing, unlike arrays or user objects (sent once per worker).
PLAIN_TYPES = (int, float, complex, bool, str, bytes, type(None))

# Calls whose worker died (killed, out of memory, node lost) are resubmitted at
# least this many times even with retries=0: losing a worker must not lose calls.
# Bounded, because a call that itself kills its worker would otherwise loop forever.
LOST_WORKER_RESUBMITS = 3


def worker_was_lost(executor: Any, exc: BaseException) -> bool:
    """Whether a whole task failed because its worker died (not because of a call)."""
    if isinstance(executor, DetectsLostWorkers):
        return bool(executor.lost_worker(exc))
    from concurrent.futures.process import BrokenProcessPool

    return isinstance(exc, BrokenProcessPool)


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


class Dispatcher:
    """Run the calls ``task_ids`` of ``dist`` on ``executor``.

    Parameters
    ----------
    on_outcome : callable
        Called in the driver with every final :class:`CallOutcome` of a failed call
        (after retries), and of a finished one too when ``on_results`` is not given.
    on_results : callable, optional
        Called in the driver with ``(task_ids, references)`` of calls that finished,
        one batch per chunk: cheaper than one :class:`CallOutcome` per call.
    on_tick : callable, optional
        Called every ``tick_seconds`` while waiting (e.g. to save the manifest).
    chunk_size : int or "auto"
        Calls per executor task (see the module docstring for "auto").
    max_pending : int, optional
        Outstanding chunks at most; default :data:`PENDING_PER_WORKER` per worker.
    no_worker_timeout : float
        Give up the calls still outstanding after this many seconds without any
        worker (they fail with a RuntimeError; a resumed run finishes them).
    """

    def __init__(self, executor: Any, context: TaskContext, dist: Distribution,
                 task_ids: Iterable[int], *, on_outcome: Callable[[CallOutcome], None],
                 on_results: Callable[[list[int], list[Any]], None] | None = None,
                 retries: int = 0, chunk_size: int | str = "auto", max_pending: int | None = None,
                 on_tick: Callable[[], None] | None = None, tick_seconds: float = 2.0,
                 no_worker_timeout: float = 300.0) -> None:
        self.executor = executor
        self.context = context
        self.dist = dist
        self.todo: deque[int] = deque(task_ids)
        self.total = len(self.todo)
        self.on_outcome = on_outcome
        self.on_results = on_results
        self.on_tick = on_tick
        self.tick_seconds = tick_seconds
        self.no_worker_timeout = no_worker_timeout
        self._no_workers_since: float | None = None
        self.retries = retries
        self.fixed_chunk = None if chunk_size == "auto" else int(chunk_size)
        self._fixed_window = max_pending
        self.workers = 1
        self.max_pending = max_pending or PENDING_PER_WORKER
        #: the executor's worker count at the start (None: it cannot tell)
        self.initial_workers = worker_count(executor)
        self._update_workers(self.initial_workers)
        #: resubmissions per task id (only for calls that failed and run again)
        self.retried: dict[int, int] = {}
        self.events: queue.Queue[tuple[Any, list[int]]] = queue.Queue()
        self.pending: dict[Any, list[int]] = {}
        #: calls submitted and not yet back (queued on or running on a worker)
        self.in_flight = 0
        #: seconds per call measured in the last chunk that came back (None: not yet)
        self.per_call: float | None = None
        self._handle: Any = None

    def _update_workers(self, count: int | None) -> None:
        """Size the window from the number of workers (jobs may come and go)."""
        if count is not None:
            self.workers = max(1, count)
        if self._fixed_window is None:
            self.max_pending = max(PENDING_PER_WORKER, PENDING_PER_WORKER * self.workers)

    # -- chunk sizing --------------------------------------------------------
    def chunk_size(self) -> int:
        """Calls in the next chunk (see the module docstring)."""
        if self.fixed_chunk is not None:
            return self.fixed_chunk
        # a fair share of all the work not done yet (queued and in flight), so that the
        # chunks of one wave are alike instead of shrinking one after the other
        remaining = len(self.todo) + self.in_flight
        if self.per_call is None:
            size = UNMEASURED_CHUNK_CALLS
            # Before anything came back, one chunk per worker: a small run (a few
            # hundred calls) then costs one round trip per worker, not two. The time
            # budget still returns a chunk of long calls after its first call.
            fair = math.ceil(remaining / self.workers)
        else:
            size = int(TARGET_CHUNK_SECONDS / max(self.per_call, 1e-7))
            fair = math.ceil(remaining / (2 * self.workers))
        return max(1, min(size, fair, MAX_CHUNK_CALLS))

    # -- submission ----------------------------------------------------------
    def _submit_more(self) -> None:
        todo = self.todo
        budget = CHUNK_BUDGET_SECONDS if self.fixed_chunk is None else None
        while todo and len(self.pending) < self.max_pending:
            n = min(self.chunk_size(), len(todo))
            ids = [todo.popleft() for _ in range(n)]
            future = self.executor.submit(run_chunk, self._handle, self.dist.chunk(ids, budget))
            self.pending[future] = ids
            self.in_flight += n
            future.add_done_callback(lambda f, ids=ids: self.events.put((f, ids)))

    def attempt(self, task_id: int) -> int:
        """How many times call ``task_id`` was submitted so far."""
        return self.retried.get(task_id, 0) + 1

    def _inline_context(self) -> PickledContext | None:
        """The context pickled once, if it is small enough to travel with every task.

        Broadcasting costs a round trip to every worker (several ms per run); a
        context whose shared arguments are only numbers and short texts is usually
        a few hundred bytes (the function by reference and the writer), cheaper to
        send along. None: broadcast it.
        """
        shared = self.context.shared
        values = [*shared.args.values(), *shared.kwargs.values()]
        if any(type(v) not in PLAIN_TYPES for v in values):
            return None  # shared objects are sent to each worker once, never per task
        try:
            inline = self._pickled_context()
        except Exception:  # let the executor report what cannot be pickled
            return None
        return inline if len(inline.blob) <= INLINE_CONTEXT_BYTES else None

    def _pickled_context(self) -> PickledContext:
        import cloudpickle

        return PickledContext(uuid.uuid4().hex, cloudpickle.dumps(self.context))

    def _broadcast(self, attempts: int = 8) -> None:
        """Make the handle tasks receive the shared context through.

        * executors that broadcast: sent to every worker once (or inline when small);
        * threads of this process: the context itself (nothing to copy);
        * any other executor (processes, batch jobs): cloudpickled once here, unpickled
          once per worker process, so functions defined in a script or notebook travel
          by value as they do on dask.
        """
        executor = self.executor
        if isinstance(executor, concurrent.futures.ThreadPoolExecutor):
            self._handle = self.context
            return
        if not isinstance(executor, SupportsBroadcast):
            self._handle = self._pickled_context()
            return
        inline = self._inline_context()
        if inline is not None:
            self._handle = inline
            return
        for attempt in range(attempts):
            try:
                self._handle = executor.broadcast(self.context)
                return
            except Exception as exc:  # workers died while receiving it: try again
                if attempt == attempts - 1:
                    raise
                log.debug("Sending the shared arguments failed (%s); trying again", exc)
                time.sleep(0.5 * (attempt + 1))
                if isinstance(executor, ReportsWorkers):
                    with contextlib.suppress(Exception):  # the next attempt reports it
                        executor.wait_for_workers(1, timeout=30)

    def _context_lost(self) -> bool:
        """Whether the broadcast context died with its workers; if so, send it again.

        Every worker holding the shared context can die before a replacement
        fetched a copy; tasks then fail for want of it, through no fault of
        their calls.
        """
        executor = self.executor
        if not isinstance(executor, SupportsBroadcast) or not executor.broadcast_lost(self._handle):
            return False
        log.info("The shared arguments were lost with their workers; sending them again")
        self._broadcast()
        return True

    def run(self) -> None:
        """Submit and collect until every call has a final outcome."""
        for _ in self.iterate():
            pass

    def iterate(self) -> Iterator[None]:
        """Like :meth:`run`, pausing after every chunk that came back (and every tick).

        The callbacks have seen that chunk's outcomes when the generator yields, so
        a caller can hand results on as they come. Closing the generator early
        cancels what is still outstanding.
        """
        self._broadcast()
        self._submit_more()
        last_tick = time.monotonic()
        try:
            while self.pending:
                ready = self._wait_for_events(timeout=0.5)
                if ready:
                    for _future, ids, answer in self._results(ready):
                        self._collect(answer, ids)
                    self._submit_more()
                if time.monotonic() - last_tick > self.tick_seconds:
                    last_tick = time.monotonic()
                    count = worker_count(self.executor)  # one scheduler round trip a tick
                    self._update_workers(count)
                    self._submit_more()  # workers that joined get work at once
                    if self.on_tick:
                        self.on_tick()
                    if self._no_workers_for_too_long(count):
                        self._give_up_remaining()
                yield None
        except BaseException:  # including GeneratorExit: stop what is outstanding
            self.cancel()
            raise

    def _wait_for_events(self, timeout: float) -> list[tuple[Any, list[int]]]:
        """Every chunk that came back: wait up to ``timeout`` for one, then take all."""
        try:
            first = self.events.get(timeout=timeout)
        except queue.Empty:
            return []
        ready = [first]
        with contextlib.suppress(queue.Empty):
            while True:
                ready.append(self.events.get_nowait())
        out = []
        for future, ids in ready:
            if self.pending.pop(future, None) is not None:  # not given up or cancelled
                self.in_flight -= len(ids)
                out.append((future, ids))
        return out

    def _results(self, ready: list[tuple[Any, list[int]]]
                 ) -> list[tuple[Any, list[int], tuple[bool, Any]]]:
        """``(future, ids, (ok, value or exception))`` of every ready chunk.

        Executors with ``gather`` fetch the results of many chunks in one round
        trip; others answer ``future.result()`` one by one.
        """
        executor = self.executor
        futures = [future for future, _ in ready]
        if isinstance(executor, SupportsGather) and len(ready) > 1:
            outcomes = executor.gather(futures)
        else:
            outcomes = []
            for future in futures:
                try:
                    outcomes.append((True, future.result()))
                except BaseException as exc:
                    if isinstance(exc, KeyboardInterrupt):
                        raise
                    outcomes.append((False, exc))
        return [(f, ids, o) for (f, ids), o in zip(ready, outcomes, strict=True)]

    def _no_workers_for_too_long(self, count: int | None) -> bool:
        """True once no worker (``count`` now) has been up for ``no_worker_timeout`` seconds.

        Without workers (every job cancelled or past its walltime, every local
        worker dead for good) the outstanding tasks would wait forever.
        """
        if count is None or count > 0:
            self._no_workers_since = None
            return False
        now = time.monotonic()
        if self._no_workers_since is None:
            self._no_workers_since = now
            log.warning("No workers are running; waiting up to %.0f s for one to come back",
                        self.no_worker_timeout)
        return now - self._no_workers_since > self.no_worker_timeout

    def _give_up_remaining(self) -> None:
        error = RuntimeError(f"no workers were running for {self.no_worker_timeout:.0f} s; the "
                             "call did not run (finished results are kept: resume the run)")
        remaining = [i for ids in self.pending.values() for i in ids] + list(self.todo)
        self.cancel()
        for i in remaining:
            self.on_outcome(CallOutcome(i, False, error=error, traceback=str(error),
                                        worker_lost=True))

    def _collect(self, answer: tuple[bool, Any], ids: list[int]) -> None:
        ok, value = answer
        if ok:
            result: ChunkResult = value
        else:  # the whole task failed (worker lost, unpicklable, ...)
            exc = value
            lost = worker_was_lost(self.executor, exc) or self._context_lost()
            failed = [CallOutcome(i, False, error=_portable(exc), worker_lost=lost,
                                  traceback=f"{type(exc).__name__}: {exc}") for i in ids]
            result = ChunkResult([], [], failed)
        if result.not_run:  # the chunk's time budget was spent: these run later
            self.todo.extendleft(reversed(result.not_run))
        if result.ok_ids:
            self.per_call = result.seconds / len(result.ok_ids)
            if self.on_results is not None:
                self.on_results(result.ok_ids, result.references)
            else:
                mean = self.per_call
                for i, reference in zip(result.ok_ids, result.references, strict=True):
                    self.on_outcome(CallOutcome(i, True, reference=reference, seconds=mean,
                                                host=result.host, pid=result.pid))
        for outcome in result.failed:
            if self._retry(outcome):
                self.retried[outcome.task_id] = self.attempt(outcome.task_id)
                self.todo.append(outcome.task_id)
                continue
            self.on_outcome(outcome)

    def _retry(self, outcome: CallOutcome) -> bool:
        """Whether a failed call runs again (and say so)."""
        if outcome.binding_error:  # wrong arguments fail the same way every time
            return False
        attempt = self.attempt(outcome.task_id)
        allowed = max(self.retries, LOST_WORKER_RESUBMITS) if outcome.worker_lost else self.retries
        if attempt > allowed:
            return False
        why = "its worker was lost" if outcome.worker_lost else "it failed"
        log.info("Call %d: %s (%s: %s); running it again (attempt %d of %d)", outcome.task_id,
                 why, type(outcome.error).__name__, outcome.error, attempt + 1, allowed + 1)
        return True

    def cancel(self) -> None:
        """Cancel every outstanding task (on interrupt or error)."""
        for future in list(self.pending):
            with contextlib.suppress(Exception):  # best effort: the task may be gone already
                future.cancel()
        self.pending.clear()
        self.todo.clear()
        self.in_flight = 0
