"""(Son of) Grid Engine: ``qconf``, ``qhost``, ``qstat`` and ``qdel``, and parsers for their output.

Every ``parse_*`` function reads the output of exactly one command line, named in
its docstring; :class:`SgeCLI` runs those commands.
"""

from __future__ import annotations

from collections.abc import Sequence

from acme_backends.schedulers.base import (
    JobState,
    NodeLimits,
    Queues,
    SchedulerCLI,
    largest,
    mem_mb,
)
from acme_core.errors import ArgumentValueError

__all__ = ["SgeCLI", "parse_hosts", "parse_job_states", "parse_node_limits", "parse_queues"]


def parse_queues(text: str) -> Queues:
    """Cluster queues of ``qconf -sql``, one per line (Grid Engine has no default queue)."""
    return Queues(text.split(), None)


def parse_hosts(text: str) -> dict[str, tuple[int, float | None, list[str]]]:
    """Execution host -> (CPUs, memory in MB, its queues) of ``qhost -q``.

    A host line reads ``HOSTNAME ARCH NCPU NSOC NCOR NTHR LOAD MEMTOT MEMUSE SWAPTO
    SWAPUS``; the indented lines below it name the queue instances on that host
    (``all.q  BIP  0/1/2``). The header, the rule and the ``global`` pseudo host
    are skipped, and so is a host that reports ``-`` for its CPUs (not up).
    """
    hosts: dict[str, tuple[int, float | None, list[str]]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if line[0].isspace():  # a queue instance of the host above
            if current is not None:
                current.append(parts[0])
            continue
        current = None
        if len(parts) >= 8 and parts[0] not in {"HOSTNAME", "global"} and parts[2].isdigit():
            current = []
            hosts[parts[0]] = (int(parts[2]), mem_mb(parts[7]), current)
    return hosts


def parse_node_limits(text: str, queue: str | None) -> NodeLimits:
    """The largest host of ``qhost -q`` that has ``queue`` (None: any host)."""
    hosts = [(cpus, mem) for cpus, mem, queues in parse_hosts(text).values()
             if queue is None or queue in queues]
    top = largest([float(cpus) for cpus, _ in hosts])
    return NodeLimits(None if top is None else int(top),
                      largest([mem for _, mem in hosts if mem is not None]))


def _state(code: str) -> JobState:
    """qstat's state letters in acme-core's words (``qw``: waiting, ``Eqw``: error, ...)."""
    if "E" in code:
        return JobState("ERROR", f"qstat state {code}: the job failed to start (qstat -j shows why)")
    if "h" in code:
        return JobState("HELD", f"qstat state {code}")
    if code in {"r", "t", "Rr", "Rt"}:  # running, or being transferred to its host
        return JobState("RUNNING", "")
    if "d" in code:
        return JobState("DELETING", f"qstat state {code}")
    if "s" in code.lower():
        return JobState("SUSPENDED", f"qstat state {code}")
    if "q" in code:
        return JobState("PENDING", f"qstat state {code}")
    return JobState(code, f"qstat state {code}")


def parse_job_states(text: str, job_ids: Sequence[str]) -> dict[str, JobState]:
    """Job id -> state of those of ``job_ids`` that ``qstat -u '*'`` lists.

    Columns: ``job-ID prior name user state submit/start-at queue slots ja-task-ID``.
    An array job is listed once per task; its id maps to the state of the last line.
    """
    wanted = set(job_ids)
    states = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[0] in wanted:
            states[parts[0]] = _state(parts[4])
    return states


class SgeCLI(SchedulerCLI):
    """Grid Engine's command-line tools (queues, host limits, job states, cancelling)."""

    title = "SGE"
    probe_command = "qconf"
    gpu_option = "-l gpu={n}"

    @classmethod
    def queues(cls) -> Queues:
        return parse_queues(cls.run(["qconf", "-sql"]))

    @classmethod
    def resource_options(cls, cores: int, memory_mib: int, check: bool) -> tuple[str, ...]:
        """``-pe <pe> <cores>`` (several cores) and ``-l mem_free=<memory_mib>M``.

        dask-jobqueue's SGE jobs ask Grid Engine for neither: a 4-core worker then
        occupies one slot. The parallel environment is ``smp`` where Grid Engine
        has one of that name (``qconf -spl``), else its first; ``mem_free`` (free
        memory on the host) is the request every Grid Engine knows, where
        ``h_vmem`` would kill a dask worker for the virtual memory its threads reserve.
        """
        options = [f"-l mem_free={memory_mib}M"]  # Grid Engine's M: MiB
        if cores > 1:
            options.insert(0, f"-pe {cls.parallel_environment(check)} {cores}")
        return tuple(options)

    @classmethod
    def parallel_environment(cls, check: bool) -> str:
        """The parallel environment for multi-core jobs (see :meth:`resource_options`)."""
        if not check:
            return "smp"
        names = cls.run(["qconf", "-spl"]).split()
        if not names:
            raise ArgumentValueError(
                "`cores_per_worker` > 1 needs a Grid Engine parallel environment, and "
                "`qconf -spl` lists none: ask your administrators for one (e.g. smp)",
                parameter="cores_per_worker")
        return "smp" if "smp" in names else names[0]

    @classmethod
    def node_limits(cls, queue: str | None) -> NodeLimits:
        return parse_node_limits(cls.run(["qhost", "-q"]), queue)

    @classmethod
    def job_states(cls, job_ids: Sequence[str]) -> dict[str, JobState]:
        if not job_ids:
            return {}
        # qstat -j of a job that is gone fails, so all jobs are listed and filtered
        return parse_job_states(cls.run(["qstat", "-u", "*"]), job_ids)

    @classmethod
    def cancel(cls, job_ids: Sequence[str]) -> None:
        if job_ids:
            cls.run(["qdel", *job_ids])
