"""Bring back the workers a dask cluster that acme-core started gave up on.

When a worker stays away longer than ``distributed.deploy.lost-worker-timeout``
(15 s: killed again while it restarts on a busy machine, a batch job cancelled or
out of walltime), distributed's ``SpecCluster`` (``LocalCluster`` and every
dask-jobqueue cluster) forgets it but keeps its spec: nothing starts it again,
and a run whose workers all went that way waits for nothing. ``scale()`` to the
spec's size starts the missing ones (new processes, or new batch jobs).

Only for clusters the executor started: a cluster the user started is theirs to size.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

__all__ = ["WorkerReviver"]

log = logging.getLogger("acme")

#: seconds between two scale() calls: scale() acts on the cluster's event loop,
#: so the workers it starts are not yet counted right after it returns
MIN_INTERVAL = 2.0


class WorkerReviver:
    """Restart the workers ``cluster`` dropped for good (see the module docstring).

    Parameters
    ----------
    what : str
        The workers in words for the log ("worker(s)", "worker job(s)").
    """

    def __init__(self, what: str = "worker(s)") -> None:
        self.what = what
        self._last = -math.inf

    def __call__(self, cluster: Any) -> int:
        """Scale ``cluster`` back to its spec; how many workers were asked for."""
        spec = getattr(cluster, "worker_spec", None)
        running = getattr(cluster, "workers", None)
        if cluster is None or not isinstance(spec, dict) or not isinstance(running, dict):
            return 0
        missing = len(spec) - len(running)
        status = getattr(getattr(cluster, "status", None), "name", None)
        if missing <= 0 or status != "running" or time.monotonic() - self._last < MIN_INTERVAL:
            return 0
        self._last = time.monotonic()
        log.warning("Restarting %d %s the cluster had given up on", missing, self.what)
        cluster.scale(len(spec))
        return missing
