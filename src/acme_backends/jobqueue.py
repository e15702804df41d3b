"""Job-queue backends: dask workers as batch jobs on SLURM, PBS and SGE (via dask-jobqueue).

One base class, :class:`JobQueueExecutor`, does the work: it checks every keyword
and the requested resources against what the scheduler reports *before* anything
is submitted, starts a dask-jobqueue cluster with TLS and a localhost dashboard,
waits up to ``setup_timeout`` for the workers and says how many came up and why
the others did not (the scheduler's pending reason). :class:`SlurmExecutor`,
:class:`PbsExecutor` and :class:`SgeExecutor` only set class attributes.

The scheduler's command-line tools are wrapped by small ``*CLI`` classes in
:mod:`acme_backends.scheduler_cli`: the only place that knows their output formats.

dask-jobqueue is imported only when a cluster starts, through
:func:`acme_core.errors.require`, so listing the backends never needs it.
"""

from __future__ import annotations

import getpass
import inspect
import logging
import math
import os
import select
import shlex
import signal
import sys
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from acme_backends.dask_client import DaskClientExecutor, current_client
from acme_backends.scheduler_cli import (
    PbsCLI,
    SchedulerCLI,
    SchedulerError,
    SgeCLI,
    SlurmCLI,
)
from acme_core import validation
from acme_core.errors import require

log = logging.getLogger("acme")

#: Seconds the interactive start-up question waits for an answer before taking the default.
INTERACTIVE_WAIT = 120
#: Seconds "[k]eep waiting" adds (ACME's value).
KEEP_WAITING = 60

# Scheduler reasons for a pending job, in words a user understands.
PENDING_REASONS = {
    "Resources": "waiting for free resources (cores or memory are in use by other jobs)",
    "Priority": "other jobs have higher priority",
    "MaxMemPerLimit": "the job asks for more memory than the partition allows; it will never start",
    "PartitionConfig": "the request does not fit the partition's limits; it will never start",
    "PartitionNodeLimit": "the request does not fit the partition's node limits",
    "PartitionTimeLimit": "the requested walltime is above the partition's limit",
    "ReqNodeNotAvail": "the requested nodes are not available (down, drained or reserved)",
    "QOSMaxMemoryPerJob": "the job asks for more memory than your QOS allows",
    "QOSMaxCpuPerJobLimit": "the job asks for more cores than your QOS allows",
    "AssocGrpCpuLimit": "your account's CPU limit is reached",
    "AssocMaxJobsLimit": "your account's job limit is reached",
    "JobHeldUser": "the job is held (scontrol release / qrls releases it)",
    "JobHeldAdmin": "the job is held by an administrator",
    "BeginTime": "the job's start time is in the future",
    "Dependency": "the job waits for another job",
}


# ======================================================================= helpers
def _ask(question: str, choices: str, default: str, timeout: float) -> str:
    """Ask for one letter of ``choices``; the default after ``timeout`` seconds or on Enter."""
    prompt = f"{question} [{'/'.join(choices)}] (default {default}, in {int(timeout)} s) "
    sys.stdout.write(prompt)
    sys.stdout.flush()
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            sys.stdout.write("\n")
            return default
        ready, _, _ = select.select([sys.stdin], [], [], left)
        if not ready:
            continue
        answer = sys.stdin.readline().strip().lower()
        if not answer:
            return default
        if answer[0] in choices:
            return answer[0]
        sys.stdout.write(prompt)
        sys.stdout.flush()


def _describe_reason(reason: str) -> str:
    reason = reason.strip("()")
    words = PENDING_REASONS.get(reason)
    return f"{reason}: {words}" if words else reason or "no reason given"


def _jobqueue_keywords(cluster_cls: type, job_cls: type) -> set[str]:
    """Every keyword dask-jobqueue's cluster and job classes name (their whole hierarchy)."""
    known: set[str] = set()
    for cls in (*cluster_cls.__mro__, *job_cls.__mro__):
        init = cls.__dict__.get("__init__")
        if init is None:
            continue
        try:
            params = inspect.signature(init).parameters
        except (TypeError, ValueError):
            continue
        known |= {n for n, p in params.items()
                  if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and n != "self"}
    return known


