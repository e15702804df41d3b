"""What a job-queue cluster starts with: every keyword checked, ACME's aliases and "auto" resolved.

:func:`resolve` turns the keywords of a job-queue backend (or of
``slurm_cluster_setup`` and friends) into a frozen :class:`JobQueueSettings`,
before anything is submitted, in small steps:

1. :meth:`JobQueueRequest.from_keywords`: ACME's aliases mapped (the one place),
   dask-jobqueue's own keywords set apart and checked (:func:`check_jobqueue_keywords`);
2. :func:`check_scalars`: types and ranges, no scheduler needed;
3. :func:`resolve_queue`: ``"auto"`` -> the default queue; an unknown one is refused;
4. :func:`resolve_memory`: ``"auto"`` -> the queue's default memory per core;
5. :func:`check_node_limits`: more cores or memory than any node has, or than the
   queue allows, is refused (such a job would never start).
"""

from __future__ import annotations

import inspect
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from acme_backends import _checks
from acme_backends.jobqueue._djq_hooks import cluster_classes
from acme_backends.jobqueue.kind import JobQueueKind, check_kind
from acme_core.errors import ArgumentTypeError, ArgumentValueError, SchedulerError
from acme_core.plugins import did_you_mean

__all__ = [
    "INTERACTIVE_WAIT",
    "RESERVED",
    "JobQueueRequest",
    "JobQueueSettings",
    "check_jobqueue_keywords",
    "check_node_limits",
    "check_scalars",
    "escalated_mib",
    "jobqueue_keywords",
    "resolve",
    "resolve_memory",
    "resolve_n_workers",
    "resolve_queue",
    "unalias",
]

log = logging.getLogger("acme")

#: Seconds the interactive start-up question waits for an answer before taking the default.
INTERACTIVE_WAIT = 120

#: dask-jobqueue keywords acme-core sets itself -> the acme-core keyword to use instead
RESERVED: dict[str, str | None] = {
    "cores": "cores_per_worker", "memory": "mem_per_worker", "processes": "processes_per_worker",
    "n_workers": "n_workers", "job_cls": None, "job_extra_directives": "job_extra",
    "dashboard_address": "dashboard_address", "host": "host", "job_mem": "mem_per_worker",
}


def unalias(keywords: Mapping[str, Any]) -> dict[str, Any]:
    """ACME's keyword names -> acme-core's; the one place they are mapped.

    ``timeout`` and ``interactive`` (ACME's names) win over ``setup_timeout`` and
    ``setup_interactive`` when given: ParallelMap always passes the latter.
    ``queue`` (PBS/SGE wording) and ``partition``, and ``n_cores`` (ACME) and
    ``cores_per_worker``, may both be given only when they agree.
    """
    kw = dict(keywords)
    for acme, ours in (("timeout", "setup_timeout"), ("interactive", "setup_interactive")):
        if (value := kw.pop(acme, None)) is not None:
            kw[ours] = value
    if (queue := kw.pop("queue", None)) is not None:
        if kw.get("partition", "auto") not in ("auto", None, queue):
            raise ArgumentValueError(f"give `partition` or `queue`, not both "
                                     f"({kw['partition']!r} and {queue!r})", parameter="queue")
        kw["partition"] = queue
    if (n_cores := kw.pop("n_cores", None)) is not None:
        if kw.get("cores_per_worker") not in (None, n_cores):
            raise ArgumentValueError("give `cores_per_worker` or ACME's `n_cores`, not both",
                                     parameter="n_cores")
        kw["cores_per_worker"] = n_cores
    return kw


def from_resources(keywords: Mapping[str, Any]) -> dict[str, Any]:
    """ParallelMap's ``resources`` (``{"cores": 4, "gpus": 1, "mem": "8GB"}``) as keywords.

    ``cores`` is ``cores_per_worker`` and ``mem`` is ``mem_per_worker`` (given both
    ways, they have to agree); ``gpus`` becomes a job-script option per scheduler.
    """
    kw = dict(keywords)
    resources = kw.pop("resources", None) or {}
    if not isinstance(resources, Mapping):
        raise ArgumentTypeError(f"`resources` has to be a dict, not {resources!r}",
                                parameter="resources")
    for name, keyword, unset in (("cores", "cores_per_worker", None),
                                 ("mem", "mem_per_worker", "auto")):
        if name not in resources:
            continue
        if kw.get(keyword, unset) not in (unset, resources[name]):
            raise ArgumentValueError(f"`resources['{name}']` {resources[name]!r} and "
                                     f"`{keyword}` {kw[keyword]!r} disagree: give one",
                                     parameter="resources")
        kw[keyword] = resources[name]
    if "gpus" in resources:
        kw["gpus"] = resources["gpus"]
    return kw


