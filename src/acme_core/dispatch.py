"""Submitting calls to an executor and collecting their outcomes.

* Calls travel in **chunks** (one executor task runs several calls) sized from
  measured call durations, while every call keeps its own outcome and retries.
* Submission is **bounded**: at most ``max_pending`` chunks are outstanding, so
  a million calls do not mean a million futures in the driver.
* Collection is **event-driven**: futures report completion through
  ``add_done_callback`` into a queue; nothing polls every future.
"""

from __future__ import annotations

import contextlib
import logging
import math
import queue
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from acme_core.arguments import Distribution
from acme_core.executor import worker_count
from acme_core.task import CallOutcome, Shared, _portable, run_calls

log = logging.getLogger("acme")

# A chunk should hold about this much work (seconds) once call durations are known:
# long enough to hide the per-task overhead, short enough to balance load.
TARGET_CHUNK_SECONDS = 0.2

# Calls whose worker died (killed, out of memory, node lost) are resubmitted at
# least this many times even with retries=0: losing a worker must not lose calls.
# Bounded, because a call that itself kills its worker would otherwise loop forever.
LOST_WORKER_RESUBMITS = 3


def worker_was_lost(executor: Any, exc: BaseException) -> bool:
    """Whether a whole task failed because its worker died (not because of a call)."""
    check = getattr(executor, "lost_worker", None)
    if callable(check):
        return bool(check(exc))
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


def run_chunk(context: TaskContext, calls: list[Any]) -> list[CallOutcome]:
    """The executor task: run a chunk of calls with the shared context."""
    return run_calls(context.func, context.writer, context.n_args, context.pass_task_id,
                     context.shared, calls)


class Dispatcher:
    """Run the calls ``task_ids`` of ``dist`` on ``executor``.

    Parameters
    ----------
    on_outcome : callable
        Called in the driver with every final :class:`CallOutcome` (after retries).
    on_tick : callable, optional
        Called every ``tick_seconds`` while waiting (e.g. to save the manifest).
    chunk_size : int or "auto"
        Calls per executor task.
    no_worker_timeout : float
        Give up the calls still outstanding after this many seconds without any
        worker (they fail with a RuntimeError; a resumed run finishes them).
    """

    def __init__(self, executor: Any, context: TaskContext, dist: Distribution,
                 task_ids: Iterable[int], *, on_outcome: Callable[[CallOutcome], None],
                 retries: int = 0, chunk_size: int | str = "auto", max_pending: int | None = None,
                 on_tick: Callable[[], None] | None = None, tick_seconds: float = 2.0,
                 no_worker_timeout: float = 300.0) -> None:
        self.executor = executor
        self.context = context
        self.dist = dist
        self.todo: deque[int] = deque(task_ids)
        self.total = len(self.todo)
        self.on_outcome = on_outcome
        self.on_tick = on_tick
        self.tick_seconds = tick_seconds
        self.no_worker_timeout = no_worker_timeout
        self._no_workers_since: float | None = None
        self.retries = retries
        self.fixed_chunk = None if chunk_size == "auto" else int(chunk_size)
        self.workers = max(1, worker_count(executor) or 1)
        self.max_pending = max_pending or max(4, 4 * self.workers)
        self.attempts: dict[int, int] = {}
        self.events: queue.Queue[tuple[Any, list[int]]] = queue.Queue()
        self.pending: dict[Any, list[int]] = {}
        self._durations: list[float] = []
        self._handle: Any = None

    # -- chunk sizing --------------------------------------------------------
    def chunk_size(self) -> int:
        if self.fixed_chunk is not None:
            return self.fixed_chunk
        if not self._durations:
            return 1  # measure first
        per_call = max(sum(self._durations) / len(self._durations), 1e-6)
        size = int(TARGET_CHUNK_SECONDS / per_call)
        # keep every worker busy: never more than a fair share of what is left
        fair = math.ceil(len(self.todo) / (2 * self.workers)) if self.todo else 1
        return max(1, min(size, fair, 10_000))

    # -- submission ----------------------------------------------------------
    def _submit_more(self) -> None:
        while self.todo and len(self.pending) < self.max_pending:
            ids = [self.todo.popleft() for _ in range(min(self.chunk_size(), len(self.todo)))]
            for i in ids:
                self.attempts[i] = self.attempts.get(i, 0) + 1
            future = self.executor.submit(run_chunk, self._handle, self.dist.calls(ids))
            self.pending[future] = ids
            future.add_done_callback(lambda f, ids=ids: self.events.put((f, ids)))

    def _broadcast(self, attempts: int = 8) -> None:
        broadcast = getattr(self.executor, "broadcast", None)
        if not callable(broadcast):
            self._handle = self.context
            return
        wait = getattr(self.executor, "wait_for_workers", None)
        for attempt in range(attempts):
            try:
                self._handle = broadcast(self.context)
                return
            except Exception as exc:  # workers died while receiving it: try again
                if attempt == attempts - 1:
                    raise
                log.debug("Sending the shared arguments failed (%s); trying again", exc)
                time.sleep(0.5 * (attempt + 1))
                if callable(wait):
                    with contextlib.suppress(Exception):  # the next attempt reports it
                        wait(1, timeout=30)

    def _context_lost(self) -> bool:
        """Whether the broadcast context died with its workers; if so, send it again.

        Every worker holding the shared context can die before a replacement
        fetched a copy; tasks then fail for want of it, through no fault of
        their calls.
        """
        check = getattr(self.executor, "broadcast_lost", None)
        if not callable(check) or not check(self._handle):
            return False
        log.info("The shared arguments were lost with their workers; sending them again")
        self._broadcast()
        return True

    def run(self) -> None:
        """Submit and collect until every call has a final outcome."""
        self._broadcast()
        self._submit_more()
        last_tick = time.monotonic()
        try:
            while self.pending:
                try:
                    future, ids = self.events.get(timeout=0.5)
                except queue.Empty:
                    future = None
                if future is not None:
                    self.pending.pop(future, None)
                    self._collect(future, ids)
                    self._submit_more()
                if time.monotonic() - last_tick > self.tick_seconds:
                    last_tick = time.monotonic()
                    if self.on_tick:
                        self.on_tick()
                    if self._no_workers_for_too_long():
                        self._give_up_remaining()
        except BaseException:
            self.cancel()
            raise

    def _no_workers_for_too_long(self) -> bool:
        """True once no worker has been up for ``no_worker_timeout`` seconds.

        Without workers (every job cancelled or past its walltime, every local
        worker dead for good) the outstanding tasks would wait forever.
        """
        count = worker_count(self.executor)
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

    def _collect(self, future: Any, ids: list[int]) -> None:
        try:
            outcomes = future.result()
        except BaseException as exc:  # the whole task failed (worker lost, unpicklable, ...)
            if isinstance(exc, KeyboardInterrupt):
                raise
            lost = worker_was_lost(self.executor, exc) or self._context_lost()
            outcomes = [CallOutcome(i, False, error=_portable(exc), worker_lost=lost,
                                    traceback=f"{type(exc).__name__}: {exc}") for i in ids]
        for outcome in outcomes:
            if outcome.ok:
                self._durations.append(outcome.seconds)
                if len(self._durations) > 200:
                    del self._durations[:100]
            elif self._retry(outcome):
                self.todo.append(outcome.task_id)
                continue
            self.on_outcome(outcome)

    def _retry(self, outcome: CallOutcome) -> bool:
        """Whether a failed call runs again (and say so)."""
        if outcome.binding_error:  # wrong arguments fail the same way every time
            return False
        attempt = self.attempts.get(outcome.task_id, 1)
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
