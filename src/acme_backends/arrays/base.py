"""What the job-array backends share: options, checks, element planning, the futures path.

A subclass (:class:`~acme_backends.arrays.slurm.SlurmArrayExecutor`,
:class:`~acme_backends.arrays.sge.SgeArrayExecutor`) says how to submit one array
(:meth:`ArrayExecutor.submit_array`), how to read the states of many arrays in one
query (:meth:`ArrayExecutor.element_states`) and how large an array may be.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, cast

from acme_backends import _checks
from acme_backends.arrays.tasks import TaskArrays
from acme_backends.jobqueue.kind import JobQueueKind
from acme_backends.jobqueue.settings import (
    check_node_limits,
    escalated_mib,
    from_resources,
    gpu_options,
    resolve_memory,
    resolve_queue,
)
from acme_backends.schedulers.base import SchedulerCLI
from acme_core.detached import check_shared_directory
from acme_core.element import MEMORY_ENV
from acme_core.errors import ArgumentTypeError, SchedulerError, WorkerLostError
from acme_core.executor import ElementJob

__all__ = ["ArrayExecutor", "ArraySettings"]

log = logging.getLogger("acme")

#: a job id as the schedulers print it (anything else in a run's record is refused)
JOB_ID = re.compile(r"[0-9]+(\.[A-Za-z0-9_.-]+)?")


class ArraySettings:
    """The checked options of an array backend, with ``"auto"`` resolved."""

    def __init__(self, kind: type[ArrayExecutor], options: dict[str, Any]) -> None:
        o = options
        self.throttle = _checks.workers(o["n_workers"])
        self.cores = _checks.count(o["cores_per_worker"] or 1, "cores_per_worker")
        self.gpus = _checks.count(o["gpus"], "gpus", minimum=0) if o["gpus"] else 0
        self.calls_per_element = (None if o["calls_per_element"] == "auto" else
                                  _checks.count(o["calls_per_element"], "calls_per_element"))
        self.max_array_size = (None if o["max_array_size"] is None else
                               _checks.count(o["max_array_size"], "max_array_size"))
        self.poll_interval = _checks.number(o["poll_interval"], "poll_interval", minimum=0.1)
        self.allow_local = _checks.boolean(o["allow_local_run_dir"], "allow_local_run_dir")
        check = _checks.boolean(o["check_resources"], "check_resources")
        self.walltime = _checks.instance_of(o["walltime"], "walltime", (str, type(None)),
                                            "a time such as '01:00:00'")
        factor = o["retry_memory_factor"]
        self.retry_memory_factor = (None if factor is None else
                                    _checks.number(factor, "retry_memory_factor"))
        extra = o["job_extra"] or []
        # one line of the job script each: a line break would smuggle in shell commands
        if not isinstance(extra, (list, tuple)) or not all(
                isinstance(x, str) and "\n" not in x and "\r" not in x for x in extra):
            raise ArgumentTypeError(f"`job_extra` has to be a list of {kind.cli.title} "
                                    f"options, not {extra!r}", parameter="job_extra")
        self.job_extra = list(extra)
        partition = o["partition"]
        _checks.instance_of(partition, "partition", (str, type(None)),
                            f"'auto' or a {kind.cli.title} {kind.queue_word} name")
        if not kind.cli.available():
            raise SchedulerError(f"The {kind.name!r} backend needs {kind.cli.title}, but "
                                 f"`{kind.cli.probe_command}` is not on PATH here: run it on a "
                                 f"{kind.cli.title} login node")
        jq = cast(JobQueueKind, kind)
        self.queue = resolve_queue(jq, partition, check)
        mem = o["mem_per_worker"]
        if mem != "auto" and mem is not None:
            _checks.mem_spec(mem)
        self.memory, max_mem = resolve_memory(jq, self.queue, mem, self.cores, 0, check)
        self.memory_mib = _mib(self.memory)
        if check:
            check_node_limits(jq, self.queue, self.cores, self.memory, self.memory_mib, max_mem)
        # refused where no node has the GPUs; the option itself is the scheduler's gpu_option
        gpu_options(jq, self.queue, self.gpus, check)
        run_dir = o["run_dir"]
        self.run_dir = None if run_dir is None else Path(run_dir)
        if self.run_dir is not None:
            check_shared_directory(self.run_dir, self.allow_local)


def _mib(memory: str) -> int:
    from dask.utils import parse_bytes

    return math.ceil(parse_bytes(memory) / 2**20)


class ArrayExecutor:
    """Runs calls as elements of job arrays; runs that outlive the driver (see the package).

    Parameters
    ----------
    partition : str
        Queue (SLURM partition); "auto": the scheduler's default. Unknown names are
        refused with the list of those there are.
    n_workers : int or "auto"
        Elements running at once at most (the array's throttle, ``%N`` on SLURM,
        ``-tc`` on SGE); "auto": no throttle.
    mem_per_worker : str
        Memory of each element ("4GB"); "auto": the queue's default per core.
        More than any node has is refused.
    cores_per_worker : int, optional
        Cores of each element.
    gpus : int, optional
        GPUs of each element (SLURM ``--gres=gpu:N``, SGE ``-l gpu=N``).
    resources : dict, optional
        ``{"cores", "gpus", "mem"}``, as ``ParallelMap(resources=...)``.
    walltime : str, optional
        Time limit of each element ("01:00:00").
    retry_memory_factor : float, optional
        A call whose element exceeded its memory runs again, alone, in an element
        with this factor times the memory (then its square, ...), up to the largest
        node of the queue; off by default. An element stops itself at 95% of its
        memory (``ACME_ELEMENT_MEMORY``), so the cause is known also where the
        scheduler does not enforce memory.
    job_extra : list of str, optional
        More scheduler options, one per line of the job script.
    calls_per_element : int or "auto"
        Calls each element runs; "auto": spread over twice the elements that can run
        at once (the throttle, else the CPUs of the queue's nodes).
    max_array_size : int, optional
        Elements per array at most, below the scheduler's own limit (read from its
        configuration); larger runs are split into several arrays, each waiting for
        the one before, so the throttle holds for the whole run.
    poll_interval : float
        Seconds between two scheduler queries at least (longer while nothing changes).
    allow_local_run_dir : bool
        Accept a run directory on a node-local file system (tmpfs): only on a
        single-node cluster.
    check_resources : bool
        Check partition, cores and memory against the scheduler first.
    run_dir, n_calls, setup_timeout, setup_interactive
        Passed by ParallelMap (job logs go to ``<run_dir>/job-logs``).
    """

    name: ClassVar[str] = "array"
    description: ClassVar[str] = "calls as elements of batch job arrays (runs outlive the driver)"
    requires: ClassVar[dict[str, str]] = {"cloudpickle": "dask"}
    cli: ClassVar[type[SchedulerCLI]] = SchedulerCLI
    queue_word: ClassVar[str] = "queue"
    #: the scheduler's number of an array's first element (SLURM 0, SGE 1)
    task_base: ClassVar[int] = 0
    owns_resources = True

    def __init__(self, partition: str | None = "auto", n_workers: int | str = "auto",
                 mem_per_worker: str | None = "auto", cores_per_worker: int | None = None,
                 gpus: int | None = None, resources: dict[str, Any] | None = None,
                 walltime: str | None = None, retry_memory_factor: float | None = None,
                 job_extra: list[str] | None = None,
                 calls_per_element: int | str = "auto", max_array_size: int | None = None,
                 poll_interval: float = 2.0, allow_local_run_dir: bool = False,
                 check_resources: bool = True, run_dir: str | os.PathLike[str] | None = None,
                 n_calls: int | None = None, setup_timeout: float = 60,
                 setup_interactive: bool = True) -> None:
        options = dict(partition=partition, n_workers=n_workers, mem_per_worker=mem_per_worker,
                       cores_per_worker=cores_per_worker, gpus=gpus, walltime=walltime,
                       retry_memory_factor=retry_memory_factor,
                       job_extra=job_extra, calls_per_element=calls_per_element,
                       max_array_size=max_array_size, poll_interval=poll_interval,
                       allow_local_run_dir=allow_local_run_dir, check_resources=check_resources,
                       run_dir=None if run_dir is None else os.fspath(run_dir))
        # the job-queue backends' mapping (cores_per_worker, mem_per_worker, gpus)
        options = from_resources({**options, "resources": resources})
        self.settings = ArraySettings(type(self), options)
        self.poll_interval = self.settings.poll_interval
        self._options = options
        self._limit: int | None = None
        self._slots: int | None = None
        self._tasks: TaskArrays | None = None
        #: memory step -> this executor with more memory per element (retry_memory_factor)
        self._bigger: dict[int, ArrayExecutor | None] = {}

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> None:
        """Check every option (and the request against the scheduler) before anything starts.

        Creating the executor has no side effect (nothing is submitted before the
        first ``submit``/``submit_elements``), so the check is the constructor.
        """
        cls(**options)

    def __enter__(self) -> ArrayExecutor:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.shutdown()

    # -- what a subclass says --------------------------------------------------
    def submit_array(self, command: list[str], first: int, count: int, *, name: str,
                     log_dir: str, after: str | None) -> str:
        """Submit one array of ``count`` elements running ``command + [first + k]``;
        wait for job ``after`` first when given. Returns the job id."""
        raise NotImplementedError

    def scheduler_array_limit(self) -> int | None:
        """Elements per array the scheduler allows (None: no limit)."""
        raise NotImplementedError

    @staticmethod
    def _submit_script(command: list[str], script: str, count: int) -> str:
        """Run the submit ``command`` with the job ``script`` on stdin; what it printed."""
        done = subprocess.run(command, input=script, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise SchedulerError(f"{command[0]} refused the array of {count} elements: "
                                 f"{done.stderr.strip() or done.stdout.strip()}")
        return done.stdout.strip()

    def total_cpus(self) -> int | None:
        """CPUs of the queue's nodes (for ``calls_per_element="auto"``)."""
        limits = self.cli.node_limits(self.settings.queue)
        return limits.cpus

    def element_states(self, jobs: list[ElementJob]) -> dict[str, dict[int, tuple[str, str]]]:
        """Job id -> element -> (state, reason in words), in one scheduler query."""
        raise NotImplementedError

    # -- RunsDetached ----------------------------------------------------------
    def array_limit(self) -> int:
        """Elements per array: the scheduler's limit, or ``max_array_size`` below it."""
        if self._limit is None:
            limit = self.scheduler_array_limit()
            ours = self.settings.max_array_size
            self._limit = min(x for x in (limit, ours, 10**9) if x is not None)
        return self._limit

    def submit_elements(self, command: list[str], count: int, *, name: str,
                        log_dir: str) -> list[ElementJob]:
        """One array per :meth:`array_limit` elements, each waiting for the one before."""
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        # the element stops itself above its memory (acme_core._memory_guard), saying why
        limit = self.settings.memory_mib * 2**20
        command = ["env", f"{MEMORY_ENV}={limit}", *command]
        jobs: list[ElementJob] = []
        size = self.array_limit()
        for first in range(0, count, size):
            n = min(size, count - first)
            after = jobs[-1].job_id if jobs else None
            job_id = self.submit_array(command, first, n, name=name, log_dir=log_dir, after=after)
            jobs.append(ElementJob(job_id, first, n))
        if len(jobs) > 1:
            log.info("%d elements split into %d arrays of at most %d (the scheduler's limit), "
                     "each starting after the one before", count, len(jobs), size)
        return jobs

    def cancel_jobs(self, job_ids: list[str]) -> None:
        """Cancel every job of ``job_ids`` in one command (ids that are not job ids are skipped)."""
        ids = [j for j in job_ids if JOB_ID.fullmatch(j)]
        if ids:
            self.cli.cancel(ids)

    def plan_elements(self, n_calls: int) -> int:
        """Elements for ``n_calls`` calls: ``calls_per_element``, or twice the elements that
        can run at once (the throttle, else the queue's CPUs per element's cores)."""
        per = self.settings.calls_per_element
        if per is not None:
            return max(1, math.ceil(n_calls / per))
        slots = self.settings.throttle
        if slots is None:
            if self._slots is None:
                try:
                    self._slots = max(1, (self.total_cpus() or 1) // self.settings.cores)
                except SchedulerError:
                    self._slots = 1
            slots = self._slots
        return max(1, min(n_calls, 2 * slots))

    def detached_options(self) -> dict[str, Any]:
        """The options as resolved (queue, memory), to recreate this executor when attaching."""
        s = self.settings
        return {**self._options, "partition": s.queue, "mem_per_worker": s.memory,
                "check_resources": False}

    # -- EscalatesMemory -------------------------------------------------------
    def memory_exceeded(self, exc: BaseException) -> bool:
        """Whether an element ended because it exceeded its memory (``exc``: its cause)."""
        return isinstance(exc, WorkerLostError) and "exceeded its memory limit" in str(exc)

    def with_more_memory(self, level: int) -> ArrayExecutor | None:
        """This executor with ``retry_memory_factor ** level`` times the memory per element,
        up to the largest node of the queue (None: escalation off, or no more to have)."""
        if level not in self._bigger:
            s = self.settings
            want = escalated_mib(cast(JobQueueKind, type(self)), s.queue, s.memory_mib,
                                 s.retry_memory_factor, level)
            bigger = None
            if want is not None:
                bigger = copy.copy(self)
                bigger.settings = copy.copy(s)
                bigger.settings.memory, bigger.settings.memory_mib = f"{want}MiB", want
                bigger._tasks, bigger._bigger = None, {}
            self._bigger[level] = bigger
        return self._bigger[level]

    def element_cause(self, job: ElementJob, index: int) -> str | None:
        """Why an element ended early, from the last lines of its job log (None: unknown)."""
        run_dir = self.settings.run_dir
        if run_dir is None or not JOB_ID.fullmatch(job.job_id):
            return None
        for path in (run_dir / "job-logs").glob(f"*-{job.job_id}_{index + self.task_base}.out"):
            if path.is_symlink() or not path.is_file():
                continue
            with open(path, encoding="utf-8", errors="replace") as fh:
                tail = fh.read()[-4000:]
            cause = _cause_in(tail)
            if cause:
                return cause
        return None

    # -- Executor: the futures path (ExecutorTests, executor instances) ---------
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` as an array element; tasks submitted together share
        one array (see :class:`~acme_backends.arrays.tasks.TaskArrays`)."""
        if self._tasks is None:
            self._tasks = TaskArrays(self)
        return self._tasks.submit(fn, args, kwargs)

    def shutdown(self, wait: bool = True) -> None:
        """Cancel the futures path's jobs still running and remove its files.

        The jobs of a detached run are never cancelled here: they outlive the driver.
        """
        tasks, self._tasks = self._tasks, None
        if tasks is not None:
            tasks.close()

    def lost_worker(self, exc: BaseException) -> bool:
        """Whether a future failed because its element ended without a result."""
        return isinstance(exc, WorkerLostError)


_CAUSES = (
    ("DUE TO TIME LIMIT", "it ran out of its walltime"),
    ("CANCELLED", "it was cancelled"),
    ("oom", "it exceeded its memory limit"),
    ("Out Of Memory", "it exceeded its memory limit"),
    ("exceeded memory", "it exceeded its memory limit"),
    ("NODE_FAIL", "its node failed"),
    ("Killed", "it was killed"),
)


def _cause_in(text: str) -> str | None:
    for marker, words in _CAUSES:
        if marker in text:
            line = next((x for x in reversed(text.splitlines()) if marker in x), "")
            return f"{words}: {line.strip()[:200]}"
    return None
