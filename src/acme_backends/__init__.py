"""Executor plugins shipped with acme-core.

They register through :func:`acme_register_executors`, the same hook
third-party backends implement. dask is imported only when an executor is
created, so listing the backends is cheap.
"""

from __future__ import annotations

from acme_core.hookspecs import Register
from acme_core.plugins import hookimpl


@hookimpl
def acme_register_executors(register: Register) -> None:
    from acme_backends.dask_client import DaskClientExecutor
    from acme_backends.dask_local import DaskLocalExecutor
    from acme_backends.jobqueue import PbsExecutor, SgeExecutor, SlurmExecutor

    register(DaskLocalExecutor)
    register(DaskClientExecutor)
    register(SlurmExecutor)
    register(PbsExecutor)
    register(SgeExecutor)


@hookimpl
def acme_register_cluster_setups(register: Register) -> None:
    from acme_core.cluster_setups import pbs_cluster_setup, sge_cluster_setup, slurm_cluster_setup

    register(slurm_cluster_setup, name="slurm")
    register(pbs_cluster_setup, name="pbs")
    register(sge_cluster_setup, name="sge")
