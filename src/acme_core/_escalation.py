"""Calls that exceeded their worker's memory, run again on workers with more.

With ``retry_memory_factor``, an executor that has the
:class:`~acme_core.executor.EscalatesMemory` capability hands out executors with
more memory per worker, one per step (``level`` 1, 2, ...). A call that ran alone
and lost its worker to the memory limit goes one step up, until the executor has
no more to give (the largest node); then it fails as before, with the cause.
"""

from __future__ import annotations

import logging
from typing import Any

from acme_core.context import TaskContext, make_handle, run_chunk
from acme_core.executor import EscalatesMemory
from acme_core.task import Chunk

__all__ = ["MemoryEscalation"]

log = logging.getLogger("acme")


class MemoryEscalation:
    """The memory step of each escalated call, and the executors of every step.

    Parameters
    ----------
    executor : Executor
        The run's executor; without :class:`EscalatesMemory` nothing is escalated.
    context : TaskContext
        What every task needs (sent to each bigger executor once).
    """

    def __init__(self, executor: Any, context: TaskContext) -> None:
        self.executor = executor if isinstance(executor, EscalatesMemory) else None
        self.context = context
        #: call id -> the memory step it runs at
        self.level: dict[int, int] = {}
        #: future -> the bigger executor it runs on
        self.ran_on: dict[Any, Any] = {}
        self._steps: dict[int, tuple[Any, Any] | None] = {}

    def escalate(self, exc: BaseException, task_id: int) -> bool:
        """Whether call ``task_id``, whose worker died while it ran alone, goes a step up."""
        if self.executor is None:
            return False
        try:
            exceeded = self.executor.memory_exceeded(exc)
        except Exception as err:  # the check is a courtesy: never a new failure
            log.debug("could not tell whether call %d exceeded its memory: %s", task_id, err)
            return False
        if not exceeded:
            return False
        level = self.level.get(task_id, 0) + 1
        if self._step(level) is None:
            return False
        self.level[task_id] = level
        log.warning("Call %d exceeded its worker's memory; running it again on a worker with "
                    "more memory (step %d)", task_id, level)
        return True

    def submit(self, task_id: int, chunk: Chunk) -> Any:
        """Submit the one-call ``chunk`` to the executor of ``task_id``'s step."""
        step = self._steps[self.level[task_id]]
        assert step is not None  # escalate() only moves calls to steps that exist
        bigger, handle = step
        future = bigger.submit(run_chunk, handle, chunk)
        self.ran_on[future] = bigger
        return future

    def _step(self, level: int) -> tuple[Any, Any] | None:
        """The executor of step ``level`` and its context handle (None: no such step)."""
        if level not in self._steps:
            assert self.executor is not None
            try:
                bigger = self.executor.with_more_memory(level)
            except Exception as exc:  # e.g. the bigger job never started: fail as before
                log.warning("Could not get a worker with more memory: %s", exc)
                bigger = None
            self._steps[level] = None if bigger is None else (bigger,
                                                              make_handle(bigger, self.context))
        return self._steps[level]
