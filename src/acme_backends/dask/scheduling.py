"""How the dask scheduler of a cluster acme-core starts is set up (local and job-queue).

- ``worker_ttl`` :data:`FROZEN_WORKER_TTL`: a worker that stops answering (SIGSTOP,
  a hung node) is given up after a minute, not dask's five; its calls run elsewhere.
- ``allowed_failures`` 1: a task whose worker died is retried once by dask, not three
  times; acme-core reruns the calls of a lost task one by one itself, to find a call
  that kills its worker.
- ``worker-saturation`` 1.0 (:func:`one_task_per_thread`): a worker holds only the
  tasks it runs, none queued behind them. dask counts a worker's death against every
  task it holds, so with one task queued behind a call that kills its worker (dask's
  default 1.1 queues one on a one-thread worker), an innocent call was blamed twice
  and failed with the guilty one. The cost is one scheduler round trip between two
  tasks of a worker, against chunks of about 0.2 s.

A cluster the user started keeps the user's settings.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

__all__ = ["FROZEN_WORKER_TTL", "SCHEDULER_OPTIONS", "one_task_per_thread"]

#: how long a worker may go without a heartbeat before the scheduler gives it up
FROZEN_WORKER_TTL = "60s"

#: keywords of the scheduler of every cluster acme-core starts (see the module docstring)
SCHEDULER_OPTIONS: dict[str, Any] = {"worker_ttl": FROZEN_WORKER_TTL, "allowed_failures": 1}

_SATURATION = "distributed.scheduler.worker-saturation"
_DASK_DEFAULT_SATURATION = 1.1


@contextlib.contextmanager
def one_task_per_thread() -> Iterator[None]:
    """Around starting a cluster: its scheduler queues no task on a busy worker.

    Only when the saturation is dask's default (a user's own setting stays).
    """
    import dask

    if dask.config.get(_SATURATION, _DASK_DEFAULT_SATURATION) != _DASK_DEFAULT_SATURATION:
        yield
        return
    with dask.config.set({_SATURATION: 1.0}):
        yield