@dataclass(frozen=True)
class JobQueueRequest:
    """The keywords as given (unchecked), under acme-core's names.

    The defaults are :class:`~acme_backends.jobqueue.executor.JobQueueExecutor`'s
    (a test keeps the two equal). ``extra`` holds the keywords that go on to
    dask-jobqueue's cluster class.
    """

    partition: Any = "auto"
    n_workers: Any = "auto"
    mem_per_worker: Any = "auto"
    setup_timeout: Any = 60
    setup_interactive: Any = False
    cores_per_worker: Any = None
    interactive_wait: Any = INTERACTIVE_WAIT
    n_workers_startup: Any = 1
    processes_per_worker: Any = 1
    job_extra: Any = None
    walltime: Any = None
    log_directory: Any = None
    run_dir: Any = None
    security: Any = True
    host: Any = None
    interface: Any = None
    dashboard_address: Any = "127.0.0.1:0"
    check_resources: Any = True
    reuse: Any = True
    n_calls: Any = None
    mem_cushion: Any = 0
    gpus: Any = 0
    retry_memory_factor: Any = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_keywords(cls, keywords: Mapping[str, Any]) -> JobQueueRequest:
        """Map ACME's aliases (:func:`unalias`), ``resources`` (:func:`from_resources`),
        and set dask-jobqueue's keywords apart."""
        kw = from_resources(unalias(keywords))
        ours = {f.name for f in fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in kw.items() if k in ours},
                   extra={k: v for k, v in kw.items() if k not in ours})


@dataclass(frozen=True)
class JobQueueSettings:
    """Everything a job-queue cluster starts with, checked, with ``"auto"`` resolved."""

    #: queue (partition) the jobs go to; None: the scheduler's default
    queue: str | None
    n_workers: int
    #: memory per job as dask-jobqueue takes it ("2GB", "7900MiB") and in MiB, rounded up
    memory: str
    memory_mib: int
    cores: int
    processes: int
    timeout: float
    interactive: bool
    interactive_wait: float
    n_workers_startup: int
    job_extra: tuple[str, ...]
    walltime: str | None
    log_directory: Path | None
    run_dir: Path | None
    #: True (temporary TLS credentials), False, or a distributed Security object
    security: Any
    host: str | None
    interface: str | None
    dashboard_address: str
    reuse: bool
    #: keywords for dask-jobqueue's cluster class
    extra: Mapping[str, Any]
    #: GPUs per job (their job-script option is in ``job_extra``)
    gpus: int = 0
    #: memory growth for a call that exceeded its worker's memory (None: off)
    retry_memory_factor: float | None = None


