"""``ParallelMap``: call one function many times, in parallel, and keep every result.

This module holds the user-facing class: its signature, the context manager and
the lifecycle (:class:`RunState`). The work is done elsewhere, one concern per
module: keyword checks (:mod:`acme_core._options`), ACME's result flags
(:mod:`acme_core._acme_flags`), store and backend resolution
(:mod:`acme_core._resolve`), argument distribution (:mod:`acme_core.arguments`),
the run loop and the per-call ledger (:mod:`acme_core._run`), the dry run
(:mod:`acme_core.dryrun`), progress (:mod:`acme_core._progress`) and the failure
report (:mod:`acme_core._report`).

Construction validates everything and distributes the arguments without side
effects; then it creates the run directory (containers, manifest, log file).
The executor (dask client or other backend) starts at the first ``compute()``.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import uuid
import weakref
from collections.abc import Generator, Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from acme_core import detached
from acme_core import dryrun as dr
from acme_core._acme_flags import Flags, warn_ignored_flags
from acme_core._options import RunOptions, StackedShape, validate_n_inputs, validate_result_shape
from acme_core._report import failure_error, storage_error
from acme_core._resolve import BackendPlan, resolve_backend, resolve_store
from acme_core._run import Batch, Ledger, RunLoop
from acme_core.arguments import (
    Distribution,
    apply_kwargv,
    check_picklable,
    describe_func,
    distribute,
    fingerprint,
    kwargv_of,
)
from acme_core.errors import ArgumentTypeError, ArgumentValueError, RunDirectoryError, UsageError
from acme_core.executor import (
    HasDashboard,
    StopsBorrowed,
    executor_info,
    owns_resources,
)
from acme_core.fileio import final_name_of, remove_partials
from acme_core.housekeeping import cleanup_old_runs
from acme_core.logs import EarlyRecords, RunLogging, log_file_name
from acme_core.manifest import MANIFEST_NAME, MAX_CALLS, Manifest
from acme_core.run_directory import RunLock, file_stem
from acme_core.store import ChecksRun, RunInfo, block_calls_of

__all__ = ["ParallelMap", "RunState"]

log = logging.getLogger("acme")


class RunState(enum.Enum):
    """Where a :class:`ParallelMap` is in its life."""

    #: constructed; nothing ran yet
    READY = "ready"
    #: ``compute()`` or ``iter_results()`` is running the calls
    RUNNING = "running"
    #: every call finished; ``compute()`` returns the same results again
    FINISHED = "finished"
    #: calls failed or were not run (error, interruption); ``compute()`` runs only those
    INCOMPLETE = "incomplete"
    #: the dry run stopped the run; ``compute()`` does nothing
    DECLINED = "declined"


class ParallelMap:
    """Call ``func`` once per input, in parallel, and store every result.

    Parameters
    ----------
    func : callable
        The function to run. Its module-level definition must be importable or
        picklable (functions defined in a script or notebook are fine).
    *args, **kwargs
        Arguments of ``func``. Lists, tuples and 1-D arrays of length
        ``n_inputs`` are split, one element per call; anything else is shared by
        every call (sent to each worker once). A keyword that is not one of
        ParallelMap's own goes to ``func``.
    n_inputs : int or "auto"
        Number of calls; "auto" infers it from the argument lengths.
    write_worker_results : bool
        Write results to disk (default) or gather them in memory.
    output_dir : str, optional
        Run directory; default ``ACME_<timestamp>`` in the current directory.
    result_shape : tuple, optional
        Shape of one stacked result with exactly one ``None`` (the stacking axis,
        replaced by ``n_inputs``) and at most one ``np.inf`` (unlimited axis).
    result_dtype : str
        NumPy dtype of the stacked result (with ``result_shape``).
    single_file : bool
        Write every call into one HDF5 file (store ``"hdf5-single"``).
    write_pickle : bool
        Pickle results instead of HDF5 (store ``"pickle"``).
    partition, n_workers, mem_per_worker, setup_timeout, setup_interactive
        Cluster resources, passed to backends that accept them. ``n_workers`` and
        ``mem_per_worker`` size an auto-started local cluster too. ``setup_timeout``
        (seconds) also bounds how long a run waits when no worker is left (workers
        that come back end the wait at once) before the calls still outstanding
        fail; a resumed run finishes them.
    stop_client : "auto" or bool
        "auto" stops only a client this ParallelMap started; True stops any;
        False leaves it running for the next ParallelMap to reuse.
    verbose : bool, optional
        None: INFO messages, True: DEBUG, False: warnings only.
    dryrun : bool or "stop"
        True: run one randomly chosen call in this process first, report its
        wall time and peak memory, an estimate for the whole run and a suggested
        ``mem_per_worker`` (:attr:`dryrun_estimate`); then ask whether to
        continue when interactive, or continue when nobody can answer. "stop":
        the same, then stop without asking (``compute()`` returns None). The
        dry-run call's result is not kept; a run that does not go on leaves no
        files behind.
    logfile : bool or str, optional
        None: a log file ``ACME_<fn>_<timestamp>.log`` when writing results;
        True/False force it on/off; a string is the log file's path.
    cleanup_threshold_days : int, optional
        Delete ``ACME_*`` directories older than this many days (0: all) in the
        base directory of auto-named run directories.
    backend : str, class or executor
        "auto" attaches to a running dask client or starts a local cluster;
        "dask-local", "dask", any installed backend name, a class or an instance.
    store : str, class or store, optional
        Where results go; None derives it from the ACME flags.
    backend_options, store_options : dict, optional
        Keyword arguments for the backend / store class.
    resume : bool
        Finish the earlier run in ``output_dir``: run only the calls not finished
        there. Refused when the function name, number of calls, arguments or
        store differ from that run's.
    retries : int
        Rerun a call that raised up to this many more times. Every exception the
        call raises is retried except a ``TypeError`` from binding the arguments
        to the function (a wrong signature fails the same way every time). Calls
        whose worker died (killed, out of memory, node lost) run again one by one,
        even with ``retries=0``; a call whose worker dies while it runs alone runs
        once more (or ``retries`` times), then fails with a
        :class:`~acme_core.errors.WorkerLostError` saying why the worker died.
    progress : "auto" or bool
        Progress bar (tqdm; a widget in notebooks) with calls done / failed /
        running and an ETA, fed by completion events; "auto" shows it in
        interactive sessions (stderr is a terminal, or a Jupyter kernel), not in
        batch jobs.
    chunk_size : int or "auto"
        Calls per executor task; "auto" sizes chunks from measured call durations
        and the number of workers (every call still has its own result, failure
        and retries).
    timeout : float, optional
        Seconds each call may run. A call that overruns is stopped and fails with a
        :class:`~acme_core.errors.CallTimeoutError` naming its task id and the limit
        (``retries`` apply); the others go on. Python code is interrupted where it
        runs; a worker stuck in code that cannot be interrupted is replaced where
        the backend can. With ``debug=True`` the limit holds for Python code and
        system calls (``SIGALRM``).
    resources : dict, optional
        What each worker needs: ``{"cores": 4, "gpus": 1, "mem": "8GB"}`` (any of
        them). The backend maps them to its scheduler (SLURM ``--cpus-per-task``,
        ``--gres=gpu:N``, ``--mem``; SGE ``-pe``/``-l``; PBS ``-l select``) or to its
        workers; a backend that cannot honour them is refused.
    retry_memory_factor : float, optional
        A call that failed by exceeding its worker's memory runs again on a worker
        with this many times more memory (job-queue backends; up to the largest
        node). Off by default.

    Attributes
    ----------
    output_dir : pathlib.Path or None
        The run directory (None with ``write_worker_results=False`` and the memory store).
    results_container : str or None
        The file that holds or links every result, where the store makes one.
    kwargv : dict
        ACME's view of the keyword arguments: keyword -> the ``n_calls`` values it splits
        into, or ``[value]`` for one shared whole; edits before ``compute()`` are honoured
        as ACME honours them (see :doc:`/migration`).
    executor : Executor or None
        The backend's executor while a computation runs.

    Notes
    -----
    ``compute()`` runs every call and returns all results at the end;
    ``iter_results()`` runs them too but yields ``(task_id, result)`` as each call
    finishes (completion order), to start analysing before the last call is done,
    and raises ParallelMapError after the iteration when calls failed, as
    ``compute()`` does.

    Calling ``compute()`` again finishes what the earlier call left undone: when
    calls failed (or an interruption stopped it), only those run again, and the
    full results come back; after a complete run it returns the same results
    without running anything.

    Examples
    --------
    >>> def f(x, y, z=3):
    ...     return (x + y) * z
    >>> with ParallelMap(f, [2, 4, 6, 8], 4) as pmap:      # doctest: +SKIP
    ...     results = pmap.compute()
    >>> with ParallelMap(f, [2, 4, 6, 8], 4) as pmap:      # doctest: +SKIP
    ...     for task_id, path in pmap.iter_results():
    ...         print(task_id, path)                       # as each call finishes
    """

    def __init__(self, func: Any, *args: Any, n_inputs: int | str = "auto",
                 write_worker_results: bool = True,
                 output_dir: str | os.PathLike[str] | None = None,
                 result_shape: tuple[Any, ...] | list[Any] | None = None,
                 result_dtype: str = "float", single_file: bool = False,
                 write_pickle: bool = False, partition: str = "auto",
                 n_workers: int | str = "auto", mem_per_worker: str = "auto",
                 setup_timeout: int = 60, setup_interactive: bool = True,
                 stop_client: bool | str = "auto", verbose: bool | None = None,
                 dryrun: bool | str = False, logfile: bool | str | None = None,
                 cleanup_threshold_days: int | None = None,
                 backend: Any = "auto", store: Any = None,
                 backend_options: dict[str, Any] | None = None,
                 store_options: dict[str, Any] | None = None, resume: bool = False,
                 retries: int = 0, progress: bool | str = "auto",
                 chunk_size: int | str = "auto", timeout: float | None = None,
                 resources: dict[str, Any] | None = None,
                 retry_memory_factor: float | None = None, **kwargs: Any) -> None:
        early = EarlyRecords().start()
        try:
            n_calls_spec = validate_n_inputs(n_inputs)
            self.dist: Distribution = distribute(func, args, kwargs, n_calls_spec)
            self.options = RunOptions.from_keywords(
                write_worker_results=write_worker_results, output_dir=output_dir,
                result_shape=result_shape, result_dtype=result_dtype, single_file=single_file,
                write_pickle=write_pickle, partition=partition, n_workers=n_workers,
                mem_per_worker=mem_per_worker, setup_timeout=setup_timeout,
                setup_interactive=setup_interactive, stop_client=stop_client, verbose=verbose,
                dryrun=dryrun, logfile=logfile, cleanup_threshold_days=cleanup_threshold_days,
                backend=backend, store=store, backend_options=backend_options,
                store_options=store_options, resume=resume, retries=retries,
                progress=progress, chunk_size=chunk_size, timeout=timeout,
                resources=resources, retry_memory_factor=retry_memory_factor)
            self._plan(func)  # phase 1: everything checked, nothing started or written
            self._open_run_directory()  # phase 2: run directory, containers, manifest
        except BaseException:
            early.stop(failed=True)
            lock = self.__dict__.get("_lock")
            if lock is not None:
                lock.release()
            raise
        early.stop()
        # the log file tells the whole story, construction included
        self.logging.attach(replay=early.records)
        try:
            from acme_core._version import __version__

            log.info("This is acme-core v. %s", __version__)
            if self.output_dir is not None:
                log.debug("Run directory: %s", self.output_dir)
            if self.options.dryrun:
                self._dryrun()
        finally:
            self.logging.detach()  # re-attached by __enter__ / compute()

    # ------------------------------------------------------------ construction
    def _plan(self, func: Any) -> None:
        """Phase 1: resolve the store and the backend, check resume; nothing is written."""
        o = self.options
        self.func = func
        #: the function's name as the run's files are named (safe as a file name)
        self.func_name = file_stem(describe_func(func))
        n_calls = self.dist.n_calls
        flags = Flags(o.write_worker_results, o.single_file, o.write_pickle)
        shape_spec = warn_ignored_flags(flags, o.output_dir, o.result_shape)
        self.stacked: StackedShape | None = validate_result_shape(
            shape_spec, o.result_dtype, n_calls, in_memory=not o.write_worker_results)
        #: setup_interactive, and somebody can answer (a terminal on stdin)
        self.interactive = o.setup_interactive
        self.store = resolve_store(o.store, flags, o.store_options, self.dist.pass_task_id)
        self.backend: BackendPlan = resolve_backend(o.backend, o.backend_options,
                                                    o.cluster_keywords, o.backend_requests)
        if not self.backend.runs_in_this_process:
            check_picklable(func, self.dist, self.backend.sendable_check())
        #: ACME's per-keyword view of the arguments: keyword -> one value per call, or
        #: ``[value]`` for a value every call shares. Edits before the first compute()
        #: are honoured as ACME honours them (``kwargv[key] = [value]`` shares ``value``
        #: whole); :func:`acme_core.shared` is the direct way to do that.
        self.kwargv: dict[str, list[Any]] = kwargv_of(self.dist)
        out = o.output_dir
        if not self.store.writes_files:
            out = None
            if o.resume:
                raise ArgumentValueError(f"`resume=True` needs a store that writes files, not "
                                         f"{self.store.name!r}", parameter="resume")
        elif o.resume and out is None:
            raise ArgumentValueError("`resume=True` needs `output_dir`: the directory of the "
                                     "run to finish", parameter="resume")
        self.resume = o.resume
        # only runs that leave files behind can be resumed, so only they pay for hashing
        self.arguments_fingerprint = fingerprint(self.dist) if self.store.writes_files else None
        self.manifest: Manifest | None = None
        if o.resume:
            assert out is not None
            self.manifest = self._check_resumable(out, n_calls)
        elif out is not None:
            _refuse_another_run(out)
        self.output_dir: Path | None = out
        self._check_store_run()

    def _check_store_run(self) -> None:
        """The store's own check of this run (:class:`~acme_core.store.ChecksRun`), in phase 1."""
        if self.dist.n_calls > MAX_CALLS:
            raise ArgumentValueError(f"`n_inputs`: {self.dist.n_calls:,} calls are more than the "
                                     f"limit of {MAX_CALLS:,} a run can hold",
                                     parameter="n_inputs")
        if isinstance(self.store, ChecksRun):
            stacked = self.stacked
            self.store.check_run(RunInfo(
                func_name=self.func_name, n_calls=self.dist.n_calls, output_dir=self.output_dir,
                result_shape=stacked.shape if stacked else None,
                result_dtype=stacked.dtype if stacked else None,
                stacking_dim=stacked.stacking_dim if stacked else None, resume=self.resume))

    def _open_run_directory(self) -> None:
        """Phase 2: the run directory, the store's containers, the manifest, the log file."""
        o = self.options
        out = self.output_dir
        if self.store.writes_files and out is None:
            base = Path.cwd()
            cleanup_old_runs(base, o.cleanup_threshold_days, self.interactive)
            out = self.output_dir = base / f"ACME_{datetime.now():%Y%m%d-%H%M%S-%f}"
        stacked = self.stacked
        self.run = RunInfo(func_name=self.func_name, n_calls=self.dist.n_calls, output_dir=out,
                           result_shape=stacked.shape if stacked else None,
                           result_dtype=stacked.dtype if stacked else None,
                           stacking_dim=stacked.stacking_dim if stacked else None,
                           resume=self.resume)
        self._lock: RunLock | None = None
        if out is not None:
            try:
                out.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise RunDirectoryError(f"automatic creation of output folder {out} failed: "
                                        f"{exc}") from exc
            self._lock = self._take(out)
        self.store.prepare(self.run)
        self.results_container: str | None = self.store.results_container
        if out is not None and self.manifest is None:
            self.manifest = self._new_manifest(out)
            self.manifest.save()
        self.logging = RunLogging(o.verbose, self._log_path(o.logfile, out))
        self._ledger = Ledger(self.dist.n_calls, self.manifest,
                              heartbeat=self._lock.refresh if self._lock else None)
        self._loop = RunLoop(self.func, self.dist, self.func_name, o.retries, o.chunk_size,
                             o.progress, timeout=o.timeout,
                             no_worker_timeout=float(o.setup_timeout),
                             block_calls=block_calls_of(self.store, self.run))
        self.state = RunState.READY
        self.executor: Any = None
        self._owns_executor = False
        self._in_context = False
        self._results: Any = None
        #: the handle of the run submit() launched (compute() is refused then)
        self._detached: detached.RunHandle | None = None
        #: the dry run's measurement and estimate (an acme_core.dryrun.Estimate)
        self.dryrun_estimate: dr.Estimate | None = None

    def _take(self, out: Path) -> RunLock:
        """Own the run directory until the run finished (see :mod:`acme_core.run_directory`).

        A dead driver's half-written manifest goes once the directory is ours.
        """
        lock = RunLock(out, uuid.uuid4().hex)
        lock.acquire()
        weakref.finalize(self, lock.release)  # also when the object is dropped unfinished
        remove_partials(out, lambda name: final_name_of(name) == MANIFEST_NAME)
        return lock

    def _new_manifest(self, out: Path) -> Manifest:
        stacked = self.stacked
        return Manifest.new(
            out, func_name=self.func_name, n_calls=self.dist.n_calls, store=self.store.name,
            result_shape=[None if i == stacked.stacking_dim else s
                          for i, s in enumerate(stacked.shape)] if stacked else None,
            result_dtype=str(stacked.dtype) if stacked else None,
            stacking_dim=stacked.stacking_dim if stacked else None,
            arguments=self.arguments_fingerprint, run_id=uuid.uuid4().hex)

    def _check_resumable(self, out: Path, n_calls: int) -> Manifest:
        if not Manifest.exists(out):
            raise ArgumentValueError(f"`resume=True`: {out} holds no acme-core run (no "
                                     "manifest)", parameter="resume")
        manifest = Manifest.load(out)
        for key, ours in (("func_name", self.func_name), ("n_calls", n_calls),
                          ("store", self.store.name)):
            if manifest.get(key) != ours:
                raise ArgumentValueError(
                    f"`resume=True`: the run in {out} has {key}={manifest.get(key)!r}, this one "
                    f"has {key}={ours!r}", parameter="resume")
        theirs, ours_fp = manifest.get("arguments"), self.arguments_fingerprint
        if theirs is not None and ours_fp is not None and theirs != ours_fp:
            raise ArgumentValueError(
                f"`resume=True`: the run in {out} was made with different arguments "
                f"(fingerprint {theirs}, this one has {ours_fp}); give the same inputs, or a "
                "new output_dir for a new run", parameter="resume")
        if theirs is None or ours_fp is None:
            log.warning("`resume=True`: the arguments cannot be compared with the earlier run's "
                        "(not deterministically hashable); assuming they are the same")
        return manifest

    def _log_path(self, choice: bool | Path | None, out: Path | None) -> Path | None:
        if isinstance(choice, Path):
            return choice
        if choice is False or (choice is None and out is None):
            return None
        return log_file_name(out or Path.cwd(), self.func_name)

    # ------------------------------------------------------------ executor
    def _backend_hints(self) -> dict[str, Any]:
        """ACME's cluster keywords plus what a backend may want to know about the run.

        Only the ones a backend's signature names reach it: ``run_dir`` (job
        logs go there) and ``n_calls`` (``n_workers="auto"`` on a job queue).
        """
        return {**self.options.cluster_keywords, "run_dir": self.output_dir,
                "n_calls": self.dist.n_calls}

    def _start_executor(self) -> Any:
        if self.executor is not None:
            return self.executor
        plan = self.backend
        if plan.cls is not None:
            self.executor = plan.cls(**plan.options(self._backend_hints()))
            self._owns_executor = owns_resources(self.executor, created_here=True)
        else:
            self.executor, self._owns_executor = plan.instance, False
        # The dashboard link, once per cluster: setups that start one announce it
        # themselves (``announces_dashboard``); for the others it is said here.
        self._loop.owns_executor = self._owns_executor
        if isinstance(self.executor, HasDashboard) and \
                not executor_info(type(self.executor)).announces_dashboard:
            link = self.executor.dashboard_link
            if link:
                log.info("Dask dashboard: %s", link)
        return self.executor

    def _stop_executor(self) -> None:
        """Stop the executor as ``stop_client`` says ("auto": only what this run started)."""
        executor = self.executor
        if executor is None:
            return
        stop_client = self.options.stop_client
        stop = self._owns_executor if stop_client == "auto" else stop_client
        if not stop:
            return
        self.executor = None
        if not self._owns_executor and isinstance(executor, StopsBorrowed):
            executor.stop_borrowed()  # stop_client=True: also what the user brought
        executor.shutdown()

    # ------------------------------------------------------------ context
    @property
    def n_calls(self) -> int:
        """How many times the function runs (one call per element of the split arguments)."""
        return self.dist.n_calls

    @property
    def logfile(self) -> Path | None:
        """The file the run's log goes to (None: no log file)."""
        return self.logging.logfile

    def __enter__(self) -> ParallelMap:
        self._in_context = True
        self.logging.attach()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._in_context = False
        try:
            self._stop_executor()
        finally:
            self._release()
            self.logging.detach()

    def _release(self) -> None:
        """Give the run directory free (a later compute() takes it again if it can)."""
        if self._lock is not None and self.state is not RunState.RUNNING:
            self._lock.release()

    def cleanup(self) -> None:
        """Stop the executor if ``stop_client`` says so (what leaving the ``with`` block does)."""
        self._stop_executor()

    # ------------------------------------------------------------ dry run
    def _dryrun(self) -> None:
        """Run one randomly chosen call here, report the estimate, go on or stop.

        See :mod:`acme_core.dryrun`. The call's result is dropped: nothing is
        written and no call is marked finished.
        """
        todo = self.manifest.missing() if self.resume and self.manifest is not None \
            else list(range(self.dist.n_calls))
        if not todo:
            log.info("Dry run skipped: every call of %s has finished already", self.func_name)
            return
        plan = self.backend
        options = {"n_workers": self.options.n_workers, **self.options.backend_options}
        if plan.cls is not None:
            options.update(plan.options(self.options.cluster_keywords))
        workers = dr.expected_workers(options, plan.cls or plan.instance)
        try:
            self.dryrun_estimate = estimate = dr.dry_run(
                self.func, self.dist, todo, self.func_name, workers,
                in_memory=not self.store.writes_files)
        except BaseException:
            self._dryrun_discard()
            self._release()
            raise
        if not dr.go_on_after(estimate, self.options.dryrun, self.interactive):
            self.state = RunState.DECLINED
            self._dryrun_discard()
            self._release()

    def _dryrun_discard(self) -> None:
        """Remove the run directory's files of a run that will not happen (not on resume)."""
        if self.output_dir is None or self.manifest is None or self.resume:
            return
        created = self.manifest.get("created")
        since = datetime.fromisoformat(created).timestamp() - 1 if created else 0.0
        logfile = self.logging.logfile
        ours = logfile is not None and logfile.parent == self.output_dir
        self.logging.detach()
        if self._lock is not None:
            self._lock.release()  # the lock file goes first: the directory may go with it
        dr.discard_run(self.output_dir, self.func_name, logfile if ours else None, since)
        if ours:
            self.logging.logfile = None  # attaching again must not recreate the directory
        self.manifest = self._ledger.manifest = None
        self.results_container = None

    # ------------------------------------------------------------ compute
    def compute(self, debug: bool = False) -> Any:
        """Run every call that is not finished yet and return the results.

        Parameters
        ----------
        debug : bool
            Run every call sequentially in this process, without a cluster, so an
            exception surfaces with its own traceback and ``pdb`` works.

        Returns
        -------
        list or numpy.ndarray or None
            ``"hdf5"``: the per-call file paths; ``"hdf5-single"``: ``[container]``;
            ``"pickle"``: the pickle paths; ``"memory"``: the return values (or a
            stacked array with ``result_shape``). None after a dry run that stopped.

        Raises
        ------
        ParallelMapError
            Some calls failed; finished results are kept and listed in the error.
            Calling ``compute()`` again runs only the failed and missing calls.
        """
        if not isinstance(debug, bool):
            raise ArgumentTypeError(f"`debug` has to be `True` or `False`, not {type(debug)}",
                                    parameter="debug")
        self.logging.attach()
        try:
            run = self._execute(debug, stream=False)
            while True:  # with stream=False the generator yields nothing but returns
                try:
                    next(run)
                except StopIteration as stop:
                    return stop.value
        finally:
            if not self._in_context:
                self.logging.detach()

    def submit(self) -> detached.RunHandle:
        """Queue every call not finished yet as batch jobs and return without waiting.

        Needs a backend whose jobs outlive this process (``"slurm-array"``,
        ``"sge-array"``: :class:`~acme_core.executor.RunsDetached`) and a store that
        writes files. The returned handle (as :meth:`attach` from any later process,
        or ``acme status|wait|cancel RUN``) reports, waits, collects and cancels.

        Returns
        -------
        acme_core.detached.RunHandle
        """
        self.logging.attach()
        try:
            handle = detached.submit(self)
        finally:
            if not self._in_context:
                self.logging.detach()
        self.state = RunState.INCOMPLETE
        self._detached = handle
        return handle

    @staticmethod
    def attach(output_dir: str | os.PathLike[str]) -> detached.RunHandle:
        """The detached run in ``output_dir`` (see :meth:`submit`), from any process.

        Raises
        ------
        NoRunError
            ``output_dir`` holds no detached run.
        """
        return detached.RunHandle(output_dir)

    def iter_results(self) -> Iterator[tuple[int, Any]]:
        """Run the calls and yield ``(task_id, result)`` as each call finishes.

        For analysing results while the run goes on. ``result`` is what
        ``compute()`` returns for that call: the return value for the ``"memory"``
        store, the path of the call's result file for the file stores. Calls come
        in completion order; on ``resume=True`` (or a second pass) the calls
        finished earlier come first. Every store writes, and the manifest records,
        exactly what ``compute()`` would.

        Raises
        ------
        ParallelMapError
            After the last finished call was yielded, when some calls failed
            (finished results are kept, as with ``compute()``).

        Notes
        -----
        Nothing runs until the loop asks for the first result. Leaving the loop
        early (``break``) cancels the calls still outstanding; the finished ones
        stay on disk and a later ``compute()`` (or a run with ``resume=True``)
        finishes the rest.

        The name follows ``open_results``: it yields what ``compute()`` returns,
        one call at a time (``as_completed`` would suggest futures).
        """
        self.logging.attach()
        run = self._execute(False, stream=True)
        try:
            for batch in run:
                yield from batch
        finally:
            run.close()  # an early break: cancel the outstanding calls, keep the finished ones
            if not self._in_context:
                self.logging.detach()

    def _execute(self, debug: bool, stream: bool) -> Generator[Batch, None, Any]:
        """Run what is left to run; with ``stream`` yield each batch of finished calls.

        Returns (through ``StopIteration``) what ``compute()`` returns. Shared by
        :meth:`compute` and :meth:`iter_results`, so both record, report and
        finalize alike.
        """
        todo = self._begin()
        if todo is None:
            if stream and self.state is RunState.FINISHED:  # the same calls once more
                yield list(enumerate(self._ledger.references))
            return self._results
        ledger = self._ledger
        ledger.start(todo, stream)
        self.state = RunState.RUNNING
        try:
            if not debug and todo and detached.whole_runs(self._start_executor(), ledger):
                # a backend whose jobs outlive the driver runs the whole run (detached.py)
                yield from detached.run_whole(self._loop, ledger, todo, self.store,
                                              self.options.store_options, self.executor)
            else:
                yield from self._loop.run(ledger, todo, self.store.writer(),
                                          self._start_executor, debug)
        except BaseException as exc:
            self._stopped(exc, todo)
            raise
        finally:
            ledger.bar.close()
        return self._finish()

    def _begin(self) -> list[int] | None:
        """The calls this pass runs (None: nothing to run, return the earlier results)."""
        if self._detached is not None:
            raise UsageError("this run was submitted: wait for it and collect it through the "
                             "handle submit() returned, or ParallelMap.attach(output_dir)")
        if self.state is RunState.DECLINED:
            log.info("No run after the dry run: nothing to compute")
            return None
        if self.state is RunState.RUNNING:
            raise UsageError("ParallelMap is running already: finish (or leave) the earlier "
                             "iter_results() loop first")
        if self.state is RunState.FINISHED:
            log.info("Every call of %s has finished already: returning the results",
                     self.func_name)
            return None
        if self.state is RunState.READY and apply_kwargv(self.dist, self.kwargv):
            self._arguments_edited()
        if self._lock is not None:
            self._lock.acquire()  # ours still, or free again; another run's: refused
        ledger = self._ledger
        if self.state is RunState.INCOMPLETE:
            # a second pass: the store picks up what is on disk, as on resume
            self.run = replace(self.run, resume=True)
            self.store.prepare(self.run)
            log.info("Running the %d calls of %s not finished before", len(ledger.todo()),
                     self.func_name)
        elif self.resume and self.manifest is not None:
            # The manifest is the only source of truth of what belongs to the run: a file on
            # disk it does not list (a stale or planted one) runs again and is replaced; one
            # it lists but that is gone from disk (or does not open) runs again too.
            listed = self.manifest.finished
            ledger.adopt({i: r for i, r in self.store.existing().items() if i in listed})
            log.info("Resuming %s: %d of %d calls already finished", self.output_dir,
                     len(ledger.done), self.dist.n_calls)
        return ledger.todo()

    def _arguments_edited(self) -> None:
        """``kwargv`` was edited after construction: check the arguments and record them."""
        log.debug("kwargv was edited: the calls get the edited keyword arguments")
        self.kwargv = kwargv_of(self.dist)
        if not self.backend.runs_in_this_process:
            check_picklable(self.func, self.dist, self.backend.sendable_check())
        if not self.store.writes_files:
            return
        self.arguments_fingerprint = fingerprint(self.dist)
        if self.manifest is not None and not self.resume:
            self.manifest.data["arguments"] = self.arguments_fingerprint
            self._ledger.save()

    def _stopped(self, exc: BaseException, todo: list[int]) -> None:
        """The pass ended early (error, Ctrl-C, a ``break``): keep what finished, say so."""
        self.state = RunState.INCOMPLETE
        ledger = self._ledger
        if isinstance(exc, KeyboardInterrupt) and self.store.writes_files:
            # results that reached the disk while the driver was stopping count too
            with contextlib.suppress(Exception):
                ledger.adopt({i: r for i, r in self.store.existing().items()
                              if i not in ledger.done})
        ledger.save()
        kept = len(ledger.done)
        hint = (f"; rerun with resume=True and output_dir={str(self.output_dir)!r} to finish "
                "the rest" if self.output_dir is not None else "")
        if isinstance(exc, KeyboardInterrupt):
            log.warning("Interrupted: %d calls finished and kept%s", kept, hint)
            self._stop_executor()
        elif isinstance(exc, GeneratorExit):
            log.info("Stopped before the end: %d calls finished and kept%s", kept, hint)
            if not self._in_context:
                self._stop_executor()
        elif not self._in_context:
            self._stop_executor()

    def _finish(self) -> Any:
        """Every call settled: finalize the store, report, return what compute() returns."""
        ledger = self._ledger
        failures = ledger.failures
        ledger.save(complete=not failures)
        try:
            results = self.store.finalize(ledger.references, set(failures))
        except OSError as exc:  # the run directory cannot be written (full, read-only, gone)
            ledger.save_error = exc
            results = ledger.references
        self.results_container = self.store.results_container
        if ledger.save_error is not None:
            self.state = RunState.INCOMPLETE
            if not self._in_context:
                self._stop_executor()
            raise storage_error(ledger.save_error, failures, ledger.references,
                                self.func_name, self.output_dir)
        if not self._in_context:
            self._stop_executor()
        if failures:
            self.state = RunState.INCOMPLETE
            n = self.dist.n_calls
            per_call = results if isinstance(results, list) and len(results) == n \
                else ledger.references
            raise failure_error(failures, per_call, n, self.func_name, self.output_dir)
        self.state = RunState.FINISHED
        self._results = results
        self._release()
        log.info("SUCCESS! Finished parallel computation")
        if self.results_container:
            log.info("Results have been saved to %s", self.results_container)
        elif self.output_dir is not None:
            log.info("Results have been saved to %s", self.output_dir)
        return results


def _refuse_another_run(out: Path) -> None:
    """A new run never writes into a directory that holds another run (ACME refuses too)."""
    if not Manifest.exists(out):
        return
    try:
        earlier = Manifest.load(out)
        what = (f"a run of {earlier.get('func_name')!r} ({len(earlier.finished)} of "
                f"{earlier.get('n_calls')} calls finished)")
    except (OSError, ValueError):
        what = "a run (its manifest cannot be read)"
    raise ArgumentValueError(
        f"`output_dir` {out} holds {what}. acme-core never mixes two runs in one directory: "
        "finish that run with resume=True, or give a new output_dir (or remove the old one)",
        parameter="output_dir")
