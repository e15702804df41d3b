"""One run of the calls: what is known about each call, and the loop that runs them.

:class:`Ledger` holds the state of every call (its reference when finished, its
outcome when failed) and reports to the manifest and the progress bar; it
outlives one ``compute()``, so a second ``compute()`` runs only what the first
left undone. :class:`RunLoop` runs a list of calls on an executor (or in this
process for ``debug=True``) and records into the ledger; ``ParallelMap`` drives it.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from acme_core._progress import ProgressBar
from acme_core.arguments import Distribution
from acme_core.context import TaskContext
from acme_core.dispatch import Dispatcher
from acme_core.errors import NoWorkersError
from acme_core.executor import ReportsWorkers, worker_count
from acme_core.manifest import Manifest
from acme_core.store import WritesChunks
from acme_core.task import CallOutcome, assemble
from acme_core.timeouts import call_with_limit

__all__ = ["Batch", "Ledger", "RunLoop"]

log = logging.getLogger("acme")

#: finished calls handed to ``iter_results`` at once: ``(task_id, reference)`` pairs
Batch = list[tuple[int, Any]]


class Ledger:
    """Every call's state: finished (with its reference), failed (with its outcome) or to do."""

    def __init__(self, n_calls: int, manifest: Manifest | None,
                 heartbeat: Callable[[], None] | None = None) -> None:
        self.n_calls = n_calls
        self.manifest = manifest
        #: called with every save: the run directory's lock says the run is alive
        self.heartbeat = heartbeat
        #: why the manifest could not be saved (a full or read-only disk, a removed
        #: directory); the run goes on and compute() reports it at the end
        self.save_error: OSError | None = None
        self.references: list[Any] = [None] * n_calls
        self.done: set[int] = set()
        self.failures: dict[int, CallOutcome] = {}
        self.bar: ProgressBar = ProgressBar(0, "", False)
        #: calls in flight right now (for the progress bar)
        self.running: Callable[[], int] = lambda: 0
        #: finished calls not yet handed to ``iter_results``
        self.fresh: Batch = []
        self.stream = False
        self._finished_now = 0

    def adopt(self, existing: dict[int, Any]) -> None:
        """Calls complete on disk from an earlier run (resume): finished, without running."""
        for i, reference in existing.items():
            self.references[i] = reference
        self.done.update(existing)
        if self.manifest is not None:
            unrecorded = set(existing) - self.manifest.finished
            if unrecorded:
                log.debug("Found %d complete results the manifest had not recorded yet",
                          len(unrecorded))
            ids = sorted(existing)
            self.manifest.mark_finished_many(ids, [existing[i] for i in ids])

    def todo(self) -> list[int]:
        """The calls not finished yet, in task order."""
        return [i for i in range(self.n_calls) if i not in self.done]

    def start(self, todo: list[int], stream: bool) -> None:
        """A new pass over ``todo``: forget their earlier failures."""
        for i in todo:
            self.failures.pop(i, None)
        self.stream = stream
        self.fresh = [(i, self.references[i]) for i in sorted(self.done)] if stream else []
        self._finished_now = 0

    def finished(self, ids: list[int], references: list[Any]) -> None:
        """Finished calls, one batch per chunk (no object per call)."""
        for i, reference in zip(ids, references, strict=True):
            self.references[i] = reference
        self.done.update(ids)
        if self.failures:  # a call that failed before may have been retried since
            for i in ids:
                self.failures.pop(i, None)
        if self.manifest is not None:
            self.manifest.mark_finished_many(ids, references)
        self._finished_now += len(ids)
        if self.stream:
            self.fresh.extend(zip(ids, references, strict=True))
        self._show(len(ids))

    def record(self, outcome: CallOutcome) -> None:
        """One call's final outcome (a failure after its retries, or a success)."""
        if outcome.ok:
            self.finished([outcome.task_id], [outcome.reference])
            return
        self.failures[outcome.task_id] = outcome
        if self.manifest is not None:
            self.manifest.mark_failed(outcome.task_id, outcome.traceback or repr(outcome.error))
        self._show(1)

    def _show(self, settled: int) -> None:
        self.bar.update(settled, done=self._finished_now, failed=len(self.failures),
                        running=self.running())

    def take_fresh(self) -> Batch:
        batch, self.fresh = self.fresh, []
        return batch

    def save(self, complete: bool | None = None) -> None:
        """Write the manifest; an error is kept (and logged once), never raised mid-run."""
        if self.heartbeat is not None:
            self.heartbeat()
        if self.manifest is None:
            return
        try:
            self.manifest.save(complete)
        except OSError as exc:
            if self.save_error is None:
                log.error("The manifest %s cannot be saved (%s); the run goes on, results that "
                          "reach the disk are kept", self.manifest.path, exc)
            self.save_error = exc
        else:
            self.save_error = None


#: calls a ``debug=True`` run hands a :class:`WritesChunks` writer as one chunk (a shard)
DEBUG_PIECE = 1000

#: seconds a client the user brought may take to show a worker before the run fails (a
#: worker restarting right now); ACME fails at once
BORROWED_GRACE = 10.0