def resolve(kind: JobQueueKind, **keywords: Any) -> JobQueueSettings:
    """Check every keyword and resolve ``"auto"`` values against the scheduler.

    Nothing is submitted. ``keywords`` are those of ``JobQueueExecutor`` or of a
    cluster setup (ACME's names included).

    Raises
    ------
    ArgumentTypeError, ArgumentValueError
        A keyword is unknown, or its value is wrong or cannot work on this
        scheduler (the message says why and names the keyword).
    SchedulerError
        The scheduler's tools are missing or do not answer.
    PluginError
        ``kind`` lacks a class attribute its author has to set (or names no
        dask-jobqueue cluster class).
    MissingDependencyError
        dask-jobqueue is not installed.
    """
    check_kind(kind)
    cluster_classes(kind)  # dask-jobqueue is there and has the class, before the scheduler is asked
    request = JobQueueRequest.from_keywords(keywords)
    check_jobqueue_keywords(kind, request.extra)
    scalars = check_scalars(kind, request)
    if not kind.cli.available():
        raise SchedulerError(
            f"The {kind.name!r} backend needs {kind.cli.title}, but "
            f"`{kind.cli.probe_command}` is not on PATH on {os.uname().nodename}: run it on a "
            f"{kind.cli.title} login node")
    check = bool(request.check_resources)
    queue = resolve_queue(kind, request.partition, check)
    cushion = _checks.number(request.mem_cushion, "mem_cushion")
    memory, max_mem = resolve_memory(kind, queue, request.mem_per_worker, scalars["cores"],
                                     cushion, check)
    from dask.utils import parse_bytes

    mib = math.ceil(parse_bytes(memory) / 2**20)  # what the job asks for (see startup)
    if check:
        check_node_limits(kind, queue, scalars["cores"], memory, mib, max_mem)
    scalars["job_extra"] += kind.cli.resource_options(scalars["cores"], mib, check)
    scalars["job_extra"] += gpu_options(kind, queue, scalars["gpus"], check)
    log.debug("%s: %d worker(s) with %d core(s) and %s each in %s %s", kind.name,
              scalars["n_workers"], scalars["cores"], memory, kind.queue_word,
              queue or "(default)")
    return JobQueueSettings(queue=queue, memory=memory, memory_mib=mib, extra=request.extra,
                            **scalars)


def jobqueue_keywords(cluster_cls: type[Any], job_cls: type[Any]) -> set[str]:
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


def check_jobqueue_keywords(kind: JobQueueKind, extra: Mapping[str, Any]) -> None:
    """Refuse keywords acme-core sets itself, and keywords dask-jobqueue does not know."""
    owner = getattr(kind, "__name__", kind.name)
    for key in extra:
        if key in RESERVED:
            ours = RESERVED[key]
            hint = f"; use `{ours}`" if ours and ours != key else ""
            raise ArgumentTypeError(f"{owner}: `{key}` is set by acme-core{hint}", parameter=key)
    if not extra:
        return
    cluster_cls, job_cls = cluster_classes(kind)
    known = jobqueue_keywords(cluster_cls, job_cls)
    unknown = sorted(set(extra) - known)
    if unknown:
        hints = "".join(did_you_mean(u, sorted(known)) for u in unknown)
        raise ArgumentTypeError(
            f"{owner}: unknown keyword argument(s) {unknown}: neither acme-core nor "
            f"dask_jobqueue.{cluster_cls.__name__} knows them.{hints}", parameter=unknown[0])


def check_scalars(kind: JobQueueKind, request: JobQueueRequest) -> dict[str, Any]:
    """Check every keyword that needs no scheduler; the :class:`JobQueueSettings` fields they give."""
    r = request
    _checks.boolean(r.check_resources, "check_resources")
    _checks.number(r.mem_cushion, "mem_cushion")
    cores = 1 if r.cores_per_worker is None else _checks.count(r.cores_per_worker,
                                                               "cores_per_worker")
    processes = _checks.count(r.processes_per_worker, "processes_per_worker")
    if processes > cores:
        raise ArgumentValueError(f"`processes_per_worker` ({processes}) cannot exceed "
                                 f"`cores_per_worker` ({cores})", parameter="processes_per_worker")
    _checks.instance_of(r.partition, "partition", (str, type(None)),
                        f"'auto' or a valid {kind.cli.title} {kind.queue_word} name")
    if r.mem_per_worker is not None:
        _checks.mem_spec(r.mem_per_worker)  # "auto" is resolved later, against the queue
    return {
        "n_workers": resolve_n_workers(kind, r.n_workers, r.n_calls),
        "cores": cores, "processes": processes,
        "timeout": _checks.number(r.setup_timeout, "timeout"),
        "interactive": _checks.boolean(r.setup_interactive, "interactive"),
        "interactive_wait": _checks.number(r.interactive_wait, "interactive_wait"),
        "n_workers_startup": _checks.count(r.n_workers_startup, "n_workers_startup", minimum=0),
        "reuse": _checks.boolean(r.reuse, "reuse"),
        "job_extra": _job_extra(kind, r.job_extra),
        "security": _security(r.security),
        "gpus": _checks.count(r.gpus, "resources['gpus']", minimum=0),
        "retry_memory_factor": None if r.retry_memory_factor is None else
        _checks.number(r.retry_memory_factor, "retry_memory_factor"),
        **_strings(r),
    }


