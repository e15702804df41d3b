"""Submitting calls to an executor and collecting their outcomes.

* Calls travel in **chunks** (one executor task runs several calls) sized from
  measured call durations and the number of workers, while every call keeps its
  own outcome and retries.
* Submission is **bounded**: at most ``max_pending`` chunks are outstanding, so
  a million calls do not mean a million futures in the driver.
* Collection is **event-driven**: futures report completion through
  ``add_done_callback`` into a queue; nothing polls every future.
* A chunk whose **worker died** has its calls run again one by one, so a call that
  kills its worker (a segfault, ``os._exit``, too much memory) fails alone, with
  the cause when the executor can tell it, and the innocent calls of its chunk
  finish. Calls that overran their ``timeout`` are stopped on the worker
  (:mod:`acme_core.timeouts`); a worker left with a call stuck in code that could
  not be interrupted is replaced where the executor can.
* Periods **without workers** are reported and bounded (:mod:`acme_core._workers`);
  **stragglers** are named every few minutes (:mod:`acme_core._stragglers`).

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

Blocks: with ``block_calls`` (a :class:`~acme_core.store.WritesBlocks` store, e.g.
zarr shards), **no two tasks in flight hold calls of the same block**
(:mod:`acme_core._blocks`): a call whose block a task in flight holds waits in the
queue until that task came back, whatever brought it there (a first run, a retry,
a chunk's remainder, a lost worker's calls, a resumed run); an auto-sized chunk
that would end inside a block whose next call is queued next ends before it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import queue
import re
import signal
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from acme_core._blocks import Blocks
from acme_core._escalation import MemoryEscalation
from acme_core._format import format_duration, format_id_ranges
from acme_core._stragglers import Stragglers
from acme_core._workers import WorkerWatch
from acme_core.arguments import Distribution
from acme_core.context import TaskContext, context_lost, make_handle, run_chunk
from acme_core.errors import WorkerLostError
from acme_core.executor import (
    DetectsLostWorkers,
    ExplainsLostWorkers,
    ReplacesWorkers,
    SupportsGather,
    worker_count,
)
from acme_core.task import CallOutcome, ChunkResult, portable_exception

__all__ = ["CHUNK_BUDGET_SECONDS", "KILLED_WORKER_RESUBMITS", "LOST_WORKER_RESUBMITS", "MAX_CHUNK_CALLS",
           "PENDING_PER_WORKER", "TARGET_CHUNK_SECONDS", "UNMEASURED_CHUNK_CALLS", "Dispatcher",
           "TaskContext", "worker_was_lost"]

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

# A chunk whose worker died (killed, out of memory, node lost) is not a failure: its
# calls run again one by one. A call whose worker died while it ran alone is run once
# more even with retries=0 (its worker may have died of something else), then it fails:
# it kills its worker. (dask itself already retries a task whose worker died.)
LOST_WORKER_RESUBMITS = 1

#: ... unless its worker was killed from outside (SIGKILL or SIGTERM, or no cause known:
#: an administrator, the kernel's OOM killer, a node failure, a cancelled job), which
#: says little about the call: then it runs up to this many times more. (A soak with a
#: worker SIGKILLed every second on a busy machine killed one call's worker 4 times.)
KILLED_WORKER_RESUBMITS = 3

_OUTSIDE_SIGNALS = (signal.SIGKILL, signal.SIGTERM)


def _killed_from_outside(cause: str | None) -> bool:
    """Whether a lost worker's cause (``"... killed by signal 9"``) points outside the call."""
    if cause is None:
        return True
    found = re.search(r"killed by signal (\d+)", cause)
    return found is not None and int(found.group(1)) in _OUTSIDE_SIGNALS