def default_log_directory(kind: str) -> Path:
    """Where job logs go when neither a run directory nor ``log_directory`` is given.

    Batch jobs write their logs on the compute node, so the directory must be on a
    filesystem the nodes share: the home directory is, on every cluster we know
    (the current directory often is too, but must not fill up with job logs).
    """
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    return Path.home() / ".acme" / "job-logs" / f"{getpass.getuser()}_{kind}_{stamp}"


# Keywords of dask-jobqueue that acme-core sets itself, with the acme-core name to use
RESERVED = {
    "cores": "cores_per_worker", "memory": "mem_per_worker", "processes": "processes_per_worker",
    "n_workers": "n_workers", "job_cls": None, "job_extra_directives": "job_extra",
    "dashboard_address": "dashboard_address", "host": "host", "job_mem": "mem_per_worker",
}


# ======================================================================= the executor
def import_dask_jobqueue(what: str) -> Any:
    """Import dask_jobqueue without its side effect on Ctrl-C.

    Importing ``dask_jobqueue`` (its ``runner`` module) replaces the process's SIGINT
    handler with a silent ``sys.exit()``: Ctrl-C would then end a user's script with
    exit status 0, no ``KeyboardInterrupt`` and no word about resuming. The handler
    the process had before (Python's own, normally) is put back.
    """
    on_main_thread = threading.current_thread() is threading.main_thread()
    before = signal.getsignal(signal.SIGINT)
    djq = require("dask_jobqueue", "jobqueue", what)
    now = signal.getsignal(signal.SIGINT)
    if on_main_thread and getattr(now, "__module__", "") == "dask_jobqueue.runner":
        ours = before if getattr(before, "__module__", "") != "dask_jobqueue.runner" else None
        signal.signal(signal.SIGINT, ours or signal.default_int_handler)
    return djq


