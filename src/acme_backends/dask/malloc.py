"""glibc malloc settings for the worker processes of the local clusters acme-core starts.

dask's nanny starts every worker with ``MALLOC_TRIM_THRESHOLD_=65536``
(``distributed.nanny.pre-spawn-environ``) so that freed memory goes back to the
operating system at once. Setting that variable also switches off glibc's
adaptive mmap threshold, so every array from 128 KiB up is a fresh ``mmap``:
each new page faults, and each free unmaps it again. On this project's
benchmark machine a new 1 MB array cost about 0.35-0.5 ms in a dask worker and
0.04 ms in a plain Python process, and the end-to-end write of 1 MB results ran
30-40% faster with the settings below (``benchmarks/bench_stores.py``, A).

A function called thousands of times that makes one result array per call is
exactly acme-core's workload, so the workers acme-core starts keep freed memory
for reuse the way a plain Python process does after glibc has adapted: arrays
below :data:`MMAP_THRESHOLD` come from the heap, and free memory at the top of
the heap is returned once it exceeds :data:`TRIM_THRESHOLD`. A worker then
holds on to at most about that much memory it no longer uses.

Only clusters started by :func:`~acme_backends.dask.local.local_cluster_setup` (and so the
``"dask-local"`` backend) use it; a client you start yourself keeps dask's
setting. Pass ``worker_class=distributed.Nanny`` to ``local_cluster_setup`` to
keep dask's setting there too.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from distributed import Nanny

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "WORKER_MALLOC_ENV", "ReusingNanny"]

#: Allocations of this size and larger get their own ``mmap`` (glibc's largest
#: adaptive value on 64-bit systems; glibc accepts no larger one).
MMAP_THRESHOLD = 32 * 2**20

#: Free memory at the top of the heap beyond this is given back to the system.
TRIM_THRESHOLD = 64 * 2**20

#: The environment each worker process starts with (glibc reads it at startup).
WORKER_MALLOC_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD),
    "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD),
}


#: the scheduler event topic on which the nannies report a worker's exit
WORKER_EXIT_TOPIC = "acme-worker-exit"


class ReusingNanny(Nanny):
    """A dask ``Nanny`` whose worker processes start with :data:`WORKER_MALLOC_ENV`.

    glibc reads these variables only when a process starts, so they cannot be
    set from inside the worker: the nanny puts them into this process's
    environment right before it spawns (or respawns) its worker, which inherits
    them. Once no such spawn is under way any more, the environment is put back
    as it was, so that a plain dask cluster started later in this process (or
    any other child process) does not inherit them.
    """

    #: spawns under way in this process, and the environment from before the first
    _spawning: ClassVar[int] = 0
    _saved: ClassVar[dict[str, str | None]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # dask builds pre_spawn_env from its config, but an environment variable
        # (which a nanny started earlier in this process leaves behind) wins over
        # the config: set ours on the instance instead
        self.pre_spawn_env.update(WORKER_MALLOC_ENV)
        # ... and the worker applies self.env once it runs: the same values, so that
        # its os.environ (and what it starts) tells the truth
        self.env.update(WORKER_MALLOC_ENV)

    async def _on_worker_exit(self, exitcode: int) -> None:
        # Say to the scheduler how the worker ended (distributed's nanny only logs it
        # here): acme-core names the cause in the error of the call that killed it. Only
        # for a worker that died unasked: a nanny closing down has no scheduler to tell.
        if self.status.name == "running":
            report: Any = self.log_event  # distributed's method is untyped
            report(WORKER_EXIT_TOPIC, {"worker": self.worker_address, "pid": self.pid,
                                       "exitcode": exitcode})
        await super()._on_worker_exit(exitcode)

    async def instantiate(self) -> Any:
        # Nannies of one cluster spawn concurrently (on one event loop): restore
        # only after the last of them, or a worker could start without the values.
        cls = ReusingNanny
        if cls._spawning == 0:
            cls._saved = {key: os.environ.get(key) for key in WORKER_MALLOC_ENV}
        cls._spawning += 1
        try:
            return await super().instantiate()
        finally:
            cls._spawning -= 1
            if cls._spawning == 0:
                for key, value in cls._saved.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value
