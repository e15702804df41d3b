"""Runs that outlive the driver: whole runs on executors that are :class:`~acme_core.executor.RunsDetached`.

The core speaks only that capability, so any backend that runs *elements* as
batch jobs (the job-array backends, a site's own) gets all of this:

* **Launch** (:meth:`DetachedRun.launch`): the context (function, result writer,
  shared arguments) is written once and each element's calls once, as signed
  files in ``<run>/.acme_detached`` (:mod:`acme_core.signed`); the elements run
  ``python -m acme_core.element`` (:mod:`acme_core.element`), with the Python of
  the driver, and report JSON lines, never pickle.
* **Wait** (:meth:`DetachedRun.poll`): the outcome files are read as they grow
  (the progress bar moves with them); the scheduler is asked in **one** query for
  every job of the run, at most every ``poll_interval`` seconds, backing off to
  :data:`MAX_POLL` while nothing changes.
* **Nothing lost**: an element that ended without saying so (cancelled, killed,
  out of memory or time, node lost) has its unfinished calls run again in a new
  element (at most :data:`LOST_RESUBMITS` times, the cause logged; after that the
  calls fail with a :class:`~acme_core.errors.WorkerLostError`); calls that
  raised run again up to ``retries`` times; the manifest stays the source of
  truth and has one writer, the holder of the run directory's lock.
* **More memory** (executors that are :class:`~acme_core.executor.EscalatesMemory`,
  ``retry_memory_factor``): the calls of an element that exceeded its memory run
  again one per element; the one that exceeds it alone runs again in an element
  with more (step by step, :meth:`DetachedRun.executor_at`), the step kept in the
  record so an attached process goes on from there.
* **Blocks** (stores that are :class:`~acme_core.store.WritesBlocks`, e.g. zarr
  shards): the same rule as the dispatcher's (:mod:`acme_core._blocks`), kept
  with elements: no two elements that have not ended hold calls of one block.
  Elements are cut at block boundaries (:func:`element_bounds`), and a call to
  run again whose block an element still holds *waits* (in the record, so an
  attached process goes on) until that element ended; then a block's waiting
  calls run in one element (or one at a time, where they must run alone).
* **Detach and attach**: :func:`submit` returns once the jobs are queued and
  gives the lock free; :class:`RunHandle` (``ParallelMap.attach(output_dir)``,
  ``acme status|wait|cancel``) reports, waits, collects and cancels from any
  later process. The record of the run (``.acme_detached/run.json``: backend name
  and options, jobs, which element holds which calls) is JSON; the driver never
  unpickles anything from the run directory, and results are found by the store
  under names it derives itself.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import logging
import os
import shutil
import sys
import time
import uuid
from collections import Counter
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acme_core._format import format_id_ranges
from acme_core._progress import ProgressBar
from acme_core._report import failure_error
from acme_core._run import Batch, Ledger
from acme_core.arguments import Distribution
from acme_core.context import TaskContext
from acme_core.element import CONTEXT_NAME, DETACHED_DIR, chunk_name, outcome_name
from acme_core.errors import (
    ArgumentValueError,
    CallTimeoutError,
    NoRunError,
    RemoteCallError,
    ResultMismatchError,
    ResultTypeError,
    RunDirectoryError,
    TamperedFileError,
    UsageError,
    WorkerLostError,
)
from acme_core.executor import ElementJob, EscalatesMemory, RunsDetached
from acme_core.fileio import write_bytes_atomic
from acme_core.manifest import Manifest, from_ranges, to_ranges
from acme_core.run_directory import RunLock, confined
from acme_core.signed import RunKey
from acme_core.store import RunInfo, block_calls_of
from acme_core.task import CallOutcome

__all__ = ["LOST_GRACE", "LOST_RESUBMITS", "MAX_POLL", "DetachedRun", "RunHandle", "RunStatus",
           "check_shared_directory", "is_detached_run", "submit"]

log = logging.getLogger("acme")

RECORD_NAME = f"{DETACHED_DIR}/run.json"
CANCEL_MARK = f"{DETACHED_DIR}/cancelled"
#: how often the calls of a killed element run again before they fail
LOST_RESUBMITS = 2
#: seconds an element may be gone from the scheduler without its last line before it
#: counts as killed (its last lines may still be on their way over a network file system)
LOST_GRACE = 5.0
#: the longest pause between two scheduler queries while nothing changes
MAX_POLL = 30.0
#: file systems that live on one machine: elements on other nodes cannot see them
NODE_LOCAL_FS = frozenset({"tmpfs", "ramfs", "devtmpfs"})
ALIVE = frozenset({"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED",
                   "RESIZING"})


def check_shared_directory(path: Path, allow_local: bool = False) -> None:
    """Refuse a run directory on a node-local file system (tmpfs, ``/dev/shm``).

    Batch jobs run on other nodes and must read and write the run directory.

    Raises
    ------
    ArgumentValueError
        ``path`` is on such a file system (``allow_local=True`` accepts it: a
        single-node cluster).
    """
    fstype = _fs_type(path)
    if fstype in NODE_LOCAL_FS and not allow_local:
        raise ArgumentValueError(
            f"`output_dir` {path} is on a node-local file system ({fstype}): the batch jobs "
            "run on other nodes and could not read the calls nor write the results. Use a "
            "directory on a shared file system (home, project or scratch space), or pass "
            "backend_options={'allow_local_run_dir': True} on a single-node cluster",
            parameter="output_dir")


def _fs_type(path: Path) -> str:
    """The type of the file system ``path`` is on (from /proc/mounts; "" when unknown)."""
    target = str(path.resolve())
    best, fstype = "", ""
    with contextlib.suppress(OSError):
        with open("/proc/mounts", encoding="utf-8") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) < 3:
                    continue
                mount = parts[1].replace("\\040", " ")
                inside = target == mount or target.startswith(mount.rstrip("/") + "/")
                if inside and len(mount) >= len(best):
                    best, fstype = mount, parts[2]
    return fstype


def is_detached_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds the record of a detached run."""
    return (run_dir / RECORD_NAME).is_file()