def _workers_come(executor: Any, within: float) -> bool:
    """Whether the executor has a worker (or gets one within ``within`` s); True if unknown."""
    if worker_count(executor) != 0:
        return True
    if not isinstance(executor, ReportsWorkers):
        return False
    try:
        executor.wait_for_workers(1, within)
    except Exception:  # a TimeoutError, or a client that lost its scheduler
        return False
    return True


@dataclass
class RunLoop:
    """Runs calls of one ParallelMap and records them in its :class:`Ledger`."""

    func: Callable[..., Any]
    dist: Distribution
    func_name: str
    retries: int
    chunk_size: int | str
    progress: bool | str
    #: seconds each call may run (None: no limit)
    timeout: float | None = None
    #: seconds without any worker before the outstanding calls are given up
    no_worker_timeout: float = 300.0
    #: set by ParallelMap: whether the executor is one this run started
    owns_executor: bool = True
    #: calls per block of the store (acme_core.store.WritesBlocks; None: no blocks)
    block_calls: int | None = None

    def run(self, ledger: Ledger, todo: list[int], writer: Any, executor: Callable[[], Any],
            debug: bool) -> Generator[Batch, None, None]:
        """Run ``todo``; yield every batch of finished calls as it arrives (when streaming).

        ``executor`` is called only when there is something to run on it.
        """
        if debug:
            log.warning("Running in debug mode: every call runs here, one after the other")
            ledger.bar = ProgressBar(len(todo), self.func_name, self.progress)
            self._run_here(ledger, todo, writer)
        elif todo:
            dispatcher = self._dispatcher(ledger, todo, writer, executor())
            ledger.bar = ProgressBar(len(todo), self.func_name, self.progress)
            for _ in dispatcher.iterate():
                if ledger.fresh:
                    yield ledger.take_fresh()
        if ledger.fresh:  # debug mode, or the last chunk's results
            yield ledger.take_fresh()

    def _dispatcher(self, ledger: Ledger, todo: list[int], writer: Any,
                    executor: Any) -> Dispatcher:
        context = TaskContext(self.func, writer, self.dist.n_args, self.dist.pass_task_id,
                              self.dist.shared)
        if not self.owns_executor and not _workers_come(executor, BORROWED_GRACE):
            # ACME fails at once here: a client the user brought, with no workers, will not
            # grow any by itself (a cluster acme-core started waits for its workers instead)
            raise NoWorkersError(
                f"no active workers found in distributed computing client {executor} Consider "
                "running \n\timport dask.distributed as dd; dd.get_client().restart()\nIf this "
                "fails to make workers come online, please use\n\timport acme_core; "
                "acme_core.cluster_cleanup()\nto shut down any defunct distributed computing "
                "clients")
        dispatcher = Dispatcher(executor, context, self.dist, todo, on_outcome=ledger.record,
                                on_results=ledger.finished, retries=self.retries,
                                chunk_size=self.chunk_size, on_tick=ledger.save,
                                on_note=lambda text: ledger.bar.note(text),
                                timeout=self.timeout,
                                no_worker_timeout=self.no_worker_timeout,
                                block_calls=self.block_calls)
        ledger.running = lambda: dispatcher.in_flight
        workers = dispatcher.initial_workers
        log.info("Preparing %d parallel calls of `%s` using %s workers", len(todo),
                 self.func_name, workers if workers is not None else "?")
        return dispatcher

    def _run_here(self, ledger: Ledger, todo: list[int], writer: Any) -> None:
        """``debug=True``: every call in this process, exceptions raised untouched for pdb."""
        if self.timeout is not None:
            log.warning("debug=True with timeout=%g: a call that overruns is interrupted if it "
                        "runs Python code or waits in a system call; C code that never returns "
                        "is not (without debug, its worker process is replaced)", self.timeout)
        # a store that writes a task's calls together (shards) gets pieces, not single calls
        piece = DEBUG_PIECE if isinstance(writer, WritesChunks) else 1
        for start in range(0, len(todo), piece):
            self._run_piece_here(ledger, todo[start:start + piece], writer)

    def _run_piece_here(self, ledger: Ledger, ids: list[int], writer: Any) -> None:
        """Calls ``ids`` in this process; the manifest lists them once the writer has them
        durable (a :class:`WritesChunks` writer at the piece's end, also when one raised)."""
        chunked = isinstance(writer, WritesChunks)
        if chunked:
            writer.begin_chunk(ids)
        done: list[CallOutcome] = []
        failed = False
        try:
            for i in ids:
                args, kwargs = assemble(self.dist.n_args, self.dist.shared, self.dist.call(i),
                                        self.dist.pass_task_id)
                try:
                    value = call_with_limit(self.func, args, kwargs, self.timeout, i)
                except Exception:
                    # recorded (manifest, `acme inspect`), then re-raised untouched for pdb
                    failed = True
                    if ledger.manifest is not None:
                        ledger.manifest.mark_failed(i, traceback.format_exc())
                    raise
                done.append(CallOutcome(i, True, reference=writer.write(i, value)))
        finally:
            if chunked:
                writer.end_chunk()
            for outcome in done:
                ledger.record(outcome)
            if failed:
                ledger.save()
