"""The batch schedulers' command-line tools, wrapped: the only place that knows their formats.

Each scheduler has one small class (:class:`SlurmCLI`, :class:`SgeCLI`,
:class:`PbsCLI`) answering what :mod:`acme_backends.jobqueue` needs to check a
request before submitting it and to explain a job that does not start: the
queues, node and queue limits, job states with pending reasons, and cancelling.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from typing import ClassVar

from acme_core.errors import SchedulerError


# ======================================================================= scheduler CLIs
def _run(cmd: Sequence[str], timeout: float = 30) -> str:
    """Run a scheduler command and return its stdout; SchedulerError when it fails."""
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


def _mem_mb(text: str) -> float | None:
    """``"23.5G"``, ``"24105"`` (MB), ``"24105mb"``, ``"16gb"``, ``"1024kb"`` -> megabytes."""
    m = re.fullmatch(r"\s*([0-9.]+)\s*([kmgtp]?)i?b?\s*", text, flags=re.IGNORECASE)
    if not m:
        return None
    factor = {"": 1, "k": 1 / 1024, "m": 1, "g": 1024, "t": 1024**2, "p": 1024**3}
    return float(m.group(1)) * factor[m.group(2).lower()]


class SchedulerCLI:
    """What acme-core asks a batch scheduler, through its command-line tools.

    Every method returns ``None`` when the scheduler cannot tell (a site may hide
    things), and the callers then skip the corresponding check.
    """

    #: name shown in messages
    title: ClassVar[str] = "batch scheduler"
    #: command whose presence means the scheduler is usable from here
    probe_command: ClassVar[str] = ""

    @classmethod
    def available(cls) -> bool:
        return bool(cls.probe_command) and shutil.which(cls.probe_command) is not None

    @classmethod
    def queues(cls) -> tuple[list[str], str | None]:
        """All queue/partition names, and the default one (or None)."""
        raise NotImplementedError

    @classmethod
    def node_limits(cls, queue: str | None) -> tuple[int | None, float | None]:
        """The largest CPU count and memory (MB) of a node in ``queue``."""
        return None, None

    @classmethod
    def queue_memory(cls, queue: str | None) -> tuple[float | None, float | None]:
        """The queue's memory limit per node and its default memory per CPU (MB)."""
        return None, None

    @classmethod
    def job_states(cls, job_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """job id -> (state, reason) of the jobs still known to the scheduler."""
        return {}

    @classmethod
    def cancel(cls, job_ids: Sequence[str]) -> None:
        raise NotImplementedError


class SlurmCLI(SchedulerCLI):
    title = "SLURM"
    probe_command = "sinfo"

    @classmethod
    def queues(cls) -> tuple[list[str], str | None]:
        names, default = [], None
        for raw in _run(["sinfo", "-h", "-o", "%P"]).split():
            name = raw.rstrip("*")
            if raw.endswith("*"):
                default = name
            if name not in names:
                names.append(name)
        return names, default

    @classmethod
    def node_limits(cls, queue: str | None) -> tuple[int | None, float | None]:
        cmd = ["sinfo", "-h", "-N", "-o", "%c %m"] + (["-p", queue] if queue else [])
        cpus, mem = [], []
        for line in _run(cmd).splitlines():
            parts = line.split()
            if len(parts) == 2:
                cpus.append(int(parts[0].rstrip("+")))
                mem.append(float(parts[1].rstrip("+")))
        return (max(cpus) if cpus else None), (max(mem) if mem else None)

    @classmethod
    def queue_memory(cls, queue: str | None) -> tuple[float | None, float | None]:
        if not queue:
            return None, None
        text = _run(["scontrol", "-o", "show", "partition", queue])
        fields = dict(kv.split("=", 1) for kv in text.split() if "=" in kv)

        def mb(key: str) -> float | None:
            value = fields.get(key, "UNLIMITED")
            return None if value in {"UNLIMITED", "0"} else _mem_mb(value)

        return mb("MaxMemPerNode"), mb("DefMemPerCPU")

    @classmethod
    def job_states(cls, job_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        if not job_ids:
            return {}
        out = _run(["squeue", "-h", "-o", "%i %T %r", "-j", ",".join(job_ids)])
        states = {}
        for line in out.splitlines():
            parts = line.split(None, 2)
            if len(parts) >= 2:
                states[parts[0]] = (parts[1], parts[2] if len(parts) > 2 else "")
        return states

    @classmethod
    def cancel(cls, job_ids: Sequence[str]) -> None:
        if job_ids:
            _run(["scancel", *job_ids])


class SgeCLI(SchedulerCLI):
    title = "SGE"
    probe_command = "qconf"

    @classmethod
    def queues(cls) -> tuple[list[str], str | None]:
        return _run(["qconf", "-sql"]).split(), None

    @classmethod
    def node_limits(cls, queue: str | None) -> tuple[int | None, float | None]:
        cmd = ["qhost"] + (["-q"] if queue else [])
        cpus, mem = [], []
        for line in _run(cmd).splitlines():
            parts = line.split()
            # HOSTNAME ARCH NCPU NSOC NCOR NTHR LOAD MEMTOT ...
            if len(parts) >= 8 and parts[0] not in {"HOSTNAME", "global"} and parts[2].isdigit():
                cpus.append(int(parts[2]))
                value = _mem_mb(parts[7])
                if value is not None:
                    mem.append(value)
        return (max(cpus) if cpus else None), (max(mem) if mem else None)

    @classmethod
    def job_states(cls, job_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        wanted, states = set(job_ids), {}
        # job-ID prior name user state submit/start-at queue slots
        for line in _run(["qstat", "-u", "*"]).splitlines():
            parts = line.split()
            if len(parts) >= 5 and parts[0] in wanted:
                code = parts[4]
                state = ("RUNNING" if "r" in code else "ERROR" if "E" in code
                         else "HELD" if "h" in code else "PENDING" if "q" in code else code)
                states[parts[0]] = (state, "" if state == "RUNNING" else f"qstat state {code}")
        return states

    @classmethod
    def cancel(cls, job_ids: Sequence[str]) -> None:
        if job_ids:
            _run(["qdel", *job_ids])


class PbsCLI(SchedulerCLI):
    title = "PBS"
    probe_command = "qstat"

    @classmethod
    def available(cls) -> bool:
        # SGE's qstat has the same name; PBS (and Slurm's Torque wrappers) have pbsnodes
        return shutil.which("qsub") is not None and shutil.which("pbsnodes") is not None

    @classmethod
    def queues(cls) -> tuple[list[str], str | None]:
        names, seen_rule = [], False
        for line in _run(["qstat", "-Q"]).splitlines():
            if line.startswith("---"):
                seen_rule = True
            elif seen_rule and line.split():
                names.append(line.split()[0])
        return names, None

    @classmethod
    def node_limits(cls, queue: str | None) -> tuple[int | None, float | None]:
        cpus, mem = [], []
        for line in _run(["pbsnodes", "-a"]).splitlines():
            line = line.strip()
            m = re.match(r"(?:np|resources_available\.ncpus)\s*=\s*(\d+)", line)
            if m:
                cpus.append(int(m.group(1)))
            m = re.match(r"resources_available\.mem\s*=\s*(\S+)", line)
            if m and (value := _mem_mb(m.group(1))) is not None:
                mem.append(value)
            # Torque (and Slurm's wrappers) report memory in the status line instead
            m = re.search(r"[,=](?:physmem|availmem)=(\w+)", line)
            if m and (value := _mem_mb(m.group(1))) is not None:
                mem.append(value)
        return (max(cpus) if cpus else None), (max(mem) if mem else None)

    @classmethod
    def job_states(cls, job_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        wanted = {j.split(".")[0]: j for j in job_ids}
        states = {}
        try:
            out = _run(["qstat", *job_ids])
        except SchedulerError:
            return {}  # qstat fails when one of the jobs is gone
        names = {"Q": "PENDING", "R": "RUNNING", "H": "HELD", "E": "EXITING", "C": "COMPLETED"}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) >= 5 and parts[0].split(".")[0] in wanted:
                code = parts[4]
                states[wanted[parts[0].split(".")[0]]] = (names.get(code, code), "")
        return states

    @classmethod
    def cancel(cls, job_ids: Sequence[str]) -> None:
        if job_ids:
            _run(["qdel", *job_ids])
