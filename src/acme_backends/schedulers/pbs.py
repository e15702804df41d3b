"""PBS (Torque, OpenPBS/PBS Pro, Slurm's Torque wrappers): ``qstat``, ``pbsnodes``, ``qdel``.

Every ``parse_*`` function reads the output of exactly one command line, named in
its docstring; :class:`PbsCLI` runs those commands.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence

from acme_backends.schedulers.base import (
    JobState,
    NodeLimits,
    Queues,
    SchedulerCLI,
    largest,
    mem_mb,
)
from acme_core.errors import SchedulerError

__all__ = ["PbsCLI", "parse_job_states", "parse_node_limits", "parse_queues"]

#: qstat's one-letter job states
STATES = {"Q": "PENDING", "R": "RUNNING", "H": "HELD", "E": "EXITING", "C": "COMPLETED",
          "W": "WAITING", "T": "MOVING", "S": "SUSPENDED", "B": "RUNNING"}


def parse_queues(text: str) -> Queues:
    """Queue names of ``qstat -Q``: the first column of every line below the ``---`` rule."""
    names: list[str] = []
    below_rule = False
    for line in text.splitlines():
        if line.startswith("---"):
            below_rule = True
        elif below_rule and line.split():
            names.append(line.split()[0])
    return Queues(names, None)


_NCPUS = re.compile(r"(?:np|resources_available\.ncpus)\s*=\s*(\d+)")
_MEM = re.compile(r"resources_available\.mem\s*=\s*(\S+)")
# Torque reports memory inside the status line instead
_STATUS_MEM = re.compile(r"[,=\s](physmem|availmem)=(\w+)")


def parse_node_limits(text: str) -> NodeLimits:
    """The largest node of ``pbsnodes -a``.

    CPUs come from ``np`` (Torque) or ``resources_available.ncpus`` (PBS Pro);
    memory from ``resources_available.mem`` (PBS Pro) or ``physmem`` in the
    ``status`` line (Torque). Slurm's Torque wrappers report only ``availmem``,
    which is taken where ``physmem`` is missing (on Torque it counts swap too).
    """
    cpus: list[float] = []
    mem: list[float] = []
    for raw in text.splitlines():
        line = raw.strip()
        if m := _NCPUS.match(line):
            cpus.append(int(m.group(1)))
        sizes = [m.group(1)] if (m := _MEM.match(line)) else []
        status = dict(_STATUS_MEM.findall(line))
        sizes += [status.get("physmem") or status["availmem"]] if status else []
        mem += [value for size in sizes if (value := mem_mb(size)) is not None]
    top = largest(cpus)
    return NodeLimits(None if top is None else int(top), largest(mem))


def _short(job_id: str) -> str:
    """``123.server`` -> ``123``: qsub may print the server name, qstat may not (or vice versa)."""
    return job_id.split(".")[0]


def parse_job_states(text: str, job_ids: Sequence[str]) -> dict[str, JobState]:
    """Job id -> state of those of ``job_ids`` that ``qstat`` lists.

    Columns: ``Job ID  Name  User  Time Use  S  Queue``; the ``S`` column is the
    fifth. Ids match with or without the ``.server`` suffix; the keys are the ids
    as given. Completed jobs (``C``) are left out: Torque, and Slurm's wrappers,
    list them for a while after they ended.
    """
    wanted = {_short(j): j for j in job_ids}
    states = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 6 and _short(parts[0]) in wanted and len(parts[4]) == 1:
            code = parts[4]
            if code != "C":
                states[wanted[_short(parts[0])]] = JobState(STATES.get(code, code), "")
    return states


class PbsCLI(SchedulerCLI):
    """PBS's command-line tools (queues, node limits, job states, cancelling)."""

    title = "PBS"
    probe_command = "qstat"
    # PBS Pro refuses host-level resources (ngpus) next to a select statement: they go in it
    gpu_option = "ngpus={n}"
    gpu_in_select = True

    @classmethod
    def available(cls) -> bool:
        # Grid Engine has a qstat and a qsub too; PBS (and Slurm's wrappers) have pbsnodes
        return shutil.which("qsub") is not None and shutil.which("pbsnodes") is not None

    @classmethod
    def queues(cls) -> Queues:
        return parse_queues(cls.run(["qstat", "-Q"]))

    @classmethod
    def node_limits(cls, queue: str | None) -> NodeLimits:
        return parse_node_limits(cls.run(["pbsnodes", "-a"]))

    @classmethod
    def job_states(cls, job_ids: Sequence[str]) -> dict[str, JobState]:
        if not job_ids:
            return {}
        try:
            text = cls.run(["qstat", *job_ids])
        except SchedulerError:
            # qstat fails as a whole when one of the ids is gone: list every job instead
            text = cls.run(["qstat"])
        return parse_job_states(text, job_ids)

    @classmethod
    def cancel(cls, job_ids: Sequence[str]) -> None:
        if job_ids:
            cls.run(["qdel", *job_ids])