def worker_was_lost(executor: Any, exc: BaseException) -> bool:
    """Whether a whole task failed because its worker died (not because of a call)."""
    if isinstance(executor, DetectsLostWorkers):
        return bool(executor.lost_worker(exc))
    from concurrent.futures.process import BrokenProcessPool

    return isinstance(exc, BrokenProcessPool)


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
    on_note : callable, optional
        Called with a short text for the progress bar (the longest running calls).
    chunk_size : int or "auto"
        Calls per executor task (see the module docstring for "auto").
    max_pending : int, optional
        Outstanding chunks at most; default :data:`PENDING_PER_WORKER` per worker.
    timeout : float, optional
        Seconds each call may run (:mod:`acme_core.timeouts`).
    no_worker_timeout : float
        Give up the calls still outstanding after this many seconds without any
        worker (they fail with a RuntimeError; a resumed run finishes them).
        ``ParallelMap`` passes its ``setup_timeout``.
    block_calls : int, optional
        Calls per block of the store (:class:`~acme_core.store.WritesBlocks`): no two
        tasks in flight then hold calls of one block (see the module docstring).
    """

    def __init__(self, executor: Any, context: TaskContext, dist: Distribution,
                 task_ids: Iterable[int], *, on_outcome: Callable[[CallOutcome], None],
                 on_results: Callable[[list[int], list[Any]], None] | None = None,
                 retries: int = 0, chunk_size: int | str = "auto", max_pending: int | None = None,
                 on_tick: Callable[[], None] | None = None, tick_seconds: float = 2.0,
                 on_note: Callable[[str], None] | None = None, timeout: float | None = None,
                 no_worker_timeout: float = 300.0, block_calls: int | None = None) -> None:
        self.executor = executor
        self.context = context
        self.dist = dist
        self.todo: deque[int] = deque(task_ids)
        self.total = len(self.todo)
        self.on_outcome = on_outcome
        self.on_results = on_results
        self.on_tick = on_tick
        self.on_note = on_note
        self.tick_seconds = tick_seconds
        self.timeout = timeout
        self.watch = WorkerWatch(executor, no_worker_timeout)
        self.stragglers = Stragglers()
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
        #: calls of chunks whose worker died: they run one per task from now on
        self.isolated: set[int] = set()
        #: calls whose worker was last killed from outside (KILLED_WORKER_RESUBMITS apply)
        self.killed: set[int] = set()
        self.events: queue.Queue[tuple[Any, list[int]]] = queue.Queue()
        self.pending: dict[Any, list[int]] = {}
        #: calls submitted and not yet back (queued on or running on a worker)
        self.in_flight = 0
        #: seconds per call measured in the last chunk that came back (None: not yet)
        self.per_call: float | None = None
        self._handle: Any = None
        #: calls that exceeded their worker's memory, on bigger workers (retry_memory_factor)
        self.escalation = MemoryEscalation(executor, context)
        #: the blocks tasks in flight hold, the calls waiting for them
        self.blocks = Blocks(block_calls)

    def _update_workers(self, count: int | None) -> None:
        """Size the window from the number of workers (jobs may come and go)."""
        if count is not None:
            self.workers = max(1, count)
        if self._fixed_window is None:
            self.max_pending = max(PENDING_PER_WORKER, PENDING_PER_WORKER * self.workers)

    # -- chunk sizing --------------------------------------------------------
    def chunk_size(self) -> int:
        """Calls in the next chunk (see the module docstring)."""
        if self.todo and self.todo[0] in self.isolated:
            return 1
        if self.fixed_chunk is not None:
            return self.fixed_chunk
        # a fair share of all the work not done yet (queued and in flight), so that the
        # chunks of one wave are alike instead of shrinking one after the other
        remaining = len(self.todo) + self.in_flight + self.blocks.n_waiting
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
            if not self.blocks.free(todo[0]):  # a task in flight holds its block
                self.blocks.defer(todo.popleft())
                continue
            if todo[0] in self.escalation.level:  # it needs a worker with more memory
                ids = [todo.popleft()]
                chunk = self.dist.chunk(ids, None)
                chunk.timeout = self.timeout
                future = self.escalation.submit(ids[0], chunk)
            else:
                ids = self.blocks.take(todo, self.chunk_size(), cut=self.fixed_chunk is None)
                chunk = self.dist.chunk(ids, budget)
                chunk.timeout = self.timeout
                future = self.executor.submit(run_chunk, self._handle, chunk)
            self.blocks.hold(ids)
            self.pending[future] = ids
            self.in_flight += len(ids)
            self.stragglers.left(future, ids)
            future.add_done_callback(lambda f, ids=ids: self.events.put((f, ids)))

    def attempt(self, task_id: int) -> int:
        """How many times call ``task_id`` was submitted so far."""
        return self.retried.get(task_id, 0) + 1

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
        self._handle = make_handle(self.executor, self.context)
        self._submit_more()
        last_tick = time.monotonic()
        try:
            while self.pending:
                ready = self._wait_for_events(timeout=0.5)
                if ready:
                    for future, ids, answer in self._results(ready):
                        self._collect(answer, ids, future)
                    self._submit_more()
                if time.monotonic() - last_tick > self.tick_seconds:
                    last_tick = time.monotonic()
                    self._tick()
                yield None
        except BaseException:  # including GeneratorExit: stop what is outstanding
            self.cancel()
            raise

    def _tick(self) -> None:
        """Every few seconds: workers joined or gone, the manifest, the stragglers."""
        count = worker_count(self.executor)  # one scheduler round trip a tick
        self._update_workers(count)
        self._submit_more()  # workers that joined get work at once
        if self.on_tick:
            self.on_tick()
        if self.watch.tick(count):
            self._give_up_remaining()
        report = self.stragglers.report()
        if report is not None:
            log.warning("%s", report)
            longest = self.stragglers.longest()
            if longest and self.on_note is not None:
                age, ids = longest[0]
                self.on_note(f"task {ids[0]} {format_duration(age)}")

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
                # its blocks are free again: the calls that waited for them go first
                self.todo.extendleft(reversed(self.blocks.release(ids)))
                out.append((future, ids))
        return out

    def _results(self, ready: list[tuple[Any, list[int]]]
                 ) -> list[tuple[Any, list[int], tuple[bool, Any]]]:
        """``(future, ids, (ok, value or exception))`` of every ready chunk.

        Executors with ``gather`` fetch the results of many chunks in one round
        trip (and know when a result was lost after its future finished); others
        answer ``future.result()`` one by one.
        """
        executor = self.executor
        futures = [future for future, _ in ready]
        if isinstance(executor, SupportsGather):
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

    def _give_up_remaining(self) -> None:
        patience = self.watch.patience
        error = RuntimeError(f"no workers were running for {patience:.0f} s; the call did not "
                             "run (finished results are kept: resume the run)")
        remaining = ([i for ids in self.pending.values() for i in ids] + list(self.todo)
                     + self.blocks.drain())
        self.cancel()
        for i in remaining:
            self.on_outcome(CallOutcome(i, False, error=error, traceback=str(error),
                                        worker_lost=True))

    # -- collection ----------------------------------------------------------
    def _collect(self, answer: tuple[bool, Any], ids: list[int], key: Any = None) -> None:
        ok, value = answer
        runner = self.escalation.ran_on.pop(key, self.executor)
        result: ChunkResult | None = value if ok else self._lost(value, ids, runner)
        per_call = None
        if result is not None and result.ok_ids:
            per_call = result.seconds / len(result.ok_ids)
        self.stragglers.came_back(key, per_call)
        if result is None:
            return
        if result.stuck:
            self._replace_stuck(result)
        if result.not_run:  # the chunk's time budget was spent: these run later
            self.todo.extendleft(reversed(result.not_run))
        if result.ok_ids:
            self.per_call = per_call
            if self.on_results is not None:
                self.on_results(result.ok_ids, result.references)
            else:
                for i, reference in zip(result.ok_ids, result.references, strict=True):
                    self.on_outcome(CallOutcome(i, True, reference=reference,
                                                seconds=per_call or 0.0, host=result.host,
                                                pid=result.pid))
        for outcome in result.failed:
            if self._retry(outcome):
                self.retried[outcome.task_id] = self.attempt(outcome.task_id)
                self.todo.append(outcome.task_id)
                continue
            self.on_outcome(outcome)

    def _lost(self, exc: BaseException, ids: list[int], runner: Any) -> ChunkResult | None:
        """A whole task failed (worker died, context lost, unpicklable, ...) on ``runner``.

        Calls of a lost worker's chunk run again one by one (None: nothing to record
        yet), so that a call that kills its worker is found and fails alone; such a
        call that exceeded its worker's memory runs again with more where it can.
        """
        lost = worker_was_lost(self.executor, exc) or self._context_lost()
        if lost and len(ids) > 1:
            log.warning("The worker running calls %s died; running them one by one to find "
                        "any call that kills its worker", _ids(ids))
            self.isolated.update(ids)
            self.todo.extendleft(reversed(ids))
            return None
        if lost and self.escalation.escalate(exc, ids[0]):
            self.todo.appendleft(ids[0])
            return None
        error: BaseException = portable_exception(exc)
        text = f"{type(exc).__name__}: {exc}"
        if lost:
            cause = self._cause(exc, runner)
            if _killed_from_outside(cause):
                self.killed.add(ids[0])
            else:
                self.killed.discard(ids[0])
            error = WorkerLostError(f"the worker running call {ids[0]} died while the call ran "
                                    f"alone{f' ({cause})' if cause else ''}: {text}")
            text = str(error)
        failed = [CallOutcome(i, False, error=error, worker_lost=lost, traceback=text)
                  for i in ids]
        return ChunkResult([], [], failed)

    @staticmethod
    def _cause(exc: BaseException, runner: Any) -> str | None:
        if not isinstance(runner, ExplainsLostWorkers):
            return None
        try:
            return runner.lost_worker_cause(exc)
        except Exception as err:  # the explanation is a courtesy, never a new failure
            log.debug("could not tell why the worker died: %s", err)
            return None

    def _context_lost(self) -> bool:
        """Whether the broadcast context died with its workers; if so, send it again.

        Every worker holding the shared context can die before a replacement
        fetched a copy; tasks then fail for want of it, through no fault of
        their calls.
        """
        if not context_lost(self.executor, self._handle):
            return False
        log.info("The shared arguments were lost with their workers; sending them again")
        self._handle = make_handle(self.executor, self.context)
        return True

    def _replace_stuck(self, result: ChunkResult) -> None:
        """A call that overran is stuck in a worker: have that worker replaced if possible."""
        where = f"worker process {result.pid} on {result.host}"
        if isinstance(self.executor, ReplacesWorkers) and \
                self.executor.replace_worker(result.host, result.pid):
            log.warning("A call that overran its timeout could not be interrupted; %s was "
                        "replaced", where)
        else:
            log.warning("A call that overran its timeout could not be interrupted: it keeps a "
                        "thread of %s busy (the backend cannot replace workers)", where)

    def _retry(self, outcome: CallOutcome) -> bool:
        """Whether a failed call runs again (and say so)."""
        if outcome.binding_error:  # wrong arguments fail the same way every time
            return False
        attempt = self.attempt(outcome.task_id)
        allowed = self.retries
        if outcome.worker_lost:
            resubmits = (KILLED_WORKER_RESUBMITS if outcome.task_id in self.killed
                         else LOST_WORKER_RESUBMITS)
            allowed = max(allowed, resubmits)
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
        self.blocks.drain()
        self.in_flight = 0


def _ids(ids: list[int]) -> str:
    return format_id_ranges(ids, 6)
