"""``backend="sge-array"``: calls as elements of Grid Engine array jobs.

One ``qsub -t 1-N -tc T`` per array (the script on stdin), at most
``max_aj_tasks`` elements per array (``qconf -sconf``), later arrays
``-hold_jid`` the one before; one ``qstat`` per poll for every array of the run;
``qdel`` of every array at once.
"""

from __future__ import annotations

import re
import shlex
from typing import ClassVar

from acme_backends.arrays.base import ArrayExecutor
from acme_backends.schedulers.base import run_command
from acme_backends.schedulers.sge import SgeCLI
from acme_core.executor import ElementJob

__all__ = ["SgeArrayExecutor", "expand_tasks", "parse_array_states", "parse_max_aj_tasks",
           "sge_script"]


def parse_max_aj_tasks(text: str) -> int | None:
    """``max_aj_tasks`` of ``qconf -sconf`` (None: unlimited, 0, or not set)."""
    m = re.search(r"^max_aj_tasks\s+(\d+)", text, flags=re.MULTILINE)
    return int(m.group(1)) or None if m else None


def expand_tasks(spec: str) -> list[int]:
    """qstat's ja-task-ID column: ``"4"``, ``"5-10:1"``, ``"3,5,7"`` -> task ids (1-based)."""
    out: list[int] = []
    for part in spec.split(","):
        m = re.fullmatch(r"(\d+)(?:-(\d+)(?::(\d+))?)?", part.strip())
        if not m:
            continue
        first = int(m.group(1))
        last = int(m.group(2) or first)
        out.extend(range(first, last + 1, int(m.group(3) or 1)))
    return out


def _state(code: str) -> tuple[str, str]:
    if code in {"r", "t", "Rr", "Rt"}:
        return "RUNNING", ""
    if "E" in code:
        return "ERROR", f"qstat state {code}: the element failed to start (qstat -j shows why)"
    if "d" in code:
        return "DELETING", ""
    if "h" in code:
        return "PENDING", "hqw: held, waits for the array before it (runs split at max_aj_tasks)"
    if "q" in code:
        return "PENDING", "qw: waiting for a free slot"
    return code, f"qstat state {code}"


def parse_array_states(text: str, job_ids: set[str]) -> dict[str, dict[int, tuple[str, str]]]:
    """Job id -> element (0-based) -> (state, reason) of ``qstat -u USER``, for ``job_ids``.

    An array's line ends with its ja-task-ID (a task, or a range of pending ones).
    """
    states: dict[str, dict[int, tuple[str, str]]] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 9 or parts[0] not in job_ids:
            continue
        state = _state(parts[4])
        for task in expand_tasks(parts[-1]):
            states.setdefault(parts[0], {})[task - 1] = state
    return states


def sge_script(command: list[str], first: int, count: int, *, name: str, log_dir: str,
               throttle: int | None, options: list[str]) -> str:
    """The job script of one array (element ``k`` runs ``command + [first + k]``)."""
    lines = ["#!/bin/sh", f"#$ -N {name}", f"#$ -t 1-{count}", "#$ -cwd", "#$ -V", "#$ -j y",
             "#$ -S /bin/sh", f"#$ -o {log_dir}/{name}-$JOB_ID_$TASK_ID.out"]
    if throttle:
        lines.append(f"#$ -tc {int(throttle)}")
    lines += [f"#$ {o}" for o in options]
    run = " ".join(shlex.quote(c) for c in command)
    lines.append(f'exec {run} "$((SGE_TASK_ID - 1 + {int(first)}))"')
    return "\n".join(lines) + "\n"


class SgeArrayExecutor(ArrayExecutor):
    __doc__ = ArrayExecutor.__doc__

    name: ClassVar[str] = "sge-array"
    description: ClassVar[str] = "calls as elements of SGE array jobs (runs outlive the driver)"
    cli = SgeCLI
    queue_word = "queue"
    task_base = 1

    def _directives(self) -> list[str]:
        s = self.settings
        # -pe and mem_free as the "sge" backend asks (SgeCLI.resource_options)
        options = list(self.cli.resource_options(s.cores, s.memory_mib, True))
        if s.queue:
            options.append(f"-q {s.queue}")
        if s.walltime:
            options.append(f"-l h_rt={s.walltime}")
        if s.gpus:
            options.append(str(self.cli.gpu_option).format(n=s.gpus))
        return options + s.job_extra

    def submit_array(self, command: list[str], first: int, count: int, *, name: str,
                     log_dir: str, after: str | None) -> str:
        options = self._directives()
        if after:
            options.append(f"-hold_jid {after}")
        script = sge_script(command, first, count, name=name, log_dir=log_dir,
                            throttle=self.settings.throttle, options=options)
        return self._submit_script(["qsub", "-terse"], script, count).split(".")[0]

    def scheduler_array_limit(self) -> int | None:
        return parse_max_aj_tasks(run_command(["qconf", "-sconf"]))

    def element_states(self, jobs: list[ElementJob]) -> dict[str, dict[int, tuple[str, str]]]:
        """Every element of ``jobs`` qstat still lists, in one ``qstat`` call."""
        if not jobs:
            return {}
        import getpass

        text = run_command(["qstat", "-u", getpass.getuser()])
        return parse_array_states(text, {j.job_id for j in jobs})
