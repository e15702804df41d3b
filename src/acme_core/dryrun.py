"""The dry run (``ParallelMap(..., dryrun=True)``): one call measured here, the run estimated.

One randomly chosen call runs in the calling process. Its wall time and peak
memory give an estimate for the whole run and a suggested ``mem_per_worker``.
The call's return value is measured and then dropped: a dry run writes no
result and marks no call finished, so the real run that follows (or a later
``resume``) cannot mistake it for a result.

How memory is measured
----------------------
Two probes run during the call and the larger reading counts:

* :mod:`tracemalloc`: the peak of memory allocated through Python's allocators
  during the call (Python objects and NumPy arrays). Exact, but blind to
  memory that C libraries allocate on their own.
* the process's resident set size (RSS), sampled every few milliseconds with
  ``psutil`` (a dependency of ``distributed``): the peak increase over the RSS
  before the call. It sees every allocation, also those of other threads of the
  process, but can miss a peak shorter than the sampling interval.

Tracing allocations slows allocation-heavy pure-Python code down, so the
measured time errs on the long side.
"""

from __future__ import annotations

import logging
import math
import os
import random
import threading
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from acme_core._format import format_bytes, format_duration
from acme_core.arguments import approx_size
from acme_core.errors import ArgumentTypeError

log = logging.getLogger("acme")

#: memory a dask worker process needs before it runs anything (interpreter, dask, numpy)
WORKER_BASELINE = 250 * 10**6
#: fraction of ``memory_limit`` at which a dask worker stops taking new tasks
WORKER_PAUSE_FRACTION = 0.8
#: safety margin for calls that need more than the one measured
MARGIN = 1.25
#: RSS sampling interval, seconds
SAMPLE_INTERVAL = 0.005

#: the values ``dryrun`` accepts besides ``True`` and ``False``
STOP = "stop"


@dataclass(frozen=True)
class Measurement:
    """What the dry-run call took."""

    task_id: int
    #: wall time of the call, seconds
    seconds: float
    #: peak of the memory traced by tracemalloc during the call, bytes
    traced_peak: int
    #: peak RSS increase during the call, bytes (None without psutil)
    rss_peak: int | None
    #: approximate size of the call's return value, bytes
    result_bytes: int

    @property
    def peak(self) -> int:
        """The larger of the two memory readings, bytes."""
        return max(self.traced_peak, self.rss_peak or 0)

    @property
    def peak_source(self) -> str:
        if self.rss_peak is not None and self.rss_peak > self.traced_peak:
            return "process RSS increase (psutil)"
        return "traced allocations (tracemalloc)"


@dataclass(frozen=True)
class Estimate:
    """The whole run, extrapolated from one :class:`Measurement`."""

    measurement: Measurement
    func_name: str
    #: calls the real run will make
    n_calls: int
    workers: int
    #: where ``workers`` comes from (``"n_workers"``, ``"the running client"``, ...)
    workers_source: str
    #: ``n_calls * seconds / workers``
    total_seconds: float
    #: arguments every call shares, bytes (each worker holds a copy)
    shared_bytes: int
    #: suggested ``mem_per_worker``, e.g. ``"2GB"``
    mem_per_worker: str
    #: all calls' results, bytes (uncompressed)
    results_bytes: int
    #: whether results are gathered in the calling process (store ``"memory"``)
    in_memory: bool

    def report(self) -> str:
        """The multi-line text the dry run logs."""
        m = self.measurement
        rss = format_bytes(m.rss_peak) if m.rss_peak is not None else "not measured"
        where = ("gathered in this process" if self.in_memory
                 else "written to disk, uncompressed")
        lines = [
            f"Dry run of {self.func_name}, call #{m.task_id}: {format_duration(m.seconds)} wall "
            f"time, peak memory {format_bytes(m.peak)} (from {m.peak_source}; tracemalloc "
            f"{format_bytes(m.traced_peak)}, RSS increase {rss}).",
            f"Estimated run time: {format_duration(self.total_seconds)} for {self.n_calls} "
            f"call{'s' if self.n_calls != 1 else ''} on {self.workers} "
            f"worker{'s' if self.workers != 1 else ''} ({self.workers_source}), i.e. calls x "
            "time / workers, plus start-up and scheduling.",
            f"Suggested mem_per_worker={self.mem_per_worker!r} (peak "
            f"{format_bytes(m.peak)} + shared arguments {format_bytes(self.shared_bytes)} + "
            f"{format_bytes(WORKER_BASELINE)} for the worker itself, with room to spare).",
            f"Results: about {format_bytes(m.result_bytes)} per call, "
            f"{format_bytes(self.results_bytes)} in all, {where}.",
        ]
        return "\n".join(lines)

    def question(self) -> str:
        """The yes/no question asked when interactive."""
        return (f"Estimated {format_duration(self.total_seconds)} for {self.n_calls} calls on "
                f"{self.workers} workers, suggested mem_per_worker={self.mem_per_worker!r}. "
                f"Do you want to continue executing {self.func_name} with the provided "
                "arguments?")


