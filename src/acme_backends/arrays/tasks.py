"""The futures path of the array backends: ``submit(fn, *args)`` as array elements.

For the executor contract (``acme_core.testing.ExecutorTests``, an executor
instance handed to ``ParallelMap``): tasks submitted within
:data:`BATCH_SECONDS` of each other go out as one array, a background thread
asks the scheduler about all of them in one query per poll and resolves each
future when its element's result file appears.

Tasks and results travel as files in a directory private to this process
(``~/.acme/array-tasks/<id>``, mode 0700, not the run directory) and both are
signed with a key of their own (:class:`acme_core.signed.RunKey`): the driver
unpickles a result only after it verified.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import pickle
import shutil
import sys
import threading
import time
import uuid
from typing import Any

from acme_core.errors import TamperedFileError, WorkerLostError
from acme_core.executor import ElementJob
from acme_core.signed import RunKey, key_dir

__all__ = ["BATCH_SECONDS", "TaskArrays", "result_name", "task_name"]

log = logging.getLogger("acme")

#: tasks submitted within this many seconds go out as one array
BATCH_SECONDS = 0.2
#: seconds an element may be gone from the scheduler without its result before it is lost
LOST_GRACE = 5.0


def task_name(index: int) -> str:
    """The signed task file of task ``index`` (relative to the tasks' directory)."""
    return f"tasks/{int(index)}.bin"


def result_name(index: int) -> str:
    """The signed result file of task ``index``."""
    return f"results/{int(index)}.bin"


class TaskArrays:
    """Futures for tasks run as array elements (see the module docstring)."""

    def __init__(self, executor: Any) -> None:
        """``executor``: the :class:`~acme_backends.arrays.base.ArrayExecutor` (not imported:
        it imports this module)."""
        self.executor = executor
        self.run_id = "tasks-" + uuid.uuid4().hex
        self.key = RunKey.create(self.run_id)
        self.dir = key_dir().parent / "array-tasks" / self.run_id
        for sub in ("tasks", "results", "logs"):
            (self.dir / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._queued: list[int] = []
        self._futures: dict[int, concurrent.futures.Future[Any]] = {}
        self._element: dict[int, tuple[ElementJob, int]] = {}
        self._gone: dict[int, float] = {}
        self._jobs: list[ElementJob] = []
        self._next = 0
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="acme-array-tasks", daemon=True)
        self._thread.start()

    def submit(self, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
               ) -> concurrent.futures.Future[Any]:
        import cloudpickle

        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._lock:
            index = self._next
            self._next += 1
            self.key.write(self.dir, task_name(index), cloudpickle.dumps((fn, args, kwargs)))
            self._futures[index] = future
            self._queued.append(index)
        return future

    def _loop(self) -> None:
        last_query = 0.0
        while not self._closed.wait(BATCH_SECONDS):
            try:
                self._flush()
                self._collect()
                if time.monotonic() - last_query >= self.executor.poll_interval:
                    last_query = time.monotonic()
                    self._find_lost()
            except Exception as exc:  # keep serving the other futures
                log.warning("Array tasks: %s", exc)

    def _flush(self) -> None:
        """The tasks queued since the last flush, as one array (their indices in a row)."""
        with self._lock:
            queued, self._queued = self._queued, []
        if not queued:
            return
        command = [sys.executable, "-m", "acme_backends.arrays.task_element", str(self.dir),
                   self.run_id, str(queued[0])]
        # indices of one flush are consecutive: element k runs task queued[0] + k
        jobs = self.executor.submit_elements(command, len(queued), name="acme-tasks",
                                             log_dir=str(self.dir / "logs"))
        with self._lock:
            self._jobs += jobs
            for job in jobs:
                for k in range(job.count):
                    self._element[queued[0] + job.first + k] = (job, k)

    def _collect(self) -> None:
        for index in list(self._futures):
            path = self.dir / result_name(index)
            if not path.exists():
                continue
            try:
                ok, value = pickle.loads(self.key.read(self.dir, result_name(index)))
            except TamperedFileError as exc:
                ok, value = False, exc
            self._settle(index, ok, value)

    def _settle(self, index: int, ok: bool, value: Any) -> None:
        with self._lock:
            future = self._futures.pop(index, None)
            self._element.pop(index, None)
        if future is None or future.done():
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def _find_lost(self) -> None:
        with self._lock:
            waiting = {i: self._element[i] for i in self._futures if i in self._element}
        jobs = list({job.job_id: job for job, _ in waiting.values()}.values())
        if not jobs:
            return
        states = self.executor.element_states(jobs)
        now = time.monotonic()
        for index, (job, k) in waiting.items():
            if k in states.get(job.job_id, {}):
                self._gone.pop(index, None)
                continue
            since = self._gone.setdefault(index, now)
            if now - since >= LOST_GRACE and not (self.dir / result_name(index)).exists():
                cause = self.executor.element_cause(job, k)
                self._settle(index, False, WorkerLostError(
                    f"array element {job.job_id}[{k}] ended without a result"
                    f"{f' ({cause})' if cause else ''}"))

    def close(self) -> None:
        """Stop the thread, cancel what still runs, remove the files and the key."""
        self._closed.set()
        self._thread.join(timeout=10)
        with self._lock:
            pending = {job.job_id for job, _ in self._element.values()}
            futures = list(self._futures.values())
            self._futures.clear()
        with contextlib.suppress(Exception):
            self.executor.cancel_jobs(sorted(pending))
        for future in futures:
            future.cancel()
        shutil.rmtree(self.dir, ignore_errors=True)
        RunKey.remove(self.run_id)
