"""``backend="slurm-array"``: calls as elements of SLURM job arrays.

One ``sbatch`` per array (the script on stdin: nothing the scheduler runs lies in
the run directory), ``--array=0-N%T`` with the throttle ``T``, at most
``MaxArraySize`` elements per array (``scontrol show config``), later arrays
``--dependency=afterany:`` the one before; one ``squeue -r`` for every array of
the run per poll; ``scancel`` of every array at once.
"""

from __future__ import annotations

import os
import re
import shlex
from typing import ClassVar

from acme_backends.arrays.base import ArrayExecutor
from acme_backends.schedulers.base import run_command
from acme_backends.schedulers.slurm import SlurmCLI
from acme_core.errors import SchedulerError
from acme_core.executor import ElementJob

__all__ = ["SlurmArrayExecutor", "parse_array_states", "parse_max_array_size", "slurm_script"]

#: SLURM's pending reasons of array elements, in words (the rest: the job-queue backends')
ARRAY_REASONS = {
    "JobArrayTaskLimit": "the array's throttle: at most n_workers elements run at once",
    "Dependency": "waits for the array before it (runs split at MaxArraySize)",
    "None": "about to start",
}


def describe(reason: str) -> str:
    reason = reason.strip("()")
    if reason in ARRAY_REASONS:
        return f"{reason}: {ARRAY_REASONS[reason]}"
    from acme_backends.jobqueue.startup import describe_reason

    return describe_reason(reason)


def parse_max_array_size(text: str) -> int | None:
    """``MaxArraySize`` of ``scontrol show config`` (elements 0 .. MaxArraySize - 1)."""
    m = re.search(r"^\s*MaxArraySize\s*=\s*(\d+)", text, flags=re.MULTILINE)
    return int(m.group(1)) if m else None


def parse_array_states(text: str) -> dict[str, dict[int, tuple[str, str]]]:
    """Job id -> element -> (state, reason) of ``squeue -h -r -o "%i %T %r"``.

    ``-r`` lists every element of an array on its own line (``123_4``); a line
    without an element number is a job that is no array, and is skipped.
    """
    states: dict[str, dict[int, tuple[str, str]]] = {}
    for line in text.splitlines():
        parts = line.split(None, 2)
        if len(parts) < 2 or "_" not in parts[0]:
            continue
        job, _, element = parts[0].partition("_")
        if not element.isdigit():
            continue
        reason = parts[2].strip() if len(parts) > 2 else ""
        states.setdefault(job, {})[int(element)] = (parts[1], reason)
    return states


def slurm_script(command: list[str], first: int, count: int, *, name: str, log_dir: str,
                 throttle: int | None, options: list[str]) -> str:
    """The batch script of one array (element ``k`` runs ``command + [first + k]``)."""
    array = f"0-{count - 1}" + (f"%{throttle}" if throttle else "")
    lines = ["#!/bin/sh", f"#SBATCH --job-name={name}", f"#SBATCH --array={array}",
             f"#SBATCH --output={log_dir}/{name}-%A_%a.out",
             f"#SBATCH --chdir={os.getcwd()}"]
    lines += [f"#SBATCH {o}" for o in options]
    run = " ".join(shlex.quote(c) for c in command)
    lines.append(f'exec {run} "$((SLURM_ARRAY_TASK_ID + {int(first)}))"')
    return "\n".join(lines) + "\n"


class SlurmArrayExecutor(ArrayExecutor):
    __doc__ = ArrayExecutor.__doc__

    name: ClassVar[str] = "slurm-array"
    description: ClassVar[str] = "calls as elements of SLURM job arrays (runs outlive the driver)"
    cli = SlurmCLI
    queue_word = "partition"

    def _directives(self) -> list[str]:
        s = self.settings
        options = [f"--cpus-per-task={s.cores}", f"--mem={s.memory_mib}M"]
        if s.queue:
            options.append(f"--partition={s.queue}")
        if s.walltime:
            options.append(f"--time={s.walltime}")
        if s.gpus:
            options.append(str(self.cli.gpu_option).format(n=s.gpus))
        return options + s.job_extra

    def submit_array(self, command: list[str], first: int, count: int, *, name: str,
                     log_dir: str, after: str | None) -> str:
        options = self._directives()
        if after:
            options.append(f"--dependency=afterany:{after}")
        script = slurm_script(command, first, count, name=name, log_dir=log_dir,
                              throttle=self.settings.throttle, options=options)
        return self._submit_script(["sbatch", "--parsable"], script, count).split(";")[0]

    def scheduler_array_limit(self) -> int | None:
        return parse_max_array_size(run_command(["scontrol", "show", "config"]))

    def element_states(self, jobs: list[ElementJob]) -> dict[str, dict[int, tuple[str, str]]]:
        """Every element of ``jobs`` squeue still lists, in one ``squeue`` call."""
        if not jobs:
            return {}
        ids = ",".join(j.job_id for j in jobs)
        try:
            text = run_command(["squeue", "-h", "-r", "-o", "%i %T %r", "-j", ids])
        except SchedulerError as exc:
            if "Invalid job id specified" in str(exc):  # every job is gone (purged)
                return {}
            raise
        states = parse_array_states(text)
        return {job: {k: (state, describe(reason) if state == "PENDING" else "")
                      for k, (state, reason) in elements.items()}
                for job, elements in states.items()}

    def total_cpus(self) -> int | None:
        where = ["-p", self.settings.queue] if self.settings.queue else []
        text = run_command(["sinfo", "-h", "-o", "%C", *where])
        total = 0
        for line in text.split():
            parts = line.split("/")
            if len(parts) == 4 and parts[3].isdigit():
                total += int(parts[3])
        return total or None
