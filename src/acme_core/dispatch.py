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
    """

    def __init__(self, executor: Any, context: TaskContext, dist: Distribution,
                 task_ids: Iterable[int], *, on_outcome: Callable[[CallOutcome], None],
                 retries: int = 0, chunk_size: int | str = "auto", max_pending: int | None = None,
                 on_tick: Callable[[], None] | None = None, tick_seconds: float = 2.0) -> None:
        self.executor = executor
        self.context = context
        self.dist = dist
        self.todo: deque[int] = deque(task_ids)
        self.total = len(self.todo)
        self.on_outcome = on_outcome
        self.on_tick = on_tick
        self.tick_seconds = tick_seconds
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

    def run(self) -> None:
        """Submit and collect until every call has a final outcome."""
        broadcast = getattr(self.executor, "broadcast", None)
        self._handle = broadcast(self.context) if callable(broadcast) else self.context
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
                if self.on_tick and time.monotonic() - last_tick > self.tick_seconds:
                    self.on_tick()
                    last_tick = time.monotonic()
        except BaseException:
            self.cancel()
            raise

    def _collect(self, future: Any, ids: list[int]) -> None:
        try:
            outcomes = future.result()
        except BaseException as exc:  # the whole task failed (worker lost, unpicklable, ...)
            if isinstance(exc, KeyboardInterrupt):
                raise
            outcomes = [CallOutcome(i, False, error=_portable(exc),
                                    traceback=f"{type(exc).__name__}: {exc}") for i in ids]
        for outcome in outcomes:
            if outcome.ok:
                self._durations.append(outcome.seconds)
                if len(self._durations) > 200:
                    del self._durations[:100]
            elif not outcome.binding_error and self.attempts.get(outcome.task_id, 1) <= self.retries:
                log.info("Call %d failed (%s: %s); retrying (attempt %d of %d)", outcome.task_id,
                         type(outcome.error).__name__, outcome.error,
                         self.attempts[outcome.task_id] + 1, self.retries + 1)
                self.todo.append(outcome.task_id)
                continue
            self.on_outcome(outcome)

    def cancel(self) -> None:
        """Cancel every outstanding task (on interrupt or error)."""
        for future in list(self.pending):
            with contextlib.suppress(Exception):  # best effort: the task may be gone already
                future.cancel()
        self.pending.clear()
        self.todo.clear()