@dataclass
class Element:
    """One element as the driver sees it: its calls, whether it started or ended."""

    batch: int
    index: int
    ids: list[int]
    started: bool = False
    ended: bool = False
    fatal: str = ""
    offset: int = 0
    #: when the scheduler was first seen not listing it while it had not ended
    gone_since: float | None = None

    @property
    def key(self) -> str:
        return f"{self.batch}-{self.index}"


@dataclass
class Changes:
    """What one poll found (for the ledger and the progress bar)."""

    finished: list[tuple[list[int], list[Any]]] = field(default_factory=list)
    failed: list[CallOutcome] = field(default_factory=list)
    resubmit: dict[int, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.finished or self.failed or self.resubmit)


#: acme-core's own errors a call may end with, rebuilt by name (message-only constructors)
_REBUILT: dict[str, type[Exception]] = {c.__name__: c for c in (
    WorkerLostError, ResultMismatchError, ResultTypeError)}


def _rebuild_error(record: dict[str, Any]) -> BaseException:
    """A call's exception from its JSON record: a built-in exception type keeps its class
    (``except ValueError`` works), as do a time limit (:class:`CallTimeoutError`) and
    acme-core's result errors; any other is a :class:`RemoteCallError` with its name."""
    import builtins

    type_name, message = str(record.get("type", "Error")), str(record.get("message", ""))
    limit = record.get("limit")
    if type_name == "CallTimeoutError" and isinstance(limit, (int, float)):
        return CallTimeoutError(int(record.get("id", -1)), float(limit))
    cls = _REBUILT.get(type_name) or getattr(builtins, type_name, None)
    if isinstance(cls, type) and issubclass(cls, Exception) and cls is not Exception:
        with contextlib.suppress(Exception):
            return cls(message)
    return RemoteCallError(type_name, message)


def _load_json(path: Path) -> dict[str, Any]:
    """The record of a detached run, verified against the run's key.

    The record names the backend, its options (job script lines among them) and the
    jobs to query and cancel: one written by somebody without the key is refused.
    """
    import hmac

    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    record = data.get("record") if isinstance(data, dict) else None
    if not isinstance(record, dict) or not isinstance(record.get("run_id"), str):
        raise RunDirectoryError(f"{path} is not the record of a detached run")
    body = json.dumps(record, sort_keys=True).encode()
    expected = RunKey.load(record["run_id"]).tag(RECORD_NAME, body).hex()
    if not hmac.compare_digest(str(data.get("mac", "")), expected):
        raise TamperedFileError(f"{path} was not written by the run it names (its "
                                "authentication failed): refusing to use it")
    return record


def forget_key(run_dir: Path) -> None:
    """Remove the key of the detached run in ``run_dir`` (before the directory goes).

    Only a record that verifies with the key it names can have that key removed: a
    planted record naming another run's id removes nothing.
    """
    path = run_dir / RECORD_NAME
    if path.is_file() and not path.is_symlink():
        with contextlib.suppress(Exception):  # not a detached run, or not ours: keep keys
            RunKey.remove(str(_load_json(path)["run_id"]))


