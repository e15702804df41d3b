"""``ParallelMap``: call one function many times, in parallel, and keep every result.

Construction validates everything and distributes the arguments without side
effects; then it creates the run directory (containers, manifest, log file).
The executor (dask client or other backend) starts at the first ``compute()``.
"""

from __future__ import annotations

import inspect
import logging
import os
import random
import sys
import traceback
from collections.abc import Generator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from acme_core import options as opt
from acme_core import validation
from acme_core.arguments import (
    Distribution,
    approx_size,
    describe_func,
    distribute,
    fingerprint,
)
from acme_core.dispatch import Dispatcher, TaskContext
from acme_core.errors import ParallelMapError, check_requirements
from acme_core.executor import (
    ChecksOptions,
    Executor,
    HasDashboard,
    StopsBorrowed,
    executor_info,
    owns_resources,
)
from acme_core.logs import EarlyRecords, RunLogging, log_file_name
from acme_core.main_guard import check_main_guard
from acme_core.manifest import Manifest
from acme_core.plugins import auto_backend, list_backends, list_stores, lookup
from acme_core.prompts import can_ask, yes_no
from acme_core.store import RunInfo
from acme_core.task import CallOutcome, assemble

log = logging.getLogger("acme")

# ACME keywords that reach an executor class when its signature accepts them
CLUSTER_KEYWORDS = ("n_workers", "partition", "mem_per_worker", "setup_timeout", "setup_interactive")


def _flag_store(write_worker_results: bool, single_file: bool, write_pickle: bool) -> str:
    if not write_worker_results:
        return "memory"
    if write_pickle:
        return "pickle"
    if single_file:
        return "hdf5-single"
    return "hdf5"


