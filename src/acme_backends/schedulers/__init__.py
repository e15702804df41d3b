"""The batch schedulers' command-line tools, wrapped: the only place that knows their formats.

One module per scheduler (:mod:`~acme_backends.schedulers.slurm`,
:mod:`~acme_backends.schedulers.pbs`, :mod:`~acme_backends.schedulers.sge`), each
with a :class:`~acme_backends.schedulers.base.SchedulerCLI` subclass and pure
``parse_*`` functions tested on recorded outputs. The job-queue backends ask them
what they need to check a request before submitting it and to explain a job that
does not start. A site plugin may use them too (``acme-esi`` asks
:class:`SlurmCLI` for the partitions).
"""

from __future__ import annotations

from acme_backends.schedulers.base import (
    JobState,
    NodeLimits,
    QueueMemory,
    Queues,
    SchedulerCLI,
    mem_mb,
    run_command,
)
from acme_backends.schedulers.pbs import PbsCLI
from acme_backends.schedulers.sge import SgeCLI
from acme_backends.schedulers.slurm import SlurmCLI

__all__ = [
    "JobState",
    "NodeLimits",
    "PbsCLI",
    "QueueMemory",
    "Queues",
    "SchedulerCLI",
    "SgeCLI",
    "SlurmCLI",
    "mem_mb",
    "run_command",
]
