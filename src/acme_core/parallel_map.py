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
import time
import tracemalloc
from datetime import datetime
from pathlib import Path
from typing import Any

from acme_core import options as opt
from acme_core import validation
from acme_core.arguments import Distribution, describe_func, distribute, fingerprint
from acme_core.dispatch import Dispatcher, TaskContext
from acme_core.errors import ParallelMapError, check_requirements
from acme_core.executor import owns_resources, worker_count
from acme_core.logs import EarlyRecords, RunLogging, log_file_name
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
        check = getattr(cls, "check_options", None)
        if callable(check):
            check(options)
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
    dryrun : bool
        Run one randomly chosen call in this process first and report its time
        and memory; ask whether to continue when interactive.
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
        Progress bar; "auto" shows it when stderr is a terminal.
    chunk_size : int or "auto"
        Calls per executor task; "auto" sizes chunks from measured call durations.

    Examples
    --------
    >>> def f(x, y, z=3):
    ...     return (x + y) * z
    >>> with ParallelMap(f, [2, 4, 6, 8], 4) as pmap:      # doctest: +SKIP
    ...     results = pmap.compute()
    """

    def __init__(self, func: Any, *args: Any, n_inputs: int | str = "auto",
                 write_worker_results: bool = True, output_dir: str | os.PathLike[str] | None = None,
                 result_shape: tuple[Any, ...] | list[Any] | None = None, result_dtype: str = "float",
                 single_file: bool = False, write_pickle: bool = False, partition: str = "auto",
                 n_workers: int | str = "auto", mem_per_worker: str = "auto",
                 setup_timeout: int = 60, setup_interactive: bool = True,
                 stop_client: bool | str = "auto", verbose: bool | None = None,
                 dryrun: bool = False, logfile: bool | str | None = None,
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
               chunk_size: int | str, dryrun: bool) -> None:
        """Validate every keyword (phase 1), then create the run directory (phase 2)."""
        self.func = func
        self.n_inputs = opt.validate_n_inputs(n_inputs)
        self.dist: Distribution = distribute(func, args, kwargs, self.n_inputs)
        self.func_name = describe_func(func)
        n_calls = self.dist.n_calls
        validation.boolean(dryrun, "dryrun")
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
        """Return what to start later: "auto", a class, or an executor instance."""
        if isinstance(backend, str):
            if backend == "auto":
                return backend
            cls = lookup("backend", backend, list_backends(), "backend")
        elif isinstance(backend, type):
            cls = backend
        elif callable(getattr(backend, "submit", None)):
            if self.backend_options:
                raise ValueError("`backend_options` cannot be applied to an executor instance")
            return backend
        else:
            raise TypeError(f"`backend` has to be 'auto', a backend name, an executor class or an "
                            f"executor, not {backend!r}")
        options = {**_accepted(cls, self.cluster_keywords), **self.backend_options}
        _check_options(cls, options, "backend_options")
        return cls

    def _check_main_guard(self) -> None:
        """A local cluster from a script without the ``__main__`` guard: stop now."""
        from acme_backends.dask_local import DaskLocalExecutor

        spec = self._backend_spec
        if spec == "auto":
            from acme_backends.dask_client import current_client

            if current_client() is not None:
                return
        elif not (isinstance(spec, type) and issubclass(spec, DaskLocalExecutor)):
            return
        from acme_core.clusters import check_main_guard

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
        if isinstance(spec, str):  # "auto"
            from acme_backends.dask_client import DaskClientExecutor, current_client

            client = current_client()
            preset = auto_backend() if client is None else None
            if client is not None:
                log.info("Attaching to parallel computing client %s", client)
                self.executor, self._owns_executor = DaskClientExecutor(client), False
            elif preset is not None:
                name, preset_options = preset
                cls = lookup("backend", name, list_backends(), "backend")
                log.info("backend='auto': a site plugin chose %r", name)
                options = _accepted(cls, self._backend_hints())
                for key, value in preset_options.items():  # what the user gave wins
                    if options.get(key) in (None, "auto"):
                        options[key] = value
                self.executor = cls(**{**options, **self.backend_options})
                self._owns_executor = owns_resources(self.executor)
            else:
                from acme_backends.dask_local import DaskLocalExecutor

                options = {**_accepted(DaskLocalExecutor, self._backend_hints()),
                           **self.backend_options}
                self.executor, self._owns_executor = DaskLocalExecutor(**options), True
        elif isinstance(spec, type):
            options = {**_accepted(spec, self._backend_hints()), **self.backend_options}
            self.executor = spec(**options)
            self._owns_executor = owns_resources(self.executor)
        else:
            self.executor, self._owns_executor = spec, False
        link = getattr(self.executor, "dashboard_link", None)
        if link:
            log.debug("Dashboard: %s", link)
        return self.executor

    def _stop_executor(self) -> None:
        if self.executor is None:
            return
        stop = self._owns_executor if self.stop_client == "auto" else self.stop_client
        if stop:
            try:
                self.executor.shutdown()
            finally:
                self.executor = None

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
        task_id = random.randrange(self.dist.n_calls)
        log.info("Performing a single dry-run of %s simulating randomly picked worker #%d with "
                 "automatically distributed arguments", self.func_name, task_id)
        args, kwargs = assemble(self.dist.n_args, self.dist.shared, self.dist.call(task_id),
                                self.dist.pass_task_id)
        tracemalloc.start()
        start = time.perf_counter()
        try:
            self.func(*args, **kwargs)  # result discarded: a dry run writes nothing
        finally:
            elapsed = time.perf_counter() - start
            peak = tracemalloc.get_traced_memory()[1] / 1e6
            tracemalloc.stop()
        unit, value = ("GB", peak / 1000) if peak > 1000 else ("MB", peak)
        log.info("Dry-run completed. Elapsed time is %f seconds, estimated memory consumption "
                 "was %3.2f %s.", elapsed, value, unit)
        if self.interactive and not yes_no(
                f"Do you want to continue executing {self.func_name} with the provided arguments?",
                default=True):
            self._declined = True
            if self.output_dir is not None and self.manifest is not None and not self.resume:
                import shutil

                self.logging.detach()
                shutil.rmtree(self.output_dir, ignore_errors=True)

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
        if self._declined:
            log.info("Dry run declined: nothing to compute")
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
            for i in unrecorded:
                self.manifest.mark_finished(i)
            log.info("Resuming %s: %d of %d calls already finished", self.output_dir, len(done), n)
        todo = [i for i in range(n) if i not in done]
        failures: dict[int, CallOutcome] = {}
        writer = self.store.writer()

        def record(outcome: CallOutcome) -> None:
            if outcome.ok:
                references[outcome.task_id] = outcome.reference
                failures.pop(outcome.task_id, None)
                if self.manifest is not None:
                    self.manifest.mark_finished(outcome.task_id)
            else:
                failures[outcome.task_id] = outcome
                if self.manifest is not None:
                    self.manifest.mark_failed(outcome.task_id,
                                              outcome.traceback or repr(outcome.error))
            if bar is not None:
                bar.update(1)
                if failures:
                    bar.set_postfix(failed=len(failures), refresh=False)

        bar = None
        try:
            if debug:
                log.warning("Running in debug mode: every call runs here, one after the other")
                self._run_in_process(todo, writer, record)
            elif todo:
                executor = self._start_executor()
                workers = worker_count(executor)
                log.info("Preparing %d parallel calls of `%s` using %s workers", len(todo),
                         self.func_name, workers if workers is not None else "?")
                bar = self._progress_bar(len(todo))
                context = TaskContext(self.func, writer, self.dist.n_args,
                                      self.dist.pass_task_id, self.dist.shared)
                Dispatcher(executor, context, self.dist, todo, on_outcome=record,
                           retries=self.retries, chunk_size=self.chunk_size,
                           on_tick=self._save_manifest).run()
        except BaseException as exc:
            if bar is not None:
                bar.close()
            self._save_manifest()
            if isinstance(exc, KeyboardInterrupt):
                log.warning("Interrupted: %d calls finished and kept; rerun with resume=True and "
                            "output_dir=%r to finish the rest", n - len(todo) + sum(
                                1 for i in todo if references[i] is not None), str(self.output_dir))
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
            value = self.func(*args, **kwargs)  # exceptions propagate untouched
            record(CallOutcome(i, True, reference=writer.write(i, value)))

    def _save_manifest(self) -> None:
        if self.manifest is not None:
            self.manifest.save()

    def _progress_bar(self, total: int) -> Any:
        show = self.progress if isinstance(self.progress, bool) else _stderr_is_terminal()
        if not show:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=f"{self.func_name}", unit="call", file=sys.stderr)

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