class DetachedRun:
    """The driver's side of one detached run: launch, poll, resubmit, cancel.

    Only the holder of the run directory's lock creates one that writes
    (``read_only=False``); ``acme status`` reads with ``read_only=True``.
    """

    def __init__(self, run_dir: Path, executor: Any, record: dict[str, Any],
                 read_only: bool = False, key: RunKey | None = None) -> None:
        self.run_dir = run_dir
        self.executor = executor
        self.record = record
        self.read_only = read_only
        self.run_id = str(record["run_id"])
        self._key = key
        self.n_calls = int(record["n_calls"])
        self.retries = int(record.get("retries", 0))
        self.elements: dict[str, Element] = {}
        #: call -> the element that holds it now (later elements take calls over)
        self.owner: dict[int, str] = {}
        self.attempts = {int(k): int(v) for k, v in record.get("attempts", {}).items()}
        self.lost = {int(k): int(v) for k, v in record.get("lost", {}).items()}
        #: call -> its memory step (retry_memory_factor; 0 or absent: the run's memory)
        self.memory = {int(k): int(v) for k, v in record.get("memory", {}).items()}
        self._bigger: dict[int, Any] = {0: executor}
        #: calls per block of a store of blocks (None: no blocks)
        self.block: int | None = record.get("block_calls")
        #: call -> (runs alone, memory step): reruns waiting for their block
        self.waiting = {int(k): (bool(v[0]), int(v[1]))
                        for k, v in record.get("waiting", {}).items()}
        self.settled: set[int] = set()
        self.states: dict[str, dict[int, tuple[str, str]]] = {}
        self.interval = float(record.get("poll_interval", 2.0))
        self._pause = self.interval
        self._next_query = 0.0
        for spec in record.get("elements", []):
            self._add(Element(int(spec["batch"]), int(spec["index"]), from_ranges(spec["ids"])))

    @property
    def key(self) -> RunKey:
        """The run's key (read from the key directory when first needed)."""
        if self._key is None:
            self._key = RunKey.load(self.run_id)
        return self._key

    def _add(self, element: Element) -> None:
        self.elements[element.key] = element
        for i in element.ids:
            self.owner[i] = element.key

    # -- launch ----------------------------------------------------------------
    @classmethod
    def launch(cls, run_dir: Path, executor: Any, context: TaskContext, dist: Distribution,
               todo: list[int], spec: dict[str, Any]) -> DetachedRun:
        """Write the run's files and submit every call of ``todo``; return once queued.

        ``spec``: what the record keeps besides the jobs (store, retries, ...).
        An earlier detached run in ``run_dir`` (a resumed run) is cancelled and its
        files go first.
        """
        import cloudpickle

        cls.discard(run_dir, executor)
        run_id = uuid.uuid4().hex
        key = RunKey.create(run_id)
        for sub in ("chunks", "outcomes"):
            (run_dir / DETACHED_DIR / sub).mkdir(parents=True, exist_ok=True)
        (run_dir / "job-logs").mkdir(exist_ok=True)
        key.write(run_dir, CONTEXT_NAME, cloudpickle.dumps(context))
        # every element, also one resubmitted later by another process, runs the driver's
        # Python in the driver's directory (relative paths and imports resolve alike)
        record = {"format": 1, "run_id": run_id, "n_calls": dist.n_calls, "elements": [],
                  "jobs": [], "batches": 0, "attempts": {}, "lost": {},
                  "python": sys.executable, "cwd": os.getcwd(), **spec}
        run = cls(run_dir, executor, record, key=key)
        n = max(1, min(len(todo), int(executor.plan_elements(len(todo)))))
        bounds = element_bounds(todo, n, run.block)
        chunks = []
        for a, b in zip(bounds, bounds[1:], strict=False):
            chunk = dist.chunk(todo[a:b], None)
            chunk.timeout = spec.get("timeout")
            chunks.append((todo[a:b], b"P" + cloudpickle.dumps(chunk)))
        run._submit_batch(chunks)
        return run

    @staticmethod
    def discard(run_dir: Path, executor: Any) -> None:
        """Cancel an earlier detached run's jobs in ``run_dir`` and remove its files."""
        path = run_dir / RECORD_NAME
        if path.is_file():
            with contextlib.suppress(Exception):  # best effort: its jobs may be long gone
                old = _load_json(path)
                executor.cancel_jobs([str(j["job_id"]) for j in old.get("jobs", [])])
                RunKey.remove(str(old.get("run_id")))
        if (run_dir / DETACHED_DIR).is_dir():
            shutil.rmtree(confined(run_dir, DETACHED_DIR))

    def _submit_batch(self, chunks: list[tuple[list[int], bytes]],
                      executor: Any = None) -> None:
        """Sign the chunk files of a new batch of elements and submit them as jobs
        (with ``executor``: one with more memory, see :meth:`executor_at`)."""
        batch = int(self.record["batches"])
        self.record["batches"] = batch + 1
        for index, (_ids, payload) in enumerate(chunks):
            self.key.write(self.run_dir, chunk_name(batch, index), payload)
        python = str(self.record.get("python") or sys.executable)
        command = [python, "-m", "acme_core.element", "--cwd",
                   str(self.record.get("cwd") or os.getcwd()), str(self.run_dir.resolve()),
                   self.run_id, str(batch)]
        name = f"acme-{self.record.get('func_name', 'run')}"[:60]
        jobs = (executor or self.executor).submit_elements(
            command, len(chunks), name=name, log_dir=str(self.run_dir / "job-logs"))
        for index, (ids, _) in enumerate(chunks):
            self._add(Element(batch, index, list(ids)))
            self.record["elements"].append({"batch": batch, "index": index,
                                            "ids": to_ranges(ids)})
        self.record["jobs"] += [{"job_id": j.job_id, "first": j.first, "count": j.count,
                                 "batch": batch} for j in jobs]
        self.save()
        log.info("Submitted %d calls in %d element(s) as job(s) %s", sum(len(c[0]) for c in chunks),
                 len(chunks), ", ".join(j.job_id for j in jobs))

    def save(self) -> None:
        """Write the record (authenticated with the run key); not when reading only."""
        if self.read_only:
            return
        self.record["attempts"] = {str(k): v for k, v in self.attempts.items()}
        self.record["lost"] = {str(k): v for k, v in self.lost.items()}
        self.record["memory"] = {str(k): v for k, v in self.memory.items()}
        self.record["waiting"] = {str(k): list(v) for k, v in self.waiting.items()}
        body = json.dumps(self.record, sort_keys=True)
        mac = self.key.tag(RECORD_NAME, body.encode()).hex()
        write_bytes_atomic(confined(self.run_dir, RECORD_NAME),
                           json.dumps({"record": json.loads(body), "mac": mac}).encode())

    # -- progress --------------------------------------------------------------
    def todo(self) -> set[int]:
        """Calls of this run not settled yet."""
        return set(self.owner) - self.settled

    def running(self) -> int:
        """Calls in elements that started and have not ended (for the progress bar)."""
        return sum(1 for i, k in self.owner.items() if i not in self.settled
                   and self.elements[k].started and not self.elements[k].ended)

    def cancelled(self) -> bool:
        """Whether somebody cancelled the run (``acme cancel``, :meth:`RunHandle.cancel`)."""
        return (self.run_dir / CANCEL_MARK).exists()

    # -- polling ---------------------------------------------------------------
    def poll(self, query: bool | None = None) -> Changes:
        """Read what the elements wrote since the last poll; ask the scheduler when due.

        ``query``: True forces the scheduler query, False skips it, None asks it at
        most every ``poll_interval`` seconds (longer while nothing changes).
        """
        changes = Changes()
        for element in self.elements.values():
            if not element.ended:
                self._read(element, changes)
        now = time.monotonic()
        if query or (query is None and now >= self._next_query and self.todo()):
            self._query(now, changes)
        if changes.resubmit and not self.read_only:
            self._resubmit(changes.resubmit)
        if self.waiting and not self.read_only:
            self._release(changes)
        return changes

    def _query(self, now: float, changes: Changes) -> None:
        """One scheduler query for every job still running elements of this run."""
        wanted = {(e.batch, e.index) for e in self.elements.values() if not e.ended}
        jobs = [ElementJob(str(j["job_id"]), int(j["first"]), int(j["count"]))
                for j in self.record["jobs"]
                if any((int(j["batch"]), int(j["first"]) + k) in wanted
                       for k in range(int(j["count"])))]
        try:
            states = self.executor.element_states(jobs) if jobs else {}
        except Exception as exc:  # the scheduler did not answer: nothing is judged lost now
            log.warning("The scheduler's job states could not be read (%s); asking again in "
                        "%.0f s", exc, self._pause)
            self._next_query = now + self._pause
            return
        # back off while the scheduler's picture stays the same (calls finishing inside
        # running elements are read from their files, not from the scheduler)
        same = states == self.states
        self.states = states
        self._find_lost(states, now, changes)
        self._pause = min(self._pause * 1.5, MAX_POLL) if same else self.interval
        pending_loss = any(e.gone_since is not None for e in self.elements.values() if not e.ended)
        self._next_query = now + (min(self._pause, LOST_GRACE) if pending_loss else self._pause)

    def element_state(self, element: Element) -> tuple[str, str] | None:
        """The scheduler's ``(state, reason)`` of ``element`` at the last query (None: gone)."""
        for j in self.record["jobs"]:
            first = int(j["first"])
            if int(j["batch"]) == element.batch and first <= element.index < first + int(j["count"]):
                return self.states.get(str(j["job_id"]), {}).get(element.index - first)
        return None

    def _job_of(self, element: Element) -> tuple[ElementJob, int] | None:
        for j in self.record["jobs"]:
            first = int(j["first"])
            if int(j["batch"]) == element.batch and first <= element.index < first + int(j["count"]):
                return ElementJob(str(j["job_id"]), first, int(j["count"])), element.index - first
        return None

    def _find_lost(self, states: dict[str, dict[int, tuple[str, str]]], now: float,
                   changes: Changes) -> None:
        for element in self.elements.values():
            if element.ended:
                continue
            state = self.element_state(element)
            if state is not None and state[0] in ALIVE:
                element.gone_since = None
                continue
            if element.gone_since is None:
                element.gone_since = now
                continue
            if now - element.gone_since < LOST_GRACE:
                continue
            self._read(element, changes)  # its last lines may have arrived meanwhile
            if not element.ended:
                element.ended = True
                self._lost(element, changes, self._cause(element))

    def _cause(self, element: Element) -> str:
        explain = getattr(self.executor, "element_cause", None)
        where = self._job_of(element)
        if callable(explain) and where is not None:
            with contextlib.suppress(Exception):  # a courtesy, never a new failure
                cause = explain(where[0], where[1])
                if cause:
                    return str(cause)
        return "it was cancelled or killed before it finished (no cause known)"

    def _lost(self, element: Element, changes: Changes, cause: str) -> None:
        """The element ended without finishing its calls: run them again, or give up."""
        unsettled = [i for i in element.ids if self.owner.get(i) == element.key
                     and i not in self.settled and i not in changes.resubmit
                     and i not in self.waiting]
        if not unsettled:
            return
        where = self._job_of(element)
        job = f"{where[0].job_id}[{where[1]}]" if where else element.key
        cancelled = self.cancelled()
        if not cancelled and self._exceeded_memory(cause) and self._escalate(unsettled, changes):
            return
        again = [i for i in unsettled if not cancelled and self.lost.get(i, 0) < LOST_RESUBMITS]
        if again and not self.read_only:
            log.warning("Element %s (job %s) ended before finishing calls %s: %s; running them "
                        "again", element.key, job, format_id_ranges(again, 6), cause)
        for i in again:
            changes.resubmit[i] = "lost"
        for i in unsettled:
            if i in changes.resubmit:
                continue
            text = ("the run was cancelled before the call finished" if cancelled else
                    f"the batch job running call {i} ended before the call finished, "
                    f"{LOST_RESUBMITS + 1} times ({cause})")
            error: BaseException = RuntimeError(text) if cancelled else WorkerLostError(text)
            self._settle_failed(CallOutcome(i, False, error=error, traceback=text,
                                            worker_lost=True), changes)

    # -- memory escalation (retry_memory_factor) ---------------------------------
    def executor_at(self, level: int) -> Any:
        """The executor of memory step ``level`` (0: the run's; None: no such step)."""
        if level not in self._bigger:
            bigger = None
            if isinstance(self.executor, EscalatesMemory):
                try:
                    bigger = self.executor.with_more_memory(level)
                except Exception as exc:  # a courtesy: the calls fail as before
                    log.warning("Could not ask for elements with more memory: %s", exc)
            self._bigger[level] = bigger
        return self._bigger[level]

    def _exceeded_memory(self, cause: str) -> bool:
        """Whether the element ended over its memory and more memory is to be had."""
        if not isinstance(self.executor, EscalatesMemory) or self.executor_at(1) is None:
            return False
        with contextlib.suppress(Exception):  # a courtesy, never a new failure
            return bool(self.executor.memory_exceeded(WorkerLostError(cause)))
        return False

    def _escalate(self, unsettled: list[int], changes: Changes) -> bool:
        """An element over its memory: its calls run alone, then the one left with more.

        False when the one call left has no bigger step: it takes the usual path
        (run again up to :data:`LOST_RESUBMITS` times, then failed with the cause).
        """
        if len(unsettled) > 1:  # which call needs the memory is not known yet
            if not self.read_only:
                log.warning("An element exceeded its memory while running calls %s; running "
                            "them again one per element", format_id_ranges(unsettled, 6))
            for i in unsettled:
                changes.resubmit[i] = "alone"
            return True
        i = unsettled[0]
        level = self.memory.get(i, 0) + 1
        if self.executor_at(level) is None:
            return False
        if not self.read_only:
            log.warning("Call %d exceeded its element's memory; running it again in an element "
                        "with more memory (step %d)", i, level)
        changes.resubmit[i] = "memory"
        return True

    def _settle_failed(self, outcome: CallOutcome, changes: Changes) -> None:
        self.settled.add(outcome.task_id)
        changes.failed.append(outcome)

    def _read(self, element: Element, changes: Changes) -> None:
        """The complete lines ``element`` wrote since the last read (JSON; bad lines skipped)."""
        try:
            path = confined(self.run_dir, outcome_name(element.batch, element.index))
            with open(path, "rb") as fh:
                fh.seek(element.offset)
                data = fh.read()
        except (OSError, RunDirectoryError):
            return  # not started yet
        end = data.rfind(b"\n")
        if end < 0:
            return
        element.offset += end + 1
        for line in data[:end].splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                log.debug("Skipping a line of element %s that is not JSON", element.key)
                continue
            if isinstance(entry, dict):
                self._entry(element, entry, changes)

    def _entry(self, element: Element, entry: dict[str, Any], changes: Changes) -> None:
        if "start" in entry:
            element.started = True
        if "ok" in entry:
            self._finished(entry, changes)
        for failure in entry.get("failed", []) if isinstance(entry.get("failed"), list) else []:
            if isinstance(failure, dict):
                self._failed(element, failure, changes)
        if "fatal" in entry:
            element.fatal = str(entry["fatal"])
            for i in element.ids:
                if (self.owner.get(i) == element.key and i not in self.settled
                        and i not in self.waiting):
                    error = RuntimeError(f"the element could not run its calls: "
                                         f"{element.fatal.splitlines()[0]}")
                    self._settle_failed(CallOutcome(i, False, error=error,
                                                    traceback=element.fatal), changes)
        if entry.get("end") is True:
            element.ended = True
            self._lost(element, changes, "it ended without reporting them")

    def _finished(self, entry: dict[str, Any], changes: Changes) -> None:
        ids, refs = entry.get("ok"), entry.get("refs")
        if not isinstance(ids, list) or not isinstance(refs, list) or len(ids) != len(refs):
            return
        inside = str(self.run_dir) + os.sep
        keep = [(i, r if not isinstance(r, str) or os.path.normpath(r).startswith(inside)
                 else None)
                for i, r in zip(ids, refs, strict=True)
                if isinstance(i, int) and 0 <= i < self.n_calls and i not in self.settled]
        if keep:
            self.settled.update(i for i, _ in keep)
            changes.finished.append(([i for i, _ in keep], [r for _, r in keep]))

    def _failed(self, element: Element, failure: dict[str, Any], changes: Changes) -> None:
        i = failure.get("id")
        if (not isinstance(i, int) or self.owner.get(i) != element.key or i in self.settled
                or i in self.waiting):  # judged already: it waits to run again
            return
        error = _rebuild_error(failure)
        text = str(failure.get("traceback") or f"{type(error).__name__}: {error}")
        binding = bool(failure.get("binding"))
        if not binding and self.attempts.get(i, 0) < self.retries and not self.cancelled():
            if not self.read_only:
                log.info("Call %d failed (%s: %s); running it again (attempt %d of %d)", i,
                         type(error).__name__, error, self.attempts.get(i, 0) + 2,
                         self.retries + 1)
            changes.resubmit[i] = "retry"
            return
        self._settle_failed(CallOutcome(i, False, error=error, traceback=text,
                                        binding_error=binding), changes)

    def _resubmit(self, calls: dict[int, str]) -> None:
        """Calls to run again, in new elements that take them from the old chunks.

        Calls lost once more, calls isolated after an element exceeded its memory and
        calls given more memory run one per element, so a call that kills its element
        is found and fails (or gets more memory) alone. With blocks the calls wait
        for their blocks first (:meth:`_release`).
        """
        rerun: dict[int, tuple[bool, int]] = {}
        for i, why in sorted(calls.items()):
            if why in ("lost", "alone"):
                self.lost[i] = self.lost.get(i, 0) + 1
            elif why == "memory":
                self.memory[i] = self.memory.get(i, 0) + 1
            else:
                self.attempts[i] = self.attempts.get(i, 0) + 1
            level = self.memory.get(i, 0)
            rerun[i] = (why == "alone" or level > 0 or (why == "lost" and self.lost[i] > 1),
                        level)
        if self.block is not None:
            self.waiting.update(rerun)
            self.save()  # the waiting calls, for a process that attaches later
            return
        groups: dict[tuple[str, int], list[int]] = {}
        for i, (alone, level) in rerun.items():
            groups.setdefault((str(i) if alone else self.owner[i], level), []).append(i)
        self._submit_groups(groups)

    def _submit_groups(self, groups: dict[tuple[str, int], list[int]]) -> None:
        """One new element per group ``(name, memory step) -> calls``, a batch per step."""
        batches: dict[int, list[tuple[list[int], bytes]]] = {}
        for (_, level), ids in groups.items():
            sources: dict[str, list[int]] = {}
            for i in ids:
                sources.setdefault(self.owner[i], []).append(i)
            spec = [[self.elements[k].batch, self.elements[k].index, v] for k, v in sources.items()]
            batches.setdefault(level, []).append((ids, b"J" + json.dumps(spec).encode()))
        for level, chunks in sorted(batches.items()):
            self._submit_batch(chunks, self.executor_at(level))

    def _release(self, changes: Changes) -> None:
        """Waiting calls whose block no element holds any more run: one element per block.

        A block's waiting calls go together (those of its first call's memory step),
        or only its first call when that one runs alone; the rest wait for that
        element in turn. A cancelled run's waiting calls fail.
        """
        if self.cancelled():
            for i in sorted(self.waiting):
                text = "the run was cancelled before the call finished"
                self._settle_failed(CallOutcome(i, False, error=RuntimeError(text),
                                                traceback=text, worker_lost=True), changes)
            self.waiting.clear()
            return
        assert self.block is not None
        size = self.block
        held = {i // size for e in self.elements.values() if not e.ended for i in e.ids}
        per_block: dict[int, list[int]] = {}
        for i in sorted(self.waiting):
            if i // size not in held:
                per_block.setdefault(i // size, []).append(i)
        groups: dict[tuple[str, int], list[int]] = {}
        for block, ids in per_block.items():
            alone, level = self.waiting[ids[0]]
            take = [ids[0]] if alone else [i for i in ids if self.waiting[i] == (False, level)]
            groups[(str(block), level)] = take
            for i in take:
                del self.waiting[i]
        if groups:
            self._submit_groups(groups)  # saves the record, waiting calls included

    def cancel(self) -> list[str]:
        """Cancel every job of the run (one command); the ids cancelled."""
        ids = [str(j["job_id"]) for j in self.record["jobs"]]
        if ids:
            self.executor.cancel_jobs(ids)
        return ids


def element_bounds(todo: list[int], n: int, block: int | None) -> list[int]:
    """Where ``todo`` (ascending call ids) is cut into about ``n`` elements.

    With blocks of ``block`` calls every cut falls between two blocks (the cut
    nearest to the even one), so each block's calls go whole to one element;
    there are then at most as many elements as blocks.
    """
    even = [round(k * len(todo) / n) for k in range(n + 1)]
    if block is None:
        return even
    starts = [0] + [p for p in range(1, len(todo)) if todo[p] // block != todo[p - 1] // block]
    cuts = {0, len(todo)}
    for target in even[1:-1]:
        k = bisect.bisect_left(starts, target)
        near = [starts[j] for j in (k - 1, k) if 0 <= j < len(starts)]
        cuts.add(min(near, key=lambda s: abs(s - target)))
    return sorted(cuts)


def drive(run: DetachedRun, ledger: Any, cancel_on_interrupt: bool,
          deadline: float | None = None) -> Generator[Batch, None, bool]:
    """Poll ``run`` into ``ledger`` until every call settled; yield finished batches.

    Returns whether every call settled (False: ``deadline``, a monotonic time, passed).
    Ctrl-C cancels the run's jobs when ``cancel_on_interrupt`` (a driver that
    waits and was not detached), then goes on as KeyboardInterrupt.
    """
    ledger.running = run.running
    last_save = time.monotonic()
    pause = 0.25
    try:
        while run.todo():
            changes = run.poll()
            for ids, refs in changes.finished:
                ledger.finished(ids, refs)
            for outcome in changes.failed:
                ledger.record(outcome)
            now = time.monotonic()
            if changes or now - last_save > 2.0:
                ledger.save()
                last_save = now
            if ledger.fresh:
                yield ledger.take_fresh()
            if deadline is not None and now > deadline:
                return False
            # the outcome files are read every 0.25 s while calls finish, less often
            # (up to the poll interval) while nothing happens: many elements, many files
            pause = 0.25 if changes else min(pause * 2, max(run.interval, 0.25))
            if not changes:
                time.sleep(pause)
    except KeyboardInterrupt:
        if cancel_on_interrupt:
            jobs = run.cancel()
            log.warning("Interrupted: cancelled the run's jobs %s", ", ".join(jobs))
        raise
    return True


def reconcile(ledger: Any, existing: dict[int, Any]) -> None:
    """The store's own view of the disk decides: a finished call has its result there.

    The elements' reports are only JSON anybody could have written; a call they
    claim finished whose result the store does not find fails (resume reruns it).
    """
    for i in sorted(ledger.done):
        if i in existing:
            ledger.references[i] = existing[i]
            continue
        ledger.done.discard(i)
        if ledger.manifest is not None:
            ledger.manifest.finished.discard(i)
        text = f"call {i} was reported finished, but the store finds no result of it on disk"
        ledger.record(CallOutcome(i, False, error=RuntimeError(text), traceback=text))


def run_spec(loop: Any, executor: Any, store: Any,
             store_options: dict[str, Any] | None) -> dict[str, Any]:
    """What the record of a run keeps besides its jobs (to attach in a later process)."""
    options = dict(store_options or {})
    try:
        json.dumps(options)
    except (TypeError, ValueError):
        log.warning("`store_options` are not JSON: a later attach uses the store's defaults")
        options = {}
    interval = float(getattr(executor, "poll_interval", 2.0))
    return {"backend": str(type(executor).name), "backend_options": executor.detached_options(),
            "store": getattr(store, "name", None), "store_options": options,
            "func_name": loop.func_name, "retries": int(loop.retries),
            "timeout": loop.timeout, "poll_interval": interval}


def launch(loop: Any, ledger: Any, todo: list[int], store: Any,
           store_options: dict[str, Any] | None, executor: Any) -> DetachedRun:
    """Launch the calls ``todo`` of a ParallelMap's run loop as a detached run."""
    run_dir = ledger.manifest.run_dir
    allow = bool(executor.detached_options().get("allow_local_run_dir", False))
    check_shared_directory(run_dir, allow)
    dist = loop.dist
    context = TaskContext(loop.func, store.writer(), dist.n_args, dist.pass_task_id,
                          dist.shared)
    info = getattr(store, "run", None)
    block = block_calls_of(store, info) if isinstance(info, RunInfo) else None
    spec = {**run_spec(loop, executor, store, store_options), "block_calls": block}
    return DetachedRun.launch(run_dir, executor, context, dist, sorted(todo), spec)


def run_whole(loop: Any, ledger: Any, todo: list[int], store: Any,
              store_options: dict[str, Any] | None,
              executor: Any) -> Generator[Batch, None, None]:
    """``compute()`` on a :class:`RunsDetached` executor: launch, then wait here."""
    run = launch(loop, ledger, todo, store, store_options, executor)
    ledger.bar = ProgressBar(len(todo), loop.func_name, loop.progress)
    yield from drive(run, ledger, cancel_on_interrupt=True)
    reconcile(ledger, store.existing())
    if ledger.fresh:
        yield ledger.take_fresh()


def whole_runs(executor: Any, ledger: Any) -> bool:
    """Whether a run goes through the whole-run path (a file store and a capable executor)."""
    return isinstance(executor, RunsDetached) and ledger.manifest is not None


def submit(pmap: Any) -> RunHandle:
    """``ParallelMap.submit()``: launch the calls not finished yet; return once queued."""
    if not pmap.store.writes_files or pmap.output_dir is None:
        raise UsageError("submit() needs a store that writes files: a detached run is "
                         "collected from its run directory")
    executor = pmap._start_executor()
    if not isinstance(executor, RunsDetached):
        raise UsageError(f"the backend {type(executor).name!r} cannot run detached: submit() "
                         "needs one whose jobs outlive the driver ('slurm-array', 'sge-array')")
    todo = pmap._begin()
    if todo:
        pmap._ledger.start(todo, False)
        launch(pmap._loop, pmap._ledger, todo, pmap.store, pmap.options.store_options, executor)
        pmap._ledger.save()
    elif not is_detached_run(pmap.output_dir):
        raise UsageError(f"nothing to submit: every call of {pmap.func_name} finished already")
    handle = RunHandle(pmap.output_dir)
    if pmap._lock is not None:
        pmap._lock.release()  # whoever attaches and waits writes the manifest from now on
    log.info("Submitted %d calls of %s; collect them with ParallelMap.attach(%r) or `acme wait "
             "%s`", len(todo or []), pmap.func_name, str(pmap.output_dir), pmap.output_dir)
    return handle


@dataclass
class RunStatus:
    """What ``acme status`` reports: calls done / failed / running / pending, and why."""

    run_dir: str
    func_name: str
    n_calls: int
    done: int
    failed: dict[int, str]
    running: int
    pending: int
    #: calls whose element is gone from the scheduler and that wait to run again
    lost: int
    #: pending reasons (in words) -> calls waiting for that reason
    reasons: dict[str, int]
    jobs: list[str]
    cancelled: bool

    @property
    def complete(self) -> bool:
        return self.done == self.n_calls

    def as_dict(self) -> dict[str, Any]:
        data = dict(vars(self))
        data["failed"] = {str(k): v for k, v in self.failed.items()}
        data["complete"] = self.complete
        return data


class RunHandle:
    """A detached run, from any process: ``status()``, ``wait()``, ``results()``, ``cancel()``.

    Created by :meth:`ParallelMap.submit` and :meth:`ParallelMap.attach`. Only
    ``wait()`` and ``results()`` write (the manifest, as the run directory's lock
    holder); ``status()`` only reads.
    """

    def __init__(self, output_dir: str | os.PathLike[str]) -> None:
        self.run_dir = Path(output_dir).expanduser().resolve()
        if not Manifest.exists(self.run_dir):
            raise NoRunError(f"{output_dir} holds no acme-core run (no manifest)")
        if not is_detached_run(self.run_dir):
            raise NoRunError(f"{output_dir} holds no detached run (no {RECORD_NAME}): it ran "
                             "with a backend whose jobs do not outlive the driver")
        self._results: Any = None

    def __repr__(self) -> str:
        return f"RunHandle({str(self.run_dir)!r})"

    def _record(self) -> dict[str, Any]:
        return _load_json(confined(self.run_dir, RECORD_NAME))

    def _run(self, read_only: bool) -> DetachedRun:
        from acme_core.plugins import list_backends, lookup

        record = self._record()
        cls = lookup("backend", str(record["backend"]), list_backends(), "backend")
        executor = cls(**dict(record.get("backend_options") or {}))
        return DetachedRun(self.run_dir, executor, record, read_only=read_only)

    def status(self) -> RunStatus:
        """Calls done / failed / running / pending now (one scheduler query; no lock taken)."""
        manifest = Manifest.load(self.run_dir)
        run = self._run(read_only=True)
        changes = run.poll(query=True)
        done = set(manifest.finished)
        for ids, _ in changes.finished:
            done.update(ids)
        failed = {i: t for i, t in manifest.failed.items() if i not in done}
        failed.update({o.task_id: o.traceback for o in changes.failed})
        running = pending = lost = 0
        reasons: Counter[str] = Counter()
        for element in run.elements.values():
            calls = sum(1 for i in element.ids if run.owner.get(i) == element.key
                        and i not in done and i not in failed and i not in run.waiting)
            state = None if element.ended else run.element_state(element)
            if element.ended or not calls:
                lost += calls if element.ended else 0
            elif state is None or state[0] not in ALIVE:
                lost += calls
            elif state[0] == "PENDING":
                pending += calls
                reasons[state[1] or "waiting"] += calls
            else:
                running += calls
        waiting = sum(1 for i in run.waiting if i not in done and i not in failed)
        if waiting:  # reruns waiting for an element that holds their block (zarr shards)
            pending += waiting
            reasons["waiting for the element holding its block"] += waiting
        return RunStatus(str(self.run_dir), str(manifest.get("func_name")),
                         int(manifest["n_calls"]), len(done), failed, running, pending, lost,
                         dict(reasons), [str(j["job_id"]) for j in run.record["jobs"]],
                         run.cancelled())

    def cancel(self) -> list[str]:
        """Cancel every job of the run with one scheduler command; the job ids.

        A process waiting for the run sees the mark and stops: the calls not
        finished fail as cancelled (``resume=True`` runs them later).
        """
        path = confined(self.run_dir, CANCEL_MARK)
        path.touch()
        ids = self._run(read_only=True).cancel()
        log.info("Cancelled the jobs %s of %s", ", ".join(ids) or "(none)", self.run_dir)
        return ids

    def wait(self, progress: bool | str = "auto", timeout: float | None = None) -> bool:
        """Wait until every call settled, writing the manifest; whether it did in ``timeout`` s.

        Takes the run directory's lock while it waits (one writer at a time): a second
        waiter is refused with the name of the first. Lost elements' calls run again,
        failed calls are retried as the run asked.
        """
        from acme_core.logs import RunLogging, log_file_name
        from acme_core.run_directory import check_name

        lock = RunLock(self.run_dir, uuid.uuid4().hex)
        lock.acquire()
        # what this waiter does (calls run again, and why) goes to a log file of the run too
        func_name = check_name(Manifest.load(self.run_dir).get("func_name"))
        logging_ = RunLogging(None, log_file_name(self.run_dir, func_name))
        logging_.attach()
        try:
            return self._wait_locked(lock, progress, timeout)
        finally:
            logging_.detach()
            lock.release()

    def _wait_locked(self, lock: RunLock, progress: bool | str, timeout: float | None) -> bool:
        manifest = Manifest.load(self.run_dir)
        run = self._run(read_only=False)
        ledger = Ledger(int(manifest["n_calls"]), manifest, heartbeat=lock.refresh)
        ledger.done.update(manifest.finished)
        ledger.start([], False)
        ledger.bar = ProgressBar(len(run.todo() - ledger.done), str(manifest.get("func_name")),
                                 progress)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            generator = drive(run, ledger, cancel_on_interrupt=False, deadline=deadline)
            while True:
                try:
                    next(generator)
                except StopIteration as stop:
                    settled = bool(stop.value)
                    break
        finally:
            ledger.bar.close()
            ledger.save()
        if settled:
            self._results = self._collect(ledger, run)
        return settled

    def _store(self, record: dict[str, Any], manifest: Manifest) -> Any:
        import numpy as np

        from acme_core.plugins import list_stores, lookup
        from acme_core.store import RunInfo

        cls = lookup("store", str(record.get("store")), list_stores(), "store")
        store = cls(**dict(record.get("store_options") or {}))
        n = int(manifest["n_calls"])
        shape = manifest.get("result_shape")
        dtype = manifest.get("result_dtype")
        store.prepare(RunInfo(
            func_name=str(manifest["func_name"]), n_calls=n, output_dir=self.run_dir,
            result_shape=tuple(n if s is None else s for s in shape) if shape else None,
            result_dtype=np.dtype(dtype) if dtype else None,
            stacking_dim=manifest.get("stacking_dim"), resume=True))
        return store

    def _collect(self, ledger: Any, run: DetachedRun) -> Any:
        """Every call settled: finalize the store, save the manifest, results or the error."""
        manifest = ledger.manifest
        store = self._store(run.record, manifest)
        reconcile(ledger, store.existing())
        failures = ledger.failures
        for i, text in manifest.failed.items():  # failures an earlier waiter recorded
            if i not in ledger.done and i not in failures:
                failures[i] = CallOutcome(i, False, error=RuntimeError(text.splitlines()[-1]
                                                                       if text else "failed"),
                                          traceback=text)
        results = store.finalize(ledger.references, set(failures))
        ledger.save(complete=not failures)
        if failures:
            n = int(manifest["n_calls"])
            per_call = results if isinstance(results, list) and len(results) == n \
                else ledger.references
            return failure_error(failures, per_call, n, str(manifest["func_name"]), self.run_dir)
        log.info("Every call of %s finished; results are in %s", manifest["func_name"],
                 store.results_container or self.run_dir)
        return results

    def results(self, progress: bool | str = "auto") -> Any:
        """Wait (:meth:`wait`), then what ``compute()`` would have returned.

        Raises
        ------
        ParallelMapError
            Calls failed: the error names them, with each call's exception (its type
            rebuilt for built-in exceptions) and traceback text.
        """
        if self._results is None:
            self.wait(progress)
        if isinstance(self._results, BaseException):
            raise self._results
        return self._results