class JobQueueExecutor(DaskClientExecutor):
    """Start dask workers as batch jobs (dask-jobqueue) and run tasks on them.

    Subclasses set the class attributes only. Every parameter is keyword-only in
    spirit; the first six are ACME's cluster keywords, which ``ParallelMap``
    passes on (``partition``, ``n_workers``, ``mem_per_worker``, ``setup_timeout``,
    ``setup_interactive``).

    Parameters
    ----------
    partition : str
        Partition (SLURM) or queue (PBS, SGE); ``"auto"``: the scheduler's default.
        A name the scheduler does not have is a ``ValueError`` listing the ones it has.
    n_workers : int or "auto"
        Number of worker jobs (one dask worker each); ``"auto"``: ``n_calls`` when
        known (ACME's one job per call), capped at ``max_auto_workers``, else 1.
    mem_per_worker : str
        Memory per worker job, e.g. ``"2GB"``; ``"auto"``: the partition's default
        memory per core times ``cores_per_worker`` (SLURM), else 1 GB per core.
        More than a node has (or, on SLURM, than the partition allows) is a
        ``ValueError`` before anything is submitted.
    setup_timeout : float
        Seconds to wait for the workers. When fewer came up, the message says how
        many and the scheduler's reason for the others; with some up the run goes
        on with them, with none it is a ``TimeoutError``.
    setup_interactive : bool
        Ask whether to keep waiting, abort or continue when workers are missing
        (only when someone can answer: a terminal on stdin).
    cores_per_worker : int
        Cores per job (threads of the worker process).
    queue : str, optional
        Same as ``partition`` (PBS/SGE wording); giving both is an error.
    timeout, interactive : optional
        ACME's names for ``setup_timeout`` / ``setup_interactive``; they win when given.
    interactive_wait : float
        Seconds the interactive question waits before taking its default.
    n_workers_startup : int
        Go on once the timeout passed and at least this many workers are up (default 1).
    processes_per_worker : int
        Worker processes per job (``cores_per_worker`` threads are split among them).
    job_extra : list of str
        Extra scheduler directives, e.g. ``["--qos=long"]`` (``#SBATCH`` lines).
    walltime : str, optional
        Job time limit; default none, so the partition's limit applies (ACME's choice).
    log_directory : str, optional
        Directory for the job logs; default ``<run_dir>/job-logs`` when
        ``run_dir`` is given, else ``~/.acme/job-logs/<user>_<kind>_<time>``.
        Never the current directory.
    run_dir : str, optional
        The run directory of the ParallelMap using this backend.
    security : bool or distributed.security.Security
        ``True`` (default): TLS with temporary credentials made for this cluster, so
        only our workers can connect; ``False``: plain TCP (anyone on the network
        who finds the port can run code as you); or a ``Security`` object.
    host, interface : str, optional
        Address / network interface the scheduler listens on (workers connect
        there); ``interface`` also applies to the workers. For login nodes with
        several networks.
    dashboard_address : str
        Where the dashboard listens; default ``"127.0.0.1:0"`` (this machine only,
        a free port: use an ssh tunnel).
    check_resources : bool
        Check memory, cores and partition against the scheduler before submitting
        (default). Turn off when the login node cannot see the compute nodes.
    reuse : bool
        Attach to a running client of the same kind of cluster (with workers)
        instead of starting another one, as ACME does.
    n_calls : int, optional
        Number of calls the run will make (sizes ``n_workers="auto"``).
    mem_cushion : float
        Megabytes kept free below the partition's memory when ``mem_per_worker`` is
        ``"auto"`` (ACME's keyword).
    **jobqueue_options
        Any other keyword of the dask-jobqueue cluster class (``account``,
        ``worker_extra_args``, ``job_script_prologue``, ``scheduler_options``, ...).
        An unknown keyword is a ``TypeError`` before anything is submitted.
    """

    name: ClassVar[str] = "jobqueue"
    owns_resources = True
    #: the cluster start logs its dashboard link itself
    announces_dashboard = True
    #: dask_jobqueue attribute of the cluster class, e.g. "SLURMCluster"
    cluster_class: ClassVar[str] = ""
    #: section of dask's jobqueue config ("jobqueue.<config_name>.*")
    config_name: ClassVar[str] = ""
    #: the scheduler's command-line tools
    cli: ClassVar[type[SchedulerCLI]] = SchedulerCLI
    #: the scheduler's word for a partition, in messages
    queue_word: ClassVar[str] = "queue"
    #: start of the job-script line dask-jobqueue writes for the default walltime
    walltime_directive: ClassVar[str | None] = None
    #: submit from the log directory (for schedulers writing job output to the submit dir)
    submit_in_log_directory: ClassVar[bool] = False
    #: job-class keyword taking the memory request verbatim; set, the request is exact to the
    #: MiB (SLURMJob rounds ``memory`` above 1 GiB up to whole GiB: 7900 MiB became 8G, more
    #: than an 8000 MB partition allows, so the job never started)
    exact_memory_keyword: ClassVar[str | None] = None
    #: upper bound for n_workers="auto"
    max_auto_workers: ClassVar[int] = 100

    def __init__(self, partition: str = "auto", n_workers: int | str = "auto",
                 mem_per_worker: str = "auto", setup_timeout: float = 60,
                 setup_interactive: bool = False, *, cores_per_worker: int = 1,
                 queue: str | None = None, timeout: float | None = None,
                 interactive: bool | None = None, interactive_wait: float = INTERACTIVE_WAIT,
                 n_workers_startup: int = 1, processes_per_worker: int = 1,
                 job_extra: list[str] | None = None, walltime: str | None = None,
                 log_directory: str | os.PathLike[str] | None = None,
                 run_dir: str | os.PathLike[str] | None = None, security: Any = True,
                 host: str | None = None, interface: str | None = None,
                 dashboard_address: str = "127.0.0.1:0", check_resources: bool = True,
                 reuse: bool = True, n_calls: int | None = None, mem_cushion: float = 0,
                 **jobqueue_options: Any) -> None:
        options = dict(locals())
        for key in ("self", "__class__", "jobqueue_options"):
            options.pop(key, None)
        self.settings = self.prepare(**options, **jobqueue_options)
        existing = self._reusable_client() if reuse else None
        if existing is not None:
            super().__init__(existing)
            self.owns_resources = False
            self.cluster = existing.cluster
            return
        self.cluster, client = self._start(self.settings, start_client=True)
        super().__init__(client)

    # ------------------------------------------------------------------ checks
    @classmethod
    def check_options(cls, options: dict[str, Any]) -> None:
        """Reject unknown keywords before anything starts (ParallelMap calls this early)."""
        own = {n for n, p in inspect.signature(cls.__init__).parameters.items()
               if p.kind is p.KEYWORD_ONLY or p.kind is p.POSITIONAL_OR_KEYWORD}
        extra = {k: v for k, v in options.items() if k not in own}
        cls._check_jobqueue_options(extra)

    @classmethod
    def _cluster_classes(cls) -> tuple[type, type]:
        djq = import_dask_jobqueue(f"The {cls.name!r} backend")
        cluster_cls = getattr(djq, cls.cluster_class)
        return cluster_cls, cluster_cls.job_cls

    @classmethod
    def _check_jobqueue_options(cls, extra: dict[str, Any]) -> None:
        for key in extra:
            if key in RESERVED:
                ours = RESERVED[key]
                hint = f"; use `{ours}`" if ours and ours != key else ""
                raise TypeError(f"{cls.__name__}: `{key}` is set by acme-core{hint}")
        if not extra:
            return
        cluster_cls, job_cls = cls._cluster_classes()
        known = _jobqueue_keywords(cluster_cls, job_cls)
        unknown = sorted(set(extra) - known)
        if unknown:
            from acme_core.plugins import did_you_mean

            hints = "".join(did_you_mean(u, sorted(known)) for u in unknown)
            raise TypeError(f"{cls.__name__}: unknown keyword argument(s) {unknown}: neither "
                            f"acme-core nor dask_jobqueue.{cls.cluster_class} knows them.{hints}")

    @classmethod
    def prepare(cls, **options: Any) -> dict[str, Any]:
        """Validate everything and resolve "auto" values against the scheduler.

        Nothing is submitted. Returns the settings :meth:`_start` uses.
        """
        params = inspect.signature(cls.__init__).parameters
        known = set(params) - {"self", "jobqueue_options"}
        o = {n: params[n].default for n in known}
        o.update(options)
        extra = {k: o.pop(k) for k in list(o) if k not in known}
        cls._check_jobqueue_options(extra)
        title = cls.cli.title

        # -- scalar checks (ACME's messages)
        if o["timeout"] is not None:
            o["setup_timeout"] = o["timeout"]
        if o["interactive"] is not None:
            o["setup_interactive"] = o["interactive"]
        validation.scalar(o["setup_timeout"], "timeout", int_like=False, lims=(0, math.inf))
        validation.boolean(o["setup_interactive"], "interactive")
        validation.scalar(o["interactive_wait"], "interactive_wait", int_like=False,
                          lims=(0, math.inf))
        validation.scalar(o["cores_per_worker"], "cores_per_worker", lims=(1, math.inf))
        validation.scalar(o["processes_per_worker"], "processes_per_worker", lims=(1, math.inf))
        validation.scalar(o["n_workers_startup"], "n_workers_startup", lims=(0, math.inf))
        validation.boolean(o["check_resources"], "check_resources")
        validation.boolean(o["reuse"], "reuse")
        if o["processes_per_worker"] > o["cores_per_worker"]:
            raise ValueError(f"`processes_per_worker` ({o['processes_per_worker']}) cannot exceed "
                             f"`cores_per_worker` ({o['cores_per_worker']})")
        n_workers = o["n_workers"]
        if n_workers == "auto":
            n_calls = o["n_calls"]
            n_workers = min(int(n_calls), cls.max_auto_workers) if n_calls else 1
        elif isinstance(n_workers, str):
            raise ValueError(f"`n_workers` has to be 'auto' or an integer >= 1, not {n_workers}")
        n_workers = int(validation.scalar(n_workers, "n_workers", lims=(1, math.inf)))
        job_extra = list(o["job_extra"] or [])
        for item in job_extra:
            if not isinstance(item, str):
                raise TypeError(f"`job_extra` items have to be valid {title} options, not {item!r}")
        if o["job_extra"] is not None and not isinstance(o["job_extra"], (list, tuple)):
            raise TypeError(f"`job_extra` has to be a list, not {type(o['job_extra'])}")
        security = o["security"]
        if not isinstance(security, bool) and security is not None:
            from distributed.security import Security

            if not isinstance(security, Security):
                raise TypeError("`security` has to be True, False or a "
                                f"distributed.security.Security, not {security!r}")

        # -- partition
        partition = o["partition"]
        if o["queue"] is not None:
            if partition not in ("auto", None, o["queue"]):
                raise ValueError(f"give `partition` or `queue`, not both ({partition!r} and "
                                 f"{o['queue']!r})")
            partition = o["queue"]
        if partition is not None and not isinstance(partition, str):
            raise TypeError(f"`partition` has to be 'auto' or a valid {title} "
                            f"{cls.queue_word} name, not {partition}")
        if not cls.cli.available():
            raise SchedulerError(
                f"The {cls.name!r} backend needs {title}, but `{cls.cli.probe_command}` is not on "
                f"PATH on {os.uname().nodename}: run it on a {title} login node")
        check = o["check_resources"]
        queue: str | None = None if partition in ("auto", None) else partition
        if check or queue is None:
            try:
                names, default = cls.cli.queues()
            except SchedulerError as exc:
                raise OSError(f"Error fetching {title} {cls.queue_word} setup from node "
                              f"{os.uname().nodename}: {exc}") from exc
            if queue is None:
                queue = default
            elif names and queue not in names:
                from acme_core.plugins import did_you_mean

                raise ValueError(f"Invalid {cls.queue_word} selection {queue!r}, available "
                                 f"{title} {cls.queue_word}s are {names}."
                                 f"{did_you_mean(queue, names)}")

        # -- memory and cores
        cores = int(o["cores_per_worker"])
        mem = o["mem_per_worker"]
        max_mem, def_mem_per_cpu = (cls.cli.queue_memory(queue) if check or mem == "auto"
                                    else (None, None))
        validation.scalar(o["mem_cushion"], "mem_cushion", int_like=False, lims=(0, math.inf))
        if mem == "auto" or mem is None:
            auto_mb = def_mem_per_cpu * cores if def_mem_per_cpu else cores * 1e9 / 2**20
            if max_mem is not None:
                auto_mb = min(auto_mb, max_mem)
            mem = f"{max(int(auto_mb - o['mem_cushion']), 100)}MiB"
        validation.mem_spec(mem)
        from dask.utils import format_bytes, parse_bytes

        mem_mb = math.ceil(parse_bytes(mem) / 2**20)  # what the job asks for (see _start)
        if check:
            node_cpus, node_mem = cls.cli.node_limits(queue)
            where = f"{cls.queue_word} {queue}" if queue else title
            shown = mem if mem.endswith("MiB") else f"{mem} ({mem_mb:.0f} MiB)"
            if node_cpus is not None and cores > node_cpus:
                raise ValueError(
                    f"`cores_per_worker` {cores} is more than any node of {where} has "
                    f"({node_cpus}): such a job could never start.")
            if node_mem is not None and mem_mb > node_mem:
                raise ValueError(
                    f"`mem_per_worker` {shown} is more than any node of {where} "
                    f"has ({node_mem:.0f} MiB): such a job could never start. Ask for less memory "
                    f"or pick another {cls.queue_word}.")
            if max_mem is not None and mem_mb > max_mem:
                raise ValueError(
                    f"`mem_per_worker` {shown} is above the limit of {where} "
                    f"({max_mem:.0f} MiB per node): the job would wait forever. Ask for less "
                    f"memory or pick a {cls.queue_word} with more.")
        log.debug("%s: %d worker(s) with %d core(s) and %s each in %s %s", cls.name, n_workers,
                  cores, format_bytes(parse_bytes(mem)), cls.queue_word, queue or "(default)")
        if not (isinstance(o["dashboard_address"], str)):
            raise TypeError(f"`dashboard_address` has to be a string, not {o['dashboard_address']!r}")
        return {
            "queue": queue, "n_workers": n_workers, "memory": mem, "cores": cores,
            "processes": int(o["processes_per_worker"]), "timeout": float(o["setup_timeout"]),
            "interactive": bool(o["setup_interactive"]),
            "interactive_wait": float(o["interactive_wait"]),
            "n_workers_startup": int(o["n_workers_startup"]), "job_extra": job_extra,
            "walltime": o["walltime"], "log_directory": o["log_directory"],
            "run_dir": o["run_dir"], "security": security, "host": o["host"],
            "interface": o["interface"], "dashboard_address": o["dashboard_address"],
            "extra": extra,
        }

    # ------------------------------------------------------------------ start
    @classmethod
    def _reusable_client(cls) -> Any:
        """A running client on a cluster of our kind with workers (ACME reuses those)."""
        client = current_client()
        if client is None or client.cluster is None:
            return None
        cluster_cls, _ = cls._cluster_classes()
        if not isinstance(client.cluster, cluster_cls):
            return None
        try:
            n = len(client.scheduler_info(n_workers=-1).get("workers", {}))
        except Exception:
            return None
        if n == 0:
            return None
        log.info("Found existing parallel computing client %s with %d workers. Not starting a new "
                 "cluster.", client, n)
        return client

    @classmethod
    def _log_directory(cls, settings: dict[str, Any]) -> Path:
        if settings["log_directory"] is not None:
            path = Path(os.fspath(settings["log_directory"])).expanduser()
        elif settings["run_dir"] is not None:
            path = Path(os.fspath(settings["run_dir"])) / "job-logs"
        else:
            path = default_log_directory(cls.name)
        path = path.absolute()
        path.mkdir(parents=True, exist_ok=True)
        return path

    @classmethod
    def _start(cls, settings: dict[str, Any], start_client: bool) -> tuple[Any, Any]:
        """Submit the jobs, wait for the workers; return (cluster, client or None)."""
        import dask

        cluster_cls, job_cls = cls._cluster_classes()
        log_dir = cls._log_directory(settings)
        title = cls.cli.title
        extra = dict(settings["extra"])

        security = settings["security"]
        tls_dir = None
        if security is True:
            from distributed.security import Security

            # in-memory credentials made for this cluster only; dask-jobqueue writes the
            # worker's copy into shared_temp_directory, which the jobs must be able to read
            security = Security.temporary()
            tls_dir = log_dir / ".tls"
            tls_dir.mkdir(mode=0o700, exist_ok=True)
            os.chmod(tls_dir, 0o700)
            extra.setdefault("shared_temp_directory", str(tls_dir))
        elif security is False:
            security = None

        scheduler_options = dict(dask.config.get(f"jobqueue.{cls.config_name}.scheduler-options",
                                                 {}) or {})
        scheduler_options.setdefault("dashboard_address", settings["dashboard_address"])
        scheduler_options.update(extra.pop("scheduler_options", None) or {})
        if settings["host"] is not None:
            scheduler_options["host"] = settings["host"]

        skip = list(extra.pop("job_directives_skip", None) or [])
        if settings["walltime"] is None and cls.walltime_directive:
            skip.append(cls.walltime_directive)  # the partition's own limit applies (ACME)

        record = _JobRecord()
        kwargs: dict[str, Any] = {
            "cores": settings["cores"], "memory": settings["memory"],
            "processes": settings["processes"], "log_directory": str(log_dir),
            "job_extra_directives": settings["job_extra"], "job_directives_skip": skip,
            "scheduler_options": scheduler_options, "python": sys.executable,
            "job_cls": _recording_job_class(job_cls, record,
                                            log_dir if cls.submit_in_log_directory else None),
        }
        if settings["queue"] is not None:
            kwargs["queue"] = settings["queue"]
        if settings["walltime"] is not None:
            kwargs["walltime"] = settings["walltime"]
        if settings["interface"] is not None:
            kwargs["interface"] = settings["interface"]
        if security is not None:
            kwargs["security"] = security
        if cls.exact_memory_keyword:
            from dask.utils import parse_bytes

            mib = math.ceil(parse_bytes(settings["memory"]) / 2**20)
            kwargs[cls.exact_memory_keyword] = f"{mib}M"
        kwargs.update(extra)

        acme_cluster_cls = _closing_cluster_class(cluster_cls, cls.cli, record)
        try:
            cluster = acme_cluster_cls(**kwargs)
        except TypeError as exc:
            raise TypeError(f"{cls.__name__}: {exc}") from exc
        cluster._acme_tls_dir = tls_dir  # keeps the worker credentials' directory known
        try:
            n = settings["n_workers"]
            log.info("Submitting %d %s job(s) (%s %s, %s, %d core(s) each); job logs in %s", n,
                     title, cls.queue_word, settings["queue"] or "(default)", settings["memory"],
                     settings["cores"], log_dir)
            cluster.scale(n * settings["processes"])
            cls._wait_for_workers(cluster, record, settings, log_dir)
            client = None
            if start_client:
                from distributed import Client

                client = Client(cluster)
                log.info("Parallel computing client ready, dashboard accessible at %s",
                         client.dashboard_link)
            return cluster, client
        except BaseException:
            _close_quietly(cluster)
            raise

    @classmethod
    def _wait_for_workers(cls, cluster: Any, record: _JobRecord, settings: dict[str, Any],
                          log_dir: Path) -> None:
        title = cls.cli.title
        wanted = settings["n_workers"] * settings["processes"]
        deadline = time.monotonic() + settings["timeout"]
        name = f"<{cls.name}_cluster_setup>"
        last_shown = -1
        next_queue_check = time.monotonic() + 2
        while True:
            up = len(cluster.scheduler_info.get("workers", {}))
            if up != last_shown:
                log.debug("%s %s workers ready: %d/%d", name, title, up, wanted)
                last_shown = up
            if up >= wanted:
                log.info("%s %d %s workers ready", name, up, title)
                return
            if record.failures and len(record.failures) >= settings["n_workers"]:
                raise SchedulerError(
                    f"{name} every {title} job submission failed; the first error was:\n"
                    f"{record.failures[0]}")
            if up == 0 and time.monotonic() >= next_queue_check:
                # every job already left the queue without a worker connecting (crashed
                # at start, wrong python, ...): waiting for the timeout would tell nothing
                next_queue_check = time.monotonic() + 2
                if len(record.job_ids) >= settings["n_workers"] and not _still_queued(
                        cls.cli, record.job_ids):
                    raise RuntimeError(
                        f"{name} every {title} job ended before its dask worker connected. "
                        f"{cls._situation(record, up, wanted, log_dir)}")
            if time.monotonic() >= deadline:
                situation = cls._situation(record, up, wanted, log_dir)
                minimum = max(1, settings["n_workers_startup"])
                if settings["interactive"]:
                    if up >= minimum:
                        answer = _ask(f"{name} {situation}\nDo you want to [k]eep waiting for "
                                      f"{KEEP_WAITING}s, [a]bort or [c]ontinue with {up} "
                                      f"workers?", "kac", "c", settings["interactive_wait"])
                    else:
                        answer = _ask(f"{name} {situation}\nDo you want to [k]eep waiting for "
                                      f"{KEEP_WAITING}s or [a]bort?", "ka", "a",
                                      settings["interactive_wait"])
                    if answer == "k":
                        deadline = time.monotonic() + KEEP_WAITING
                        continue
                    if answer == "c":
                        log.warning("%s continuing with %d of %d workers", name, up, wanted)
                        return
                    raise TimeoutError(f"{name} aborted by the user. {situation}")
                if up >= minimum:
                    log.warning("%s %s Continuing with the %d workers that are up; jobs that "
                                "start later join the run.", name, situation, up)
                    return
                raise TimeoutError(
                    f"{name} {title} workers could not be started within given time-out "
                    f"interval of {settings['timeout']:g} seconds. {situation}")
            time.sleep(0.25)

    @classmethod
    def _situation(cls, record: _JobRecord, up: int, wanted: int, log_dir: Path) -> str:
        """One paragraph: how many workers are up and why the others are not."""
        parts = [f"Only {up} of {wanted} workers came up."]
        try:
            states = cls.cli.job_states(record.job_ids)
        except SchedulerError as exc:
            states = {}
            parts.append(f"(Could not ask the scheduler about the jobs: {exc})")
        pending = {j: s for j, s in states.items() if s[0] != "RUNNING"}
        if pending:
            reasons: dict[str, list[str]] = {}
            for job, (state, reason) in pending.items():
                reasons.setdefault(f"{state.lower()}, {_describe_reason(reason)}", []).append(job)
            parts.append("Jobs not running: " + "; ".join(
                f"{', '.join(jobs)} ({why})" for why, jobs in reasons.items()) + ".")
        running = [j for j, s in states.items() if s[0] == "RUNNING"]
        gone = [j for j in record.job_ids if j not in states]
        if len(running) > up:
            parts.append(f"Jobs {', '.join(running)} are running but their workers have not "
                         f"connected yet (see the job logs in {log_dir}).")
        if gone:
            parts.append(f"Jobs {', '.join(gone)} already ended: their workers died or could not "
                         f"connect; see the job logs in {log_dir}.")
        if record.failures:
            parts.append(f"{len(record.failures)} submission(s) failed: {record.failures[0]}")
        return " ".join(parts)