def validate(value: Any) -> bool | str:
    """Check ``dryrun``: ``True``, ``False`` or ``"stop"``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value == STOP:
        return value
    raise ArgumentTypeError(f"`dryrun` has to be `True` or `False`, not {value} (or {STOP!r}: "
                            "run one call, report the estimate and stop)", parameter="dryrun")


def measure(func: Callable[..., Any], args: list[Any], kwargs: dict[str, Any],
            task_id: int) -> Measurement:
    """Run ``func(*args, **kwargs)`` here and measure it; exceptions propagate untouched."""
    sampler = _RssSampler()
    was_tracing = tracemalloc.is_tracing()
    if was_tracing:  # someone traces already: measure relative to now
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
    else:
        base = 0
        tracemalloc.start()
    sampler.start()
    start = time.perf_counter()
    try:
        value = func(*args, **kwargs)
    finally:
        seconds = time.perf_counter() - start
        traced_peak = max(0, tracemalloc.get_traced_memory()[1] - base)
        if not was_tracing:
            tracemalloc.stop()
        rss_peak = sampler.stop()
    return Measurement(task_id=task_id, seconds=seconds, traced_peak=traced_peak,
                       rss_peak=rss_peak, result_bytes=approx_size(value))


class _RssSampler:
    """Samples this process's RSS in a thread; :meth:`stop` returns the peak increase."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._base = 0
        self._peak = 0
        try:
            import psutil

            self._process: Any = psutil.Process()
        except Exception:  # pragma: no cover - psutil comes with distributed
            self._process = None

    def _rss(self) -> int:
        return int(self._process.memory_info().rss)

    def start(self) -> None:
        if self._process is None:  # pragma: no cover
            return
        self._base = self._peak = self._rss()
        self._thread = threading.Thread(target=self._run, name="acme-dryrun-rss", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL):
            self._peak = max(self._peak, self._rss())

    def stop(self) -> int | None:
        if self._thread is None:
            return None
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, self._rss())
        return self._peak - self._base


def suggest_mem_per_worker(peak: int, shared: int) -> str:
    """A ``mem_per_worker`` that holds one call's peak, the shared arguments and the worker.

    A dask worker stops taking tasks at 80 % of its memory limit; on top of that
    the suggestion leaves 25 % for calls hungrier than the one measured. Rounded
    up to 100 MB below 1 GB and to half a GB above.
    """
    need = (peak + shared + WORKER_BASELINE) * MARGIN / WORKER_PAUSE_FRACTION
    if need < 10**9:
        return f"{max(1, math.ceil(need / 10**8)) * 100}MB"
    half_gb = math.ceil(need / (5 * 10**8)) / 2
    return f"{half_gb:g}GB"


