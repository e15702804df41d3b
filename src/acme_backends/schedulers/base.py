"""What every scheduler wrapper shares: running a command, memory sizes, the answer types.

A scheduler wrapper (:class:`SchedulerCLI` subclass) answers the few questions the
job-queue backends ask before submitting and while waiting for workers. Each
question is one command whose output a pure ``parse_*`` function of the
scheduler's module reads, so the parsers are tested on recorded outputs
(``tests/data/schedulers``) without a scheduler.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from typing import ClassVar, NamedTuple

from acme_core.errors import SchedulerError

__all__ = [
    "JobState",
    "NodeLimits",
    "QueueMemory",
    "Queues",
    "SchedulerCLI",
    "largest",
    "mem_mb",
    "run_command",
]


class Queues(NamedTuple):
    """The queue (partition) names a scheduler has, and its default one."""

    names: list[str]
    default: str | None


class NodeLimits(NamedTuple):
    """The largest CPU count and memory (MB) of any node in a queue (None: unknown)."""

    cpus: int | None
    mem_mb: float | None


class QueueMemory(NamedTuple):
    """A queue's memory limit per node and its default memory per CPU, in MB (None: none)."""

    max_per_node_mb: float | None
    default_per_cpu_mb: float | None


class JobState(NamedTuple):
    """A job's state in acme-core's words (``RUNNING``, ``PENDING``, ...) and the reason."""

    state: str
    reason: str


def run_command(cmd: Sequence[str], timeout: float = 30) -> str:
    """Run a scheduler command and return its stdout.

    Raises
    ------
    SchedulerError
        The command is not on PATH, did not finish within ``timeout`` seconds or
        exited with a non-zero status (the message holds its stderr).
    """
    if shutil.which(cmd[0]) is None:
        raise SchedulerError(f"`{cmd[0]}` is not on PATH: is this a login node of that scheduler?")
    try:
        done = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SchedulerError(f"`{shlex.join(cmd)}` failed: {exc}") from exc
    if done.returncode != 0:
        raise SchedulerError(f"`{shlex.join(cmd)}` failed (exit code {done.returncode}): "
                             f"{(done.stderr or done.stdout).strip()}")
    return done.stdout


_FACTOR_MB = {"": 1, "k": 1 / 1024, "m": 1, "g": 1024, "t": 1024**2, "p": 1024**3}


def mem_mb(text: str) -> float | None:
    """A scheduler's memory size in MB: ``"23.5G"``, ``"24105"``, ``"24105mb"``, ``"16gb"``, ``"1024kb"``.

    A bare number is MB, as SLURM and SGE print it; None for anything else
    (``"-"``, ``"UNLIMITED"``).
    """
    m = re.fullmatch(r"\s*([0-9.]+)\s*([kmgtp]?)i?b?\s*", text, flags=re.IGNORECASE)
    if not m:
        return None
    try:
        number = float(m.group(1))
    except ValueError:  # "1.2.3"
        return None
    return number * _FACTOR_MB[m.group(2).lower()]


def largest(values: list[float]) -> float | None:
    """The largest of ``values``, or None when the scheduler reported none."""
    return max(values) if values else None


class SchedulerCLI:
    """What the job-queue backends ask a batch scheduler, through its command-line tools.

    All methods are class methods: a wrapper holds no state. A question the
    scheduler cannot answer (a site may hide things) returns None or an empty
    answer, and the caller skips the check that needed it. Every command goes
    through :meth:`run`, the one place a subclass or a test replaces to answer
    from elsewhere.
    """

    #: name shown in messages
    title: ClassVar[str] = "batch scheduler"
    #: command whose presence means the scheduler is usable from here
    probe_command: ClassVar[str] = ""
    #: the job-script option that asks for ``{n}`` GPUs per job (None: not supported)
    gpu_option: ClassVar[str | None] = None
    #: ``gpu_option`` is a part of the select statement (PBS), not a line of its own
    gpu_in_select: ClassVar[bool] = False

    @classmethod
    def run(cls, cmd: Sequence[str]) -> str:
        """Run one scheduler command; its stdout (:func:`run_command`)."""
        return run_command(cmd)

    @classmethod
    def available(cls) -> bool:
        """Whether the scheduler's tools are on PATH here."""
        return bool(cls.probe_command) and shutil.which(cls.probe_command) is not None

    @classmethod
    def queues(cls) -> Queues:
        """All queue/partition names, and the default one (or None)."""
        raise NotImplementedError(f"{cls.__name__} does not list its queues")

    @classmethod
    def node_limits(cls, queue: str | None) -> NodeLimits:
        """The largest CPU count and memory (MB) of a node in ``queue`` (None: any queue)."""
        return NodeLimits(None, None)

    @classmethod
    def queue_memory(cls, queue: str | None) -> QueueMemory:
        """The queue's memory limit per node and its default memory per CPU (MB)."""
        return QueueMemory(None, None)

    @classmethod
    def queue_gpus(cls, queue: str | None) -> int | None:
        """The most GPUs a node of ``queue`` has (0: none; None: the scheduler cannot tell)."""
        return None

    @classmethod
    def resource_options(cls, cores: int, memory_mib: int, check: bool) -> tuple[str, ...]:
        """Job-script options asking the scheduler for ``cores`` and ``memory_mib`` per job.

        Only for schedulers whose dask-jobqueue job class does not ask itself (SLURM's
        writes ``--cpus-per-task``/``--mem``, PBS's ``-l select``/``nodes``).
        ``check``: the scheduler may be asked what it has.
        """
        return ()

    @classmethod
    def job_states(cls, job_ids: Sequence[str]) -> dict[str, JobState]:
        """Job id -> state and reason, for those of ``job_ids`` the scheduler still lists."""
        return {}

    @classmethod
    def cancel(cls, job_ids: Sequence[str]) -> None:
        """Cancel the jobs ``job_ids``."""
        raise NotImplementedError(f"{cls.__name__} cannot cancel jobs")