def _still_queued(cli: type[SchedulerCLI], job_ids: Sequence[str]) -> bool:
    """Whether the scheduler still lists any of ``job_ids`` (True when it cannot tell)."""
    try:
        return bool(cli.job_states(job_ids))
    except SchedulerError:
        return True


class _JobRecord:
    """Job ids submitted for one cluster, and submission errors (dask-jobqueue only logs them)."""

    def __init__(self) -> None:
        self.job_ids: list[str] = []
        self.failures: list[str] = []


def _recording_job_class(job_cls: type, record: _JobRecord, submit_dir: Path | None) -> type:
    """A subclass of dask-jobqueue's job class that records job ids and submission errors.

    ``submit_dir``: run the submit command there, for schedulers that put job output
    into the directory they were submitted from (Slurm's PBS wrappers do).
    """

    class RecordingJob(job_cls):
        async def _submit_job(self, script_filename: str) -> str:
            cmd = shlex.split(self.submit_command) + [script_filename]
            try:
                if submit_dir is not None:
                    out = await self._call(cmd, cwd=str(submit_dir))
                else:
                    out = await self._call(cmd)
            except Exception as exc:
                record.failures.append(str(exc).strip())
                raise
            record.job_ids.append(self._job_id_from_submit_output(out))
            return out

    RecordingJob.__name__ = RecordingJob.__qualname__ = job_cls.__name__
    return RecordingJob