def _strings(r: JobQueueRequest) -> dict[str, Any]:
    text = (str, type(None))
    paths = (str, os.PathLike, type(None))
    return {
        "walltime": _checks.instance_of(r.walltime, "walltime", text, "a time such as '01:00:00'"),
        "host": _checks.instance_of(r.host, "host", text, "a host name or address"),
        "interface": _checks.instance_of(r.interface, "interface", text,
                                         "a network interface name such as 'ib0'"),
        "dashboard_address": _checks.instance_of(r.dashboard_address, "dashboard_address",
                                                 str, "a string such as '127.0.0.1:0'"),
        "log_directory": _path(_checks.instance_of(r.log_directory, "log_directory", paths,
                                                   "a directory")),
        "run_dir": _path(_checks.instance_of(r.run_dir, "run_dir", paths, "a directory")),
    }


def _path(value: str | os.PathLike[str] | None) -> Path | None:
    return None if value is None else Path(os.fspath(value))


def resolve_n_workers(kind: JobQueueKind, n_workers: Any, n_calls: Any) -> int:
    """``n_workers``; ``"auto"``: one per call (ACME's one job per call), at most ``max_auto_workers``."""
    if n_workers == "auto":
        return min(int(n_calls), kind.max_auto_workers) if n_calls else 1
    if isinstance(n_workers, str):
        raise ArgumentValueError(f"`n_workers` has to be 'auto' or an integer >= 1, not "
                                 f"{n_workers}", parameter="n_workers")
    return _checks.count(n_workers, "n_workers")


def _job_extra(kind: JobQueueKind, job_extra: Any) -> tuple[str, ...]:
    if job_extra is None:
        return ()
    if not isinstance(job_extra, (list, tuple)):
        raise ArgumentTypeError(f"`job_extra` has to be a list, not {type(job_extra)}",
                                parameter="job_extra")
    for item in job_extra:
        if not isinstance(item, str):
            raise ArgumentTypeError(f"`job_extra` items have to be valid {kind.cli.title} "
                                    f"options, not {item!r}", parameter="job_extra")
    return tuple(job_extra)


def _security(security: Any) -> Any:
    if isinstance(security, bool):
        return security
    from distributed.security import Security

    if not isinstance(security, Security):
        raise ArgumentTypeError("`security` has to be True, False or a "
                                f"distributed.security.Security, not {security!r}",
                                parameter="security")
    return security


def resolve_queue(kind: JobQueueKind, partition: str | None, check: bool) -> str | None:
    """The queue the jobs go to: ``"auto"`` -> the default one (None when there is none).

    With ``check`` (and for ``"auto"``), a name the scheduler does not list is
    refused with the list of those it has. ``partition`` is a string or None
    (:func:`check_scalars` saw to that).
    """
    word, title = kind.queue_word, kind.cli.title
    queue = None if partition in ("auto", None) else partition
    if not check and queue is not None:
        return queue
    try:
        names, default = kind.cli.queues()
    except SchedulerError as exc:
        raise SchedulerError(f"Error fetching {title} {word} setup from node "
                             f"{os.uname().nodename}: {exc}") from exc
    if queue is None:
        return default
    if names and queue not in names:
        # '8gbxs' is '8GBXS' to a reader, but too far from it for difflib
        hint = next((f" Did you mean {n!r}?" for n in names if n.lower() == queue.lower()),
                    did_you_mean(queue, names))
        raise ArgumentValueError(f"Invalid {word} selection {queue!r}, available {title} "
                                 f"{word}s are {names}.{hint}", parameter="partition")
    return queue


def resolve_memory(kind: JobQueueKind, queue: str | None, mem_per_worker: Any, cores: int,
                   cushion: float, check: bool) -> tuple[str, float | None]:
    """The memory per job, and the queue's limit per node in MB (None: none known).

    ``"auto"``: the queue's default memory per core times ``cores`` (1 GB per core
    where the scheduler has no default), at most the queue's limit, less ``cushion`` MB.
    """
    if mem_per_worker is None:
        mem_per_worker = "auto"
    if check or mem_per_worker == "auto":
        max_mem, per_cpu = kind.cli.queue_memory(queue)
    else:
        max_mem, per_cpu = None, None
    if mem_per_worker == "auto":
        auto_mb = per_cpu * cores if per_cpu else cores * 1e9 / 2**20
        if max_mem is not None:
            auto_mb = min(auto_mb, max_mem)
        mem_per_worker = f"{max(int(auto_mb - cushion), 100)}MiB"
    return _checks.mem_spec(mem_per_worker), max_mem