def _accepted(cls: Any, candidates: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``candidates`` that ``cls(...)`` names as parameters.

    A ``**kwargs`` catch-all does not count: it usually forwards to a library
    (LocalCluster, dask-jobqueue) that would reject ACME's names.
    """
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return {}
    return {k: v for k, v in candidates.items()
            if k in params and params[k].kind is not params[k].VAR_KEYWORD}


def _check_options(cls: Any, options: dict[str, Any], parameter: str) -> None:
    """Fail early (before anything starts) when ``cls`` cannot take ``options``.

    Also checks the optional dependencies the class declares (``requires``).
    """
    kind = "store" if parameter == "store_options" else "backend"
    check_requirements(cls, f"The {kind} {getattr(cls, 'name', cls.__name__)!r}")
    try:
        inspect.signature(cls).bind_partial(**options)
        if isinstance(cls, ChecksOptions):
            cls.check_options(options)
    except TypeError as exc:
        raise ValueError(f"`{parameter}` {options!r} do not fit {cls.__name__}: {exc}") from None
    except ValueError:  # signature not inspectable: let the class decide
        pass


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
        ``mem_per_worker`` size an auto-started local cluster too.
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
        to the function (a wrong signature fails the same way every time). A call
        whose worker died (killed, out of memory, node lost) is rerun on another
        worker even with ``retries=0`` (up to 3 times, or ``retries`` if higher).
    progress : "auto" or bool
        Progress bar (tqdm; a widget in notebooks) with calls done / failed /
        running and an ETA, fed by completion events; "auto" shows it in
        interactive sessions (stderr is a terminal, or a Jupyter kernel), not in
        batch jobs.
    chunk_size : int or "auto"
        Calls per executor task; "auto" sizes chunks from measured call durations
        and the number of workers (every call still has its own result, failure
        and retries).

    Notes
    -----
    ``compute()`` runs every call and returns all results at the end;
    ``iter_results()`` runs them too but yields ``(task_id, result)`` as each call
    finishes (completion order), to start analysing before the last call is done,
    and raises ParallelMapError after the iteration when calls failed, as
    ``compute()`` does.

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
                 write_worker_results: bool = True, output_dir: str | os.PathLike[str] | None = None,
                 result_shape: tuple[Any, ...] | list[Any] | None = None, result_dtype: str = "float",
                 single_file: bool = False, write_pickle: bool = False, partition: str = "auto",
                 n_workers: int | str = "auto", mem_per_worker: str = "auto",
                 setup_timeout: int = 60, setup_interactive: bool = True,
                 stop_client: bool | str = "auto", verbose: bool | None = None,
                 dryrun: bool | str = False, logfile: bool | str | None = None,
                 cleanup_threshold_days: int | None = None,
                 backend: Any = "auto", store: Any = None,
                 backend_options: dict[str, Any] | None = None,
                 store_options: dict[str, Any] | None = None, resume: bool = False,
                 retries: int = 0, progress: bool | str = "auto", chunk_size: int | str = "auto",
                 **kwargs: Any) -> None:
        # ---- 1. validate everything; nothing is started or written here -----
        early = EarlyRecords().start()
        try:
            self._setup(func, args, kwargs, n_inputs, write_worker_results, output_dir,
                        result_shape, result_dtype, single_file, write_pickle, partition,
                        n_workers, mem_per_worker, setup_timeout, setup_interactive,
                        stop_client, verbose, logfile, cleanup_threshold_days, backend, store,
                        backend_options, store_options, resume, retries, progress, chunk_size,
                        dryrun)
        except BaseException:
            early.stop(failed=True)
            raise
        early.stop()
        # ---- 3. the log file tells the whole story, construction included ----
        self.logging.attach(replay=early.records)
        try:
            from acme_core import __version__

            log.info("This is acme-core v. %s", __version__)
            if self.output_dir is not None:
                log.debug("Run directory: %s", self.output_dir)
            self.executor: Any = None
            self._owns_executor = False
            self._in_context = False
            self._declined = False
            #: the dry run's measurement and estimate (an acme_core.dryrun.Estimate)
            self.dryrun_estimate: Any = None
            if dryrun:
                self._dryrun()
        finally:
            self.logging.detach()  # re-attached by __enter__ / compute()

    def _setup(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
               n_inputs: int | str, write_worker_results: bool,
               output_dir: str | os.PathLike[str] | None, result_shape: Any, result_dtype: str,
               single_file: bool, write_pickle: bool, partition: str, n_workers: int | str,
               mem_per_worker: str, setup_timeout: int, setup_interactive: bool,
               stop_client: bool | str, verbose: bool | None, logfile: bool | str | None,
               cleanup_threshold_days: int | None, backend: Any, store: Any,
               backend_options: dict[str, Any] | None, store_options: dict[str, Any] | None,
               resume: bool, retries: int, progress: bool | str,
               chunk_size: int | str, dryrun: bool | str) -> None:
        """Validate every keyword (phase 1), then create the run directory (phase 2)."""
        self.func = func
        self.n_inputs = opt.validate_n_inputs(n_inputs)
        self.dist: Distribution = distribute(func, args, kwargs, self.n_inputs)
        self.func_name = describe_func(func)
        n_calls = self.dist.n_calls
        from acme_core.dryrun import validate as validate_dryrun

        self.dryrun = validate_dryrun(dryrun)
        validation.boolean(setup_interactive, "setup_interactive")
        validation.boolean(write_worker_results, "write_worker_results")
        validation.boolean(single_file, "single_file")
        validation.boolean(write_pickle, "write_pickle")
        if write_pickle and single_file:
            raise ValueError("Pickling of results does not support single output file creation.")
        out = opt.validate_output_dir(output_dir)
        self.verbose = opt.validate_verbose(verbose)
        logfile_choice = opt.validate_logfile(logfile)
        if write_pickle and result_shape is not None and write_worker_results:
            log.warning("Pickling of results does not support output array shape specification.")
            result_shape = None
        shape, stacking_dim, dtype = opt.validate_result_shape(
            result_shape, result_dtype, n_calls, in_memory=not write_worker_results)
        self.n_workers = opt.validate_n_workers(n_workers)
        validation.scalar(setup_timeout, "setup_timeout", lims=(0, float("inf")))
        self.stop_client = opt.validate_stop_client(stop_client)
        opt.validate_partition(partition)
        validation.mem_spec(mem_per_worker)
        self.backend_options = opt.validate_options_dict(backend_options, "backend_options")
        self.store_options = opt.validate_options_dict(store_options, "store_options")
        validation.boolean(resume, "resume")
        self.retries = int(validation.scalar(retries, "retries", lims=(0, float("inf"))))
        self.progress = opt.validate_progress(progress)
        self.chunk_size = opt.validate_chunk_size(chunk_size)
        cleanup_days = opt.validate_cleanup_days(cleanup_threshold_days)
        # setup_interactive means nothing when nobody can answer (CI, batch jobs)
        self.interactive = setup_interactive and can_ask()
        self.cluster_keywords = {"n_workers": self.n_workers, "partition": partition,
                                 "mem_per_worker": mem_per_worker, "setup_timeout": setup_timeout,
                                 "setup_interactive": self.interactive}

        if not write_worker_results:
            if write_pickle:
                log.warning("Pickling of results only possible if `write_worker_results` is `True`")
            if single_file:
                log.warning("Generating a single output file only possible if "
                            "`write_worker_results` is `True`.")
            if out is not None:
                log.warning("Output directory specification has no effect if "
                            "`write_worker_results` is `False`.")
        flag_store = _flag_store(write_worker_results, single_file, write_pickle)
        self.store = self._resolve_store(store, flag_store, write_worker_results, single_file,
                                         write_pickle)
        self._backend_spec = self._resolve_backend(backend)
        self._check_main_guard()
        if resume and out is None:
            raise ValueError("`resume=True` needs `output_dir`: the directory of the run to finish")
        if not self.store.writes_files:
            out = None
            if resume:
                raise ValueError(f"`resume=True` needs a store that writes files, not "
                                 f"{self.store.name!r}")
        self.resume = resume
        self.manifest: Manifest | None = None
        # only runs that leave files behind can be resumed, so only they pay for hashing
        self.arguments_fingerprint = fingerprint(self.dist) if self.store.writes_files else None
        if resume:
            assert out is not None
            self.manifest = self._check_resumable(out, n_calls)

        # ---- 2. side effects: run directory, containers, manifest, log ------
        if self.store.writes_files and out is None:
            base = Path.cwd()
            from acme_core.housekeeping import cleanup_old_runs

            cleanup_old_runs(base, cleanup_days, self.interactive)
            out = base / f"ACME_{datetime.now():%Y%m%d-%H%M%S-%f}"
        self.output_dir = out
        self.run = RunInfo(func_name=self.func_name, n_calls=n_calls, output_dir=out,
                           result_shape=shape, result_dtype=dtype, stacking_dim=stacking_dim,
                           resume=resume)
        if out is not None:
            try:
                out.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise OSError(f"automatic creation of output folder {out} failed: {exc}") from exc
        self.store.prepare(self.run)
        self.results_container: str | None = getattr(self.store, "results_container", None)
        if out is not None and self.manifest is None:
            self.manifest = Manifest.new(
                out, func_name=self.func_name, n_calls=n_calls, store=self.store.name,
                result_shape=[None if i == stacking_dim else s for i, s in enumerate(shape)]
                if shape is not None else None,
                result_dtype=str(dtype) if dtype is not None else None,
                stacking_dim=stacking_dim, arguments=self.arguments_fingerprint)
            self.manifest.save()
        self.logging = RunLogging(self.verbose, self._log_path(logfile_choice, out))

    # ------------------------------------------------------------------ setup
    def _resolve_store(self, store: Any, flag_store: str, write_worker_results: bool,
                       single_file: bool, write_pickle: bool) -> Any:
        if store is None:
            if flag_store == "memory" and self.dist.pass_task_id:
                # ACME: a func that declares taskID handles its own output; nothing is collected
                self.store_options.setdefault("collect", False)
            cls = lookup("store", flag_store, list_stores(), "store")
            _check_options(cls, self.store_options, "store_options")
            return cls(**self.store_options)
        name = store if isinstance(store, str) else getattr(store, "name", None)
        contradictions = []
        if not write_worker_results and name != "memory":
            contradictions.append("write_worker_results=False")
        if write_pickle and name != "pickle":
            contradictions.append("write_pickle=True")
        if single_file and write_worker_results and name != "hdf5-single":
            contradictions.append("single_file=True")
        if contradictions:
            raise ValueError(f"`store` {name!r} contradicts {', '.join(contradictions)} (that "
                             f"means store {flag_store!r}); give one or the other")
        if isinstance(store, str):
            cls = lookup("store", store, list_stores(), "store")
        elif isinstance(store, type):
            cls = store
        else:
            if self.store_options:
                raise ValueError("`store_options` cannot be applied to a store instance")
            return store
        _check_options(cls, self.store_options, "store_options")
        return cls(**self.store_options)

    def _resolve_backend(self, backend: Any) -> Any:
        """Return what to start later: an executor class, or the user's executor instance.

        ``"auto"`` is decided here, at construction, by the ``acme_auto_backend``
        hook (a site plugin's choice, else a running dask client, else a local
        cluster), so its options are checked before anything starts too.
        """
        self._preset_options: dict[str, Any] = {}
        if isinstance(backend, str):
            if backend == "auto":
                choice = auto_backend()
                backend, self._preset_options = choice.backend, choice.options
                if choice.builtin:
                    log.debug("backend='auto' chose %r", backend)
                else:
                    log.info("backend='auto': a site plugin chose %r (plugin %r)", backend,
                             choice.plugin)
            cls = lookup("backend", backend, list_backends(), "backend")
        elif isinstance(backend, type):
            cls = backend
        elif isinstance(backend, Executor):
            if self.backend_options:
                raise ValueError("`backend_options` cannot be applied to an executor instance")
            return backend
        else:
            raise TypeError(f"`backend` has to be 'auto', a backend name, an executor class or an "
                            f"executor, not {backend!r}")
        _check_options(cls, self._executor_options(cls, self.cluster_keywords), "backend_options")
        return cls

    def _executor_options(self, cls: type[Any], hints: dict[str, Any]) -> dict[str, Any]:
        """What ``cls`` is created with: the hints it names, a preset's values, then the user's.

        A site plugin's preset (``backend="auto"``) fills only what the user left
        unset or ``"auto"``; ``backend_options`` always win.
        """
        options = _accepted(cls, hints)
        for key, value in self._preset_options.items():
            if options.get(key) in (None, "auto"):
                options[key] = value
        return {**options, **self.backend_options}

    def _check_main_guard(self) -> None:
        """A backend starting local worker processes from a script without the guard: stop now."""
        spec = self._backend_spec
        if isinstance(spec, type) and executor_info(spec).starts_local_processes:
            check_main_guard()

    def _check_resumable(self, out: Path, n_calls: int) -> Manifest:
        if not Manifest.exists(out):
            raise ValueError(f"`resume=True`: {out} holds no acme-core run (no manifest)")
        manifest = Manifest.load(out)
        for key, ours in (("func_name", self.func_name), ("n_calls", n_calls),
                          ("store", self.store.name)):
            if manifest.get(key) != ours:
                raise ValueError(f"`resume=True`: the run in {out} has {key}={manifest.get(key)!r}, "
                                 f"this one has {key}={ours!r}")
        theirs, ours_fp = manifest.get("arguments"), self.arguments_fingerprint
        if theirs is not None and ours_fp is not None and theirs != ours_fp:
            raise ValueError(f"`resume=True`: the run in {out} was made with different arguments "
                             f"(fingerprint {theirs}, this one has {ours_fp}); give the same "
                             "inputs, or a new output_dir for a new run")
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

    def _backend_hints(self) -> dict[str, Any]:
        """ACME's cluster keywords plus what a backend may want to know about the run.

        Only the ones a backend's signature names reach it: ``run_dir`` (job
        logs go there) and ``n_calls`` (``n_workers="auto"`` on a job queue).
        """
        return {**self.cluster_keywords, "run_dir": self.output_dir, "n_calls": self.dist.n_calls}

    def _start_executor(self) -> Any:
        if self.executor is not None:
            return self.executor
        spec = self._backend_spec
        if isinstance(spec, type):
            self.executor = spec(**self._executor_options(spec, self._backend_hints()))
            self._owns_executor = owns_resources(self.executor, created_here=True)
            info = executor_info(spec)
        else:
            self.executor, self._owns_executor = spec, False
            info = executor_info(type(spec))
        # The dashboard link, once per cluster: setups that start one announce it
        # themselves (``announces_dashboard``); for the others it is said here.
        if isinstance(self.executor, HasDashboard) and not info.announces_dashboard:
            link = self.executor.dashboard_link
            if link:
                log.info("Dask dashboard: %s", link)
        return self.executor

    def _stop_executor(self) -> None:
        """Stop the executor as ``stop_client`` says ("auto": only what this run started)."""
        executor = self.executor
        if executor is None:
            return
        stop = self._owns_executor if self.stop_client == "auto" else self.stop_client
        if not stop:
            return
        self.executor = None
        if not self._owns_executor and isinstance(executor, StopsBorrowed):
            executor.stop_borrowed()  # stop_client=True: also what the user brought
        executor.shutdown()

    # ------------------------------------------------------------ context
    def __enter__(self) -> ParallelMap:
        self._in_context = True
        self.logging.attach()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._in_context = False
        try:
            self._stop_executor()
        finally:
            self.logging.detach()

    def cleanup(self) -> None:
        """Stop the executor if ``stop_client`` says so (what leaving the ``with`` block does)."""
        self._stop_executor()

    # ------------------------------------------------------------ dry run
    def _dryrun(self) -> None:
        """Run one randomly chosen call here, report the estimate, go on or stop.

        See :mod:`acme_core.dryrun`. The call's result is dropped: nothing is
        written and no call is marked finished.
        """
        from acme_core import dryrun as dr

        todo = self.manifest.missing() if self.resume and self.manifest is not None \
            else list(range(self.dist.n_calls))
        if not todo:
            log.info("Dry run skipped: every call of %s has finished already", self.func_name)
            return
        task_id = random.choice(todo)
        log.info("Performing a single dry-run of %s simulating randomly picked worker #%d with "
                 "automatically distributed arguments", self.func_name, task_id)
        args, kwargs = assemble(self.dist.n_args, self.dist.shared, self.dist.call(task_id),
                                self.dist.pass_task_id)
        try:
            measured = dr.measure(self.func, args, kwargs, task_id)
        except BaseException:
            log.error("The dry-run call #%d of %s failed (traceback below)", task_id,
                      self.func_name)
            self._dryrun_discard()
            raise
        del args, kwargs
        spec = self._backend_spec
        options = {"n_workers": self.n_workers, **self.backend_options}
        if isinstance(spec, type):
            options.update(self._executor_options(spec, self.cluster_keywords))
        workers, source = dr.expected_workers(options, spec)
        shared = sum(approx_size(v) for v in (*self.dist.shared.args.values(),
                                                  *self.dist.shared.kwargs.values()))
        self.dryrun_estimate = estimate = dr.Estimate(
            measurement=measured, func_name=self.func_name, n_calls=len(todo), workers=workers,
            workers_source=source, total_seconds=len(todo) * measured.seconds / workers,
            shared_bytes=shared, mem_per_worker=dr.suggest_mem_per_worker(measured.peak, shared),
            results_bytes=len(todo) * measured.result_bytes, in_memory=not self.store.writes_files)
        unit, value = ("GB", measured.peak / 1e9) if measured.peak > 1e9 else \
            ("MB", measured.peak / 1e6)
        log.info("Dry-run completed. Elapsed time is %f seconds, estimated memory consumption "
                 "was %3.2f %s.", measured.seconds, value, unit)
        for line in estimate.report().splitlines():
            log.info("%s", line)
        if self.dryrun == dr.STOP:
            log.info("dryrun=%r: stopping after the dry run; compute() will do nothing", dr.STOP)
            go_on = False
        elif self.interactive:
            go_on = yes_no(estimate.question(), default=True)
        else:
            log.info("Nobody to ask (not interactive): continuing. Pass dryrun=%r to stop after "
                     "the dry run instead", dr.STOP)
            go_on = True
        if not go_on:
            self._declined = True
            self._dryrun_discard()

    def _dryrun_discard(self) -> None:
        """Remove the run directory's files of a run that will not happen (not on resume)."""
        if self.output_dir is None or self.manifest is None or self.resume:
            return
        from acme_core import dryrun as dr

        created = self.manifest.get("created")
        since = datetime.fromisoformat(created).timestamp() - 1 if created else 0.0
        logfile = self.logging.logfile
        ours = logfile is not None and logfile.parent == self.output_dir
        self.logging.detach()
        dr.discard_run(self.output_dir, self.func_name, logfile if ours else None, since)
        if ours:
            self.logging.logfile = None  # attaching again must not recreate the directory
        self.manifest = None
        self.results_container = None

    # ------------------------------------------------------------ compute
    def compute(self, debug: bool = False) -> Any:
        """Run every call (that is not finished yet) and return the results.

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
            stacked array with ``result_shape``).

        Raises
        ------
        ParallelMapError
            Some calls failed; finished results are kept and listed in the error.
        """
        if not isinstance(debug, bool):
            raise TypeError(f"`debug` has to be `True` or `False`, not {type(debug)}")
        self.logging.attach()
        try:
            return self._compute(debug)
        finally:
            if not self._in_context:
                self.logging.detach()

    def _compute(self, debug: bool) -> Any:
        run = self._execute(debug, stream=False)
        while True:  # with stream=False the generator yields nothing and returns the results
            try:
                next(run)
            except StopIteration as stop:
                return stop.value

    def iter_results(self) -> Iterator[tuple[int, Any]]:
        """Run the calls and yield ``(task_id, result)`` as each call finishes.

        For analysing results while the run goes on. ``result`` is what
        ``compute()`` returns for that call: the return value for the ``"memory"``
        store, the path of the call's result file for the file stores. Calls come
        in completion order; on ``resume=True`` the calls finished earlier come
        first. Every store writes, and the manifest records, exactly what
        ``compute()`` would.

        Raises
        ------
        ParallelMapError
            After the last finished call was yielded, when some calls failed
            (finished results are kept, as with ``compute()``).

        Notes
        -----
        Nothing runs until the loop asks for the first result. Leaving the loop
        early (``break``) cancels the calls still outstanding; the finished ones
        stay on disk and a run with ``resume=True`` finishes the rest.

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

    def _execute(self, debug: bool,
                 stream: bool) -> Generator[list[tuple[int, Any]], None, Any]:
        """Run the calls; with ``stream`` yield every batch of finished calls as it arrives.

        Returns (through ``StopIteration``) what ``compute()`` returns. Shared by
        :meth:`compute` and :meth:`iter_results`, so both record, report and
        finalize alike.
        """
        if self._declined:
            log.info("No run after the dry run: nothing to compute")
            return None
        n = self.dist.n_calls
        references: list[Any] = [None] * n
        done: set[int] = set()
        if self.resume and self.manifest is not None:
            # A result complete on disk is finished even when the interrupted run had no
            # time to record it (files are renamed into place only when complete); one the
            # manifest lists but that is gone from disk runs again.
            for i, reference in self.store.existing().items():
                references[i] = reference
                done.add(i)
            unrecorded = done - self.manifest.finished
            if unrecorded:
                log.debug("Found %d complete results the manifest had not recorded yet",
                          len(unrecorded))
            self.manifest.mark_finished_many(unrecorded)
            log.info("Resuming %s: %d of %d calls already finished", self.output_dir, len(done), n)
        todo = [i for i in range(n) if i not in done] if done else list(range(n))
        failures: dict[int, CallOutcome] = {}
        writer = self.store.writer()
        fresh: list[tuple[int, Any]] = [(i, references[i]) for i in sorted(done)] if stream else []
        if fresh:
            yield fresh
            fresh = []
        counts = {"done": 0}
        bar: Any = None
        dispatcher: Dispatcher | None = None

        def show(finished: int) -> None:
            running = dispatcher.in_flight if dispatcher is not None else 0
            bar.set_postfix(done=counts["done"], failed=len(failures), running=running,
                            refresh=False)
            bar.update(finished)

        def record_many(ids: list[int], refs: list[Any]) -> None:
            """Finished calls, one batch per chunk (no object per call)."""
            for i, reference in zip(ids, refs, strict=True):
                references[i] = reference
            if failures:  # a call that failed before may have been retried since
                for i in ids:
                    failures.pop(i, None)
            if self.manifest is not None:
                self.manifest.mark_finished_many(ids)
            counts["done"] += len(ids)
            if stream:
                fresh.extend(zip(ids, refs, strict=True))
            if bar is not None:
                show(len(ids))

        def record(outcome: CallOutcome) -> None:
            if outcome.ok:
                record_many([outcome.task_id], [outcome.reference])
                return
            failures[outcome.task_id] = outcome
            if self.manifest is not None:
                self.manifest.mark_failed(outcome.task_id, outcome.traceback or repr(outcome.error))
            if bar is not None:
                show(1)

        try:
            if debug:
                log.warning("Running in debug mode: every call runs here, one after the other")
                bar = self._progress_bar(len(todo))
                self._run_in_process(todo, writer, record)
            elif todo:
                executor = self._start_executor()
                context = TaskContext(self.func, writer, self.dist.n_args,
                                      self.dist.pass_task_id, self.dist.shared)
                dispatcher = Dispatcher(executor, context, self.dist, todo, on_outcome=record,
                                        on_results=record_many, retries=self.retries,
                                        chunk_size=self.chunk_size, on_tick=self._save_manifest)
                workers = dispatcher.initial_workers
                log.info("Preparing %d parallel calls of `%s` using %s workers", len(todo),
                         self.func_name, workers if workers is not None else "?")
                bar = self._progress_bar(len(todo))
                for _ in dispatcher.iterate():
                    if fresh:
                        batch, fresh = fresh, []
                        yield batch
            if fresh:  # debug mode, or the last chunk's results
                batch, fresh = fresh, []
                yield batch
        except BaseException as exc:
            if bar is not None:
                bar.close()
            self._save_manifest()
            kept = n - len(todo) + sum(1 for i in todo if references[i] is not None)
            if isinstance(exc, KeyboardInterrupt):
                log.warning("Interrupted: %d calls finished and kept; rerun with resume=True and "
                            "output_dir=%r to finish the rest", kept, str(self.output_dir))
                self._stop_executor()
            elif isinstance(exc, GeneratorExit):
                log.info("Stopped before the end: %d calls finished and kept%s", kept,
                         f"; rerun with resume=True and output_dir={str(self.output_dir)!r} to "
                         "finish the rest" if self.output_dir is not None else "")
                if not self._in_context:
                    self._stop_executor()
            elif not self._in_context:
                self._stop_executor()
            raise
        if bar is not None:
            bar.close()
        if self.manifest is not None:
            self.manifest.save(complete=not failures)
        results = self.store.finalize(references, set(failures))
        self.results_container = getattr(self.store, "results_container", None)
        if not self._in_context:
            self._stop_executor()
        if failures:
            per_call = results if isinstance(results, list) and len(results) == n else references
            raise self._failure(failures, per_call)
        log.info("SUCCESS! Finished parallel computation")
        if self.results_container:
            log.info("Results have been saved to %s", self.results_container)
        elif self.output_dir is not None:
            log.info("Results have been saved to %s", self.output_dir)
        return results

    def _run_in_process(self, todo: list[int], writer: Any, record: Any) -> None:
        for i in todo:
            args, kwargs = assemble(self.dist.n_args, self.dist.shared, self.dist.call(i),
                                    self.dist.pass_task_id)
            try:
                value = self.func(*args, **kwargs)
            except Exception:
                # recorded (manifest, `acme inspect`), then re-raised untouched for pdb
                if self.manifest is not None:
                    self.manifest.mark_failed(i, traceback.format_exc())
                    self.manifest.save()
                raise
            record(CallOutcome(i, True, reference=writer.write(i, value)))

    def _save_manifest(self) -> None:
        if self.manifest is not None:
            self.manifest.save()

    def _progress_bar(self, total: int) -> Any:
        """A tqdm bar (a widget in notebooks) fed by completion events, or None.

        ``progress="auto"`` shows it in interactive sessions only (stderr is a
        terminal, or a Jupyter kernel), never in batch jobs and CI logs.
        """
        show = self.progress if isinstance(self.progress, bool) else self._interactive_session()
        if not show:
            return None
        from tqdm.auto import tqdm

        # tqdm adds the ETA from the rate; the postfix says done / failed / running
        # (running: calls handed to the workers and not back yet)
        bar = tqdm(total=total, desc=f"{self.func_name}", unit="call", file=sys.stderr,
                   dynamic_ncols=True, smoothing=0.1)
        bar.set_postfix(done=0, failed=0, running=0, refresh=False)
        return bar

    @staticmethod
    def _interactive_session() -> bool:
        """Whether a person is watching: stderr is a terminal, or this is a Jupyter kernel."""
        if _stderr_is_terminal():
            return True
        shell = sys.modules.get("IPython")
        get_ipython = getattr(shell, "get_ipython", None)
        try:
            ip = get_ipython() if callable(get_ipython) else None
        except Exception:  # pragma: no cover - IPython internals
            return False
        return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"

    def _failure(self, failures: dict[int, CallOutcome], results: list[Any]) -> ParallelMapError:
        ids = sorted(failures)
        first = failures[ids[0]]
        shown = ", ".join(map(str, ids[:10])) + (", ..." if len(ids) > 10 else "")
        where = (f" Finished results are kept in {self.output_dir}; rerun with resume=True and "
                 f"output_dir={str(self.output_dir)!r} to run only the failed calls."
                 if self.output_dir is not None else "")
        message = (f"Parallel computation failed: {len(ids)}/{self.dist.n_calls} calls of "
                   f"`{self.func_name}` failed (task ids: {shown}).{where}\n"
                   f"First failure, task {ids[0]} ({type(first.error).__name__}: {first.error}):\n"
                   f"{first.traceback}")
        log.error(message)
        return ParallelMapError(
            message, failed={i: failures[i].error or RuntimeError("unknown error") for i in ids},
            results=results, tracebacks={i: failures[i].traceback for i in ids})


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