def _closing_cluster_class(cluster_cls: type, cli: type[SchedulerCLI], record: _JobRecord) -> type:
    """A subclass of the cluster class whose close() also cancels every job it submitted.

    dask-jobqueue cancels the jobs it still tracks; a job whose worker died or whose
    start-up raised can escape that, and would otherwise wait in the queue for
    hours. ``cluster_cleanup`` and the executor's shutdown both go through close().
    """

    class AcmeCluster(cluster_cls):
        acme_job_record = record

        async def _close(self) -> None:
            try:
                await super()._close()
            finally:
                self.acme_cancel_jobs()

        def acme_cancel_jobs(self) -> list[str]:
            """Cancel the jobs of this cluster that the scheduler still lists."""
            try:
                left = list(cli.job_states(record.job_ids))
                if left:
                    cli.cancel(left)
                    log.debug("cancelled leftover jobs %s", left)
                return left
            except SchedulerError as exc:
                log.warning("Could not cancel jobs %s: %s", record.job_ids, exc)
                return []

    AcmeCluster.__name__ = AcmeCluster.__qualname__ = cluster_cls.__name__
    return AcmeCluster


def _close_quietly(cluster: Any) -> None:
    try:
        cluster.close()
    except Exception as exc:  # the start-up error is the one to report
        log.debug("closing the cluster after a failed start: %s", exc)
        cancel = getattr(cluster, "acme_cancel_jobs", None)
        if callable(cancel):
            cancel()


