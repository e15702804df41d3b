"""Per-call time limits (``ParallelMap(timeout=...)``), enforced where the calls run.

A chunk of calls runs in a *call thread* while the task's own thread watches it
(:func:`run_guarded`). When a call overruns its limit:

1. an exception (:class:`CallOverrun`, a ``TimeoutError``) is raised in the call
   thread, which stops pure-Python code at its next bytecode; the call then fails
   with a :class:`~acme_core.errors.CallTimeoutError` naming the task id and the
   limit, and the chunk goes on with its next call;
2. code that does not get back to Python (a blocking system call, C code that
   never returns) cannot be interrupted that way: after a short grace period the
   call thread is given up on, the call fails the same way, and a fresh thread
   runs the rest of the chunk. The task reports how many threads are stuck, so
   the driver can have the worker process replaced
   (:class:`~acme_core.executor.ReplacesWorkers`) instead of leaving it busy.

``debug=True`` runs calls in the calling process: there :func:`call_with_limit`
uses ``SIGALRM`` on the main thread, which also interrupts a blocking system call
(``time.sleep``, ``signal.pause``, a read); C code that holds the interpreter
without a system call, and calls from another thread, can only be stopped between
bytecodes.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from acme_core.errors import CallTimeoutError

__all__ = ["CallOverrun", "Watch", "call_with_limit", "grace_seconds", "run_guarded"]

#: how often the watching thread looks at the call thread, seconds
POLL_SECONDS = 0.05


class CallOverrun(TimeoutError):
    """Raised inside a call thread whose call overran; ``index`` says which call."""

    index = -1


def grace_seconds(limit: float) -> float:
    """How long an interrupted call may take to give up before its thread is left behind."""
    return min(5.0, max(0.5, 0.1 * limit))


class Watch:
    """What the call thread tells the watching thread: which call runs since when."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.index = -1
        self.started = 0.0
        self.in_call = False
        #: set by the watcher: this thread is left behind and must record nothing more
        self.abandoned = False

    def begin(self, index: int, now: float) -> bool:
        """Call ``index`` starts; False when the thread was given up on."""
        if self.abandoned:
            return False
        self.index, self.started, self.in_call = index, now, True
        return True

    def end(self, index: int) -> bool:
        """Call ``index`` ended (returned or raised); False when given up on meanwhile."""
        self.in_call = False
        return not self.abandoned

    def explain(self, exc: Exception, task_id: int) -> Exception:
        """The error to record for a call that raised ``exc``."""
        if isinstance(exc, CallOverrun):
            return CallTimeoutError(task_id, self.limit)
        return exc


def _raise_in(thread: threading.Thread, exc_type: type[BaseException]) -> None:
    """Raise ``exc_type`` in ``thread`` at its next bytecode (CPython's async exception)."""
    ident = thread.ident
    if ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident),
                                                   ctypes.py_object(exc_type))


def _overrun(index: int) -> type[CallOverrun]:
    return type("CallOverrun", (CallOverrun,), {"index": index})


def run_guarded(run: Callable[[int, Watch], None], n_calls: int, limit: float,
                overran: Callable[[int], None]) -> int:
    """Run ``run(first, watch)`` in call threads, keeping every call within ``limit`` s.

    ``overran(j)`` records a timeout for call ``j`` whose thread had to be left
    behind. Returns the number of threads left behind still running.
    """
    first, left_behind = 0, []
    while first < n_calls:
        watch = Watch(limit)
        thread = threading.Thread(target=_quietly, args=(run, first, watch),
                                  name="acme-call", daemon=True)
        thread.start()
        stuck_at = _watch(thread, watch)
        if stuck_at is None:
            break
        overran(stuck_at)
        left_behind.append(thread)
        first = stuck_at + 1
    return sum(t.is_alive() for t in left_behind)


def _quietly(run: Callable[[int, Watch], None], first: int, watch: Watch) -> None:
    try:
        run(first, watch)
    except CallOverrun:  # landed between two calls: the call it meant had just ended
        if not watch.abandoned:
            run(watch.index + 1, watch)


def _watch(thread: threading.Thread, watch: Watch) -> int | None:
    """Wait for ``thread``; interrupt overrunning calls. The index of a call it is stuck in."""
    interrupted = -1
    while True:
        thread.join(POLL_SECONDS)
        if not thread.is_alive():
            return None
        index = watch.index
        if not watch.in_call or time.perf_counter() - watch.started <= watch.limit:
            continue
        if interrupted != index:
            interrupted = index
            _raise_in(thread, _overrun(index))
            continue
        if time.perf_counter() - watch.started > watch.limit + grace_seconds(watch.limit):
            watch.abandoned = True
            return index


def call_with_limit(func: Callable[..., Any], args: list[Any], kwargs: dict[str, Any],
                    limit: float | None, task_id: int) -> Any:
    """``func(*args, **kwargs)`` in this process, stopped after ``limit`` s (debug mode)."""
    if limit is None:
        return func(*args, **kwargs)
    if threading.current_thread() is not threading.main_thread():
        return _call_watched_here(func, args, kwargs, limit, task_id)
    with _alarm(limit, task_id):
        return func(*args, **kwargs)


@contextlib.contextmanager
def _alarm(limit: float, task_id: int) -> Iterator[None]:
    """``SIGALRM`` after ``limit`` s raises a CallTimeoutError; an alarm already set keeps
    its time and its handler (a test runner's timeout, say)."""
    previous = signal.getsignal(signal.SIGALRM)
    their_delay, their_interval = signal.setitimer(signal.ITIMER_REAL, 0)
    start = time.monotonic()
    ours_at = start + limit
    theirs_at = start + their_delay if their_delay > 0 else math.inf

    def alarm(signum: int, frame: Any) -> None:
        now = time.monotonic()
        if now >= ours_at - 1e-3:
            raise CallTimeoutError(task_id, limit)
        if callable(previous):  # theirs came first: let them have it
            previous(signum, frame)
        signal.setitimer(signal.ITIMER_REAL, max(ours_at - time.monotonic(), 1e-3))

    signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, min(limit, their_delay or math.inf))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if their_delay > 0:
            signal.setitimer(signal.ITIMER_REAL, max(theirs_at - time.monotonic(), 1e-3),
                             their_interval)


def _call_watched_here(func: Callable[..., Any], args: list[Any], kwargs: dict[str, Any],
                       limit: float, task_id: int) -> Any:
    """Off the main thread: a watcher raises in this thread (pure-Python code only)."""
    me = threading.current_thread()
    done = threading.Event()

    def watcher() -> None:
        if not done.wait(limit):
            _raise_in(me, _overrun(task_id))

    threading.Thread(target=watcher, daemon=True).start()
    try:
        return func(*args, **kwargs)
    except CallOverrun:
        raise CallTimeoutError(task_id, limit) from None
    finally:
        done.set()
