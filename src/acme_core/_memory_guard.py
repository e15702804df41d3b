"""An element's own memory limit: stop before the node's OOM killer (or swap) does.

A batch system may or may not enforce an element's memory request (SLURM without
cgroups, SGE's ``mem_free``, which is a scheduling hint only): a call that
allocates far beyond it would then push the node into swap or take other jobs
down. A backend that knows the limit sets :data:`ENV` for the element; the
element then watches its resident memory, as dask's nanny watches a worker's,
and above :data:`FRACTION` of the limit it says so in its job log and kills
itself with SIGKILL. The driver reads the cause from that log ("exceeded memory
limit") and, with ``retry_memory_factor``, runs the call again with more memory.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

__all__ = ["ENV", "FRACTION", "MemoryGuard", "resident_bytes"]

#: the element's memory limit in bytes, set by the backend in the job's environment
ENV = "ACME_ELEMENT_MEMORY"
#: the share of the limit at which the element stops itself (dask's nanny: 0.95)
FRACTION = 0.95
#: seconds between two looks at the resident memory
INTERVAL = 0.1


def resident_bytes() -> int | None:
    """This process's resident memory (Linux ``/proc``; None elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            pages = int(fh.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


class MemoryGuard:
    """Watches this process's memory in a daemon thread; see the module docstring."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="acme-memory-guard",
                                        daemon=True)

    @classmethod
    def from_environment(cls) -> MemoryGuard | None:
        """A started guard when :data:`ENV` holds a positive number of bytes, else None."""
        text = os.environ.get(ENV, "")
        if not text.isdigit() or int(text) <= 0 or resident_bytes() is None:
            return None
        guard = cls(int(text))
        guard._thread.start()
        return guard

    def stop(self) -> None:
        """Stop watching (the calls are done)."""
        self._stop.set()

    def _watch(self) -> None:
        while not self._stop.wait(INTERVAL):
            used = resident_bytes()
            if used is not None and used > FRACTION * self.limit:
                self._kill(used)

    def _kill(self, used: int) -> None:
        mib = 2**20
        # the marker "exceeded memory limit" is what the array backends look for in the log
        print(f"acme element: exceeded memory limit: {used / mib:.0f} MiB resident, above "
              f"{FRACTION:.0%} of the element's {self.limit / mib:.0f} MiB ({ENV}); "
              "stopping the element", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