# ======================================================================= the backends
class SlurmExecutor(JobQueueExecutor):
    """Workers as SLURM jobs (``dask_jobqueue.SLURMCluster``); see :class:`JobQueueExecutor`."""

    name = "slurm"
    cluster_class = "SLURMCluster"
    config_name = "slurm"
    cli = SlurmCLI
    queue_word = "partition"
    walltime_directive = "#SBATCH -t "
    exact_memory_keyword = "job_mem"


class PbsExecutor(JobQueueExecutor):
    """Workers as PBS jobs (``dask_jobqueue.PBSCluster``); see :class:`JobQueueExecutor`."""

    name = "pbs"
    cluster_class = "PBSCluster"
    config_name = "pbs"
    cli = PbsCLI
    queue_word = "queue"
    walltime_directive = "#PBS -l walltime="
    # PBS writes job output where qsub ran unless -o/-e are honoured (Torque wrappers ignore them)
    submit_in_log_directory = True


class SgeExecutor(JobQueueExecutor):
    """Workers as Grid Engine jobs (``dask_jobqueue.SGECluster``); see :class:`JobQueueExecutor`."""

    name = "sge"
    cluster_class = "SGECluster"
    config_name = "sge"
    cli = SgeCLI
    queue_word = "queue"
    walltime_directive = "#$ -l h_rt="