def cpu_count() -> int:
    """CPUs this process may use (what a local cluster's ``n_workers="auto"`` starts)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def dry_run(func: Callable[..., Any], dist: Any, todo: list[int], func_name: str,
            workers: tuple[int, str], in_memory: bool) -> Estimate:
    """Run one randomly chosen call of ``todo`` here, log its report, return the estimate.

    ``dist`` is the run's :class:`~acme_core.arguments.Distribution`; ``workers`` what
    :func:`expected_workers` said. The call's exception propagates untouched.
    """
    from acme_core.task import assemble

    task_id = random.choice(todo)
    log.info("Performing a single dry-run of %s simulating randomly picked worker #%d with "
             "automatically distributed arguments", func_name, task_id)
    args, kwargs = assemble(dist.n_args, dist.shared, dist.call(task_id), dist.pass_task_id)
    try:
        measured = measure(func, args, kwargs, task_id)
    except BaseException:
        log.error("The dry-run call #%d of %s failed (traceback below)", task_id, func_name)
        raise
    del args, kwargs
    shared = sum(approx_size(v) for v in (*dist.shared.args.values(),
                                          *dist.shared.kwargs.values()))
    count, source = workers
    estimate = Estimate(
        measurement=measured, func_name=func_name, n_calls=len(todo), workers=count,
        workers_source=source, total_seconds=len(todo) * measured.seconds / count,
        shared_bytes=shared, mem_per_worker=suggest_mem_per_worker(measured.peak, shared),
        results_bytes=len(todo) * measured.result_bytes, in_memory=in_memory)
    unit, value = ("GB", measured.peak / 1e9) if measured.peak > 1e9 else \
        ("MB", measured.peak / 1e6)
    log.info("Dry-run completed. Elapsed time is %f seconds, estimated memory consumption "
             "was %3.2f %s.", measured.seconds, value, unit)
    for line in estimate.report().splitlines():
        log.info("%s", line)
    return estimate


def go_on_after(estimate: Estimate, mode: bool | str, interactive: bool) -> bool:
    """Whether the run goes on after the dry run: ``"stop"`` stops, a person is asked."""
    from acme_core.prompts import yes_no

    if mode == STOP:
        log.info("dryrun=%r: stopping after the dry run; compute() will do nothing", STOP)
        return False
    if interactive:
        return yes_no(estimate.question(), default=True)
    log.info("Nobody to ask (not interactive): continuing. Pass dryrun=%r to stop after the "
             "dry run instead", STOP)
    return True


def expected_workers(options: dict[str, Any], backend: Any) -> tuple[int, str]:
    """How many workers the real run will have, and where that number comes from.

    ``backend`` is the executor class the run will create with ``options``, or the
    executor instance the user brought.
    """
    from acme_core.executor import PlansWorkers, executor_info, worker_count

    for key in ("n_workers", "max_workers"):
        value = options.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value, key
    if isinstance(backend, type):
        if isinstance(backend, PlansWorkers):
            planned = backend.planned_workers(options)
            if planned:
                return planned, f"the {executor_info(backend).name!r} backend's plan"
    else:
        count = worker_count(backend)
        if count:
            return count, "the executor's workers"
    return cpu_count(), "assumed one per CPU here; pass n_workers for a better estimate"


def discard_run(output_dir: Any, func_name: str, logfile: Any, since: float) -> bool:
    """Remove what this run created in ``output_dir`` (after a declined or stopped dry run).

    That is the manifest, the entries named after the function (containers,
    payload and staging directories, per-call files, temporary files) and the
    run's own log file, each only if modified at or after ``since`` (a
    timestamp: the run's start), so files of others survive; the directory
    itself goes when nothing else is left in it. Returns whether it is gone.
    """
    import shutil
    from pathlib import Path

    from acme_core.fileio import is_partial
    from acme_core.manifest import MANIFEST_NAME

    out = Path(output_dir)
    if not out.is_dir():
        return True
    log_name = Path(logfile).name if logfile is not None and Path(logfile).parent == out else None
    for entry in out.iterdir():
        name = entry.name
        bare = name[1:] if is_partial(name) else name
        ours = (name in (MANIFEST_NAME, log_name) or bare == func_name
                or bare.startswith((func_name + ".", func_name + "_")))
        try:
            if not ours or entry.lstat().st_mtime < since:
                continue
        except OSError:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    try:
        out.rmdir()
    except OSError:
        return False
    return True
