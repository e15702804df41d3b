"""Whether a run has workers: say so when none is left, bring them back, give up in the end.

Without workers (every batch job cancelled or past its walltime, every local
worker dead and not restarted) the outstanding tasks would wait forever. The
dispatcher asks :class:`WorkerWatch` once a tick; the watch says how long there
have been none and how long it waits, asks an executor that can
(:class:`~acme_core.executor.RestoresWorkers`) to start workers again, and says
when the run should give up the calls still outstanding.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from acme_core._format import format_duration
from acme_core.executor import RestoresWorkers

__all__ = ["RESTORE_AFTER", "WorkerWatch"]

log = logging.getLogger("acme")

#: seconds without any worker before the executor is asked to bring workers back (a
#: worker restarted by its nanny is back well within this)
RESTORE_AFTER = 5.0
#: seconds between two "still no workers" messages
REMIND_EVERY = 30.0


class WorkerWatch:
    """Tracks the periods without workers of one run (see the module docstring)."""

    def __init__(self, executor: Any, patience: float) -> None:
        self.executor = executor
        #: seconds without any worker after which the outstanding calls are given up
        self.patience = patience
        self.since: float | None = None
        self._restored_at: float | None = None
        self._reminded_at = 0.0

    def tick(self, count: int | None, now: float | None = None) -> bool:
        """``count`` workers are up now; True when the run should give up waiting."""
        now = time.monotonic() if now is None else now
        if count is None or count > 0:
            if self.since is not None:
                log.info("Workers are back (%d) after %s without any", count or 0,
                         format_duration(now - self.since))
            self.since = self._restored_at = None
            return False
        if self.since is None:
            self.since = self._reminded_at = now
            log.warning("No workers are running: the calls wait for workers to come back, up "
                        "to %s (setup_timeout) before the outstanding calls fail",
                        format_duration(self.patience))
        self._restore(now)
        if now - self._reminded_at >= REMIND_EVERY:
            self._reminded_at = now
            log.warning("Still no workers after %s (waiting up to %s)",
                        format_duration(now - self.since), format_duration(self.patience))
        return now - self.since > self.patience

    def _restore(self, now: float) -> None:
        """Ask the executor for workers once a while (not at every tick)."""
        assert self.since is not None
        if not isinstance(self.executor, RestoresWorkers) or now - self.since < RESTORE_AFTER:
            return
        if self._restored_at is not None and now - self._restored_at < 4 * RESTORE_AFTER:
            return
        self._restored_at = now
        try:
            asked = self.executor.restore_workers()
        except Exception as exc:  # a cluster that cannot start workers now: say so, wait on
            log.warning("Could not bring workers back: %s: %s", type(exc).__name__, exc)
            return
        if asked:
            log.warning("No worker came back by itself: started %d new worker(s)", asked)
