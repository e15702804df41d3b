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

    register(DaskLocalExecutor)
    register(DaskClientExecutor)
