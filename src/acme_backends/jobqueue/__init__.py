"""Job-queue backends: dask workers as batch jobs on SLURM, PBS and SGE, through dask-jobqueue.

- :mod:`~acme_backends.jobqueue.executor`: :class:`JobQueueExecutor` and the
  declarative :class:`SlurmExecutor`, :class:`PbsExecutor`, :class:`SgeExecutor`;
- :mod:`~acme_backends.jobqueue.setups`: ACME's :func:`slurm_cluster_setup`,
  :func:`pbs_cluster_setup`, :func:`sge_cluster_setup`;
- :mod:`~acme_backends.jobqueue.settings`: the keywords checked and resolved into
  a :class:`JobQueueSettings`, before anything is submitted;
- :mod:`~acme_backends.jobqueue.startup`: submitting, waiting for the workers, and
  why some did not come;
- :mod:`~acme_backends.jobqueue._docs`: the keyword documentation, written once;
- :mod:`~acme_backends.jobqueue._djq_hooks`: the one module that subclasses dask-jobqueue.

The schedulers' command-line tools are wrapped in :mod:`acme_backends.schedulers`.
"""

from __future__ import annotations

from acme_backends.jobqueue.executor import (
    JobQueueExecutor,
    PbsExecutor,
    SgeExecutor,
    SlurmExecutor,
)
from acme_backends.jobqueue.settings import JobQueueSettings, resolve
from acme_backends.jobqueue.setups import pbs_cluster_setup, sge_cluster_setup, slurm_cluster_setup

__all__ = [
    "JobQueueExecutor",
    "JobQueueSettings",
    "PbsExecutor",
    "SgeExecutor",
    "SlurmExecutor",
    "pbs_cluster_setup",
    "resolve",
    "sge_cluster_setup",
    "slurm_cluster_setup",
]