def gpu_options(kind: JobQueueKind, queue: str | None, gpus: int, check: bool) -> tuple[str, ...]:
    """The job-script option asking for ``gpus`` GPUs; refused where no node has them."""
    if not gpus:
        return ()
    option = kind.cli.gpu_option
    if option is None:
        raise ArgumentValueError(f"`resources['gpus']`: the {kind.name!r} backend cannot ask "
                                 f"{kind.cli.title} for GPUs", parameter="resources")
    available = kind.cli.queue_gpus(queue) if check else None
    if available is not None and available < gpus:
        where = f"{kind.queue_word} {queue}" if queue else kind.cli.title
        has = "no GPUs" if available == 0 else f"at most {available} GPUs per node"
        raise ArgumentValueError(
            f"`resources['gpus']` {gpus}: {where} has {has}, so such a job could never start. "
            f"Pick a {kind.queue_word} with GPUs.", parameter="resources")
    return () if kind.cli.gpu_in_select else (option.format(n=gpus),)


def more_memory(kind: JobQueueKind, settings: JobQueueSettings,
                level: int) -> JobQueueSettings | None:
    """``settings`` for one job with ``retry_memory_factor ** level`` times the memory.

    At most what the largest node of the queue has and the queue allows; None when
    escalation is off or step ``level`` would get no more than step ``level - 1``.
    """
    want = escalated_mib(kind, settings.queue, settings.memory_mib,
                         settings.retry_memory_factor, level)
    if want is None:
        return None
    return replace(settings, memory=f"{want}MiB", memory_mib=want, n_workers=1,
                   n_workers_startup=1, reuse=False)


def escalated_mib(kind: JobQueueKind, queue: str | None, memory_mib: float,
                  factor: float | None, level: int) -> int | None:
    """MiB of memory step ``level``: ``memory_mib * factor ** level``, at most what the
    largest node of ``queue`` has and the queue allows; None when escalation is off or
    step ``level`` would get no more than step ``level - 1``."""
    if factor is None or factor <= 1:
        return None
    # compared with MiB as check_node_limits does: SLURM's "MB" are MiB
    node_mem = kind.cli.node_limits(queue).mem_mb
    max_mem = kind.cli.queue_memory(queue).max_per_node_mb
    caps = [int(m) for m in (node_mem, max_mem) if m is not None]
    cap: float = min(caps) if caps else math.inf
    want = min(math.ceil(memory_mib * factor ** level), cap)
    before = min(math.ceil(memory_mib * factor ** (level - 1)), cap)
    return None if want <= before else int(want)


def check_node_limits(kind: JobQueueKind, queue: str | None, cores: int, memory: str,
                      memory_mib: int, max_mem: float | None) -> None:
    """Refuse a job no node of ``queue`` could run, or that the queue does not allow."""
    node_cpus, node_mem = kind.cli.node_limits(queue)
    where = f"{kind.queue_word} {queue}" if queue else kind.cli.title
    shown = memory if memory.endswith("MiB") else f"{memory} ({memory_mib:.0f} MiB)"
    if node_cpus is not None and cores > node_cpus:
        raise ArgumentValueError(
            f"`cores_per_worker` {cores} is more than any node of {where} has "
            f"({node_cpus}): such a job could never start.", parameter="cores_per_worker")
    if node_mem is not None and memory_mib > node_mem:
        raise ArgumentValueError(
            f"`mem_per_worker` {shown} is more than any node of {where} has "
            f"({node_mem:.0f} MiB): such a job could never start. Ask for less memory or "
            f"pick another {kind.queue_word}.", parameter="mem_per_worker")
    if max_mem is not None and memory_mib > max_mem:
        raise ArgumentValueError(
            f"`mem_per_worker` {shown} is above the limit of {where} ({max_mem:.0f} MiB per "
            f"node): the job would wait forever. Ask for less memory or pick a "
            f"{kind.queue_word} with more.", parameter="mem_per_worker")
