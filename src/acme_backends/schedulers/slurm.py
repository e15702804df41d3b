"""SLURM: ``sinfo``, ``scontrol``, ``squeue`` and ``scancel``, and parsers for their output.

Every ``parse_*`` function reads the output of exactly one command line, named in
its docstring; :class:`SlurmCLI` runs those commands.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from acme_backends.schedulers.base import (
    JobState,
    NodeLimits,
    QueueMemory,
    Queues,
    SchedulerCLI,
    largest,
    mem_mb,
)
from acme_core.errors import SchedulerError

__all__ = [
    "SlurmCLI",
    "parse_job_states",
    "parse_node_gpus",
    "parse_node_limits",
    "parse_partition_memory",
    "parse_partitions",
]


def parse_partitions(text: str) -> Queues:
    """Partitions of ``sinfo -h -o %P``; the default one is marked with ``*``.

    sinfo prints a partition once per group of nodes in one state, so a name may
    repeat; it is listed once.
    """
    names: list[str] = []
    default = None
    for raw in text.split():
        name = raw.rstrip("*")
        if raw.endswith("*"):
            default = name
        if name not in names:
            names.append(name)
    return Queues(names, default)


def _number(text: str) -> str:
    # sinfo appends "+" when it folds nodes with different values into one line
    return text.rstrip("+")


def parse_node_limits(text: str) -> NodeLimits:
    """The largest node of ``sinfo -h -N -o "%c %m"`` (CPUs, memory in MB per line)."""
    cpus: list[float] = []
    mem: list[float] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 2 or not _number(parts[0]).isdigit():
            continue
        cpus.append(int(_number(parts[0])))
        if (value := mem_mb(_number(parts[1]))) is not None:
            mem.append(value)
    top = largest(cpus)
    return NodeLimits(None if top is None else int(top), largest(mem))


def parse_partition_memory(text: str) -> QueueMemory:
    """``MaxMemPerNode`` and ``DefMemPerCPU`` of ``scontrol -o show partition NAME``.

    ``UNLIMITED`` (and 0) mean no limit; a partition that sets ``DefMemPerNode``
    instead has no default per CPU.
    """
    fields = dict(kv.split("=", 1) for kv in text.split() if "=" in kv)

    def mb(key: str) -> float | None:
        value = fields.get(key, "UNLIMITED")
        return None if value in {"UNLIMITED", "0"} else mem_mb(value)

    return QueueMemory(mb("MaxMemPerNode"), mb("DefMemPerCPU"))


def parse_node_gpus(text: str) -> int:
    """The most GPUs on one node of ``sinfo -h -N -o %G`` (one node's GRES per line).

    A line is ``(null)`` or a list such as ``gpu:2``, ``gpu:a100:4(S:0-1)``,
    ``gpu:2,mps:200`` or ``gpu:v100:2(S:0),gpu:t4:1(S:1)``: a node's GPU count is
    the sum of the numbers after the last colon of its ``gpu`` entries (the
    socket lists in brackets left off).
    """
    best = 0
    for line in text.split():
        count = 0
        for item in re.sub(r"\([^)]*\)", "", line).split(","):
            name, _, rest = item.partition(":")
            number = rest.rsplit(":", 1)[-1]
            if name == "gpu" and number.isdigit():
                count += int(number)
        best = max(best, count)
    return best


def parse_job_states(text: str) -> dict[str, JobState]:
    """Job id -> (state, reason) of ``squeue -h -o "%i %T %r"``.

    The reason of a running job is ``None``; a pending job's says why it waits
    (``Resources``, ``Priority``, ``MaxMemPerLimit``, ...).
    """
    states = {}
    for line in text.splitlines():
        parts = line.split(None, 2)
        if len(parts) >= 2:
            states[parts[0]] = JobState(parts[1], parts[2].strip() if len(parts) > 2 else "")
    return states


class SlurmCLI(SchedulerCLI):
    """SLURM's command-line tools (partitions, node limits, job states, cancelling)."""

    title = "SLURM"
    probe_command = "sinfo"
    gpu_option = "--gres=gpu:{n}"

    @classmethod
    def queues(cls) -> Queues:
        return parse_partitions(cls.run(["sinfo", "-h", "-o", "%P"]))

    @classmethod
    def node_limits(cls, queue: str | None) -> NodeLimits:
        where = ["-p", queue] if queue else []
        return parse_node_limits(cls.run(["sinfo", "-h", "-N", "-o", "%c %m", *where]))

    @classmethod
    def queue_gpus(cls, queue: str | None) -> int | None:
        where = ["-p", queue] if queue else []
        return parse_node_gpus(cls.run(["sinfo", "-h", "-N", "-o", "%G", *where]))

    @classmethod
    def queue_memory(cls, queue: str | None) -> QueueMemory:
        if not queue:
            return QueueMemory(None, None)
        return parse_partition_memory(cls.run(["scontrol", "-o", "show", "partition", queue]))

    @classmethod
    def job_states(cls, job_ids: Sequence[str]) -> dict[str, JobState]:
        if not job_ids:
            return {}
        try:
            text = cls.run(["squeue", "-h", "-o", "%i %T %r", "-j", ",".join(job_ids)])
        except SchedulerError as exc:
            # squeue fails when slurmctld knows none of the ids any more (purged
            # MinJobAge seconds after they ended): every job is gone
            if "Invalid job id specified" in str(exc):
                return {}
            raise
        return parse_job_states(text)

    @classmethod
    def cancel(cls, job_ids: Sequence[str]) -> None:
        if job_ids:
            cls.run(["scancel", *job_ids])
