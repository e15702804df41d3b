"""The dispatcher's block rule: no two tasks in flight hold calls of the same block.

A store whose writers share a file between the calls of a block
(:class:`acme_core.store.WritesBlocks`, e.g. a zarr shard of ``B`` calls) says
how many calls a block has; blocks are ``range(k * B, (k + 1) * B)``. The
dispatcher takes every chunk's calls through :meth:`Blocks.take`, which holds
back a call whose block a task in flight holds until that task came back
(:meth:`Blocks.release` hands it back to the queue). That is the whole
concurrency control of such stores: a writer may read, modify and replace its
blocks' files without a lock, on any file system, and a killed worker holds
nothing (its task comes back as lost, which releases its blocks).
"""

from __future__ import annotations

from collections import deque

__all__ = ["Blocks"]


class Blocks:
    """Which blocks the tasks in flight hold, and the calls waiting for them.

    Parameters
    ----------
    size : int or None
        Calls per block; None: the run has no blocks (every method is then a no-op
        around taking calls in queue order).
    """

    def __init__(self, size: int | None) -> None:
        self.size = size
        #: block -> how many tasks in flight hold it (never more than 1; a count so
        #: that a bug shows as a number above 1 rather than as a silent overwrite)
        self.held: dict[int, int] = {}
        #: block -> queued calls held back until that block's task came back
        self.waiting: dict[int, list[int]] = {}
        #: calls in ``waiting`` (part of the work not done yet, for chunk sizing)
        self.n_waiting = 0

    def free(self, task_id: int) -> bool:
        """Whether no task in flight holds call ``task_id``'s block."""
        return self.size is None or task_id // self.size not in self.held

    def defer(self, task_id: int) -> None:
        """Hold call ``task_id`` back until its block is released."""
        assert self.size is not None
        self.waiting.setdefault(task_id // self.size, []).append(task_id)
        self.n_waiting += 1

    def take(self, todo: deque[int], n: int, cut: bool) -> list[int]:
        """Up to ``n`` calls from the front of ``todo`` whose blocks are free.

        Calls of held blocks met on the way wait (:meth:`defer`). With ``cut``
        (auto-sized chunks), a chunk that would end inside a block whose next
        call is next in the queue ends before that block instead, when anything
        is left: the block then goes whole to one later task instead of making
        its other calls wait for this one.
        """
        if self.size is None:
            return [todo.popleft() for _ in range(min(n, len(todo)))]
        ids: list[int] = []
        while todo and len(ids) < n:
            task_id = todo.popleft()
            if self.free(task_id):
                ids.append(task_id)
            else:
                self.defer(task_id)
        if cut and ids and todo and todo[0] // self.size == ids[-1] // self.size:
            last = ids[-1] // self.size
            keep = [i for i in ids if i // self.size != last]
            if keep:
                todo.extendleft(reversed([i for i in ids if i // self.size == last]))
                ids = keep
        return ids

    def hold(self, ids: list[int]) -> None:
        """A task with the calls ``ids`` left for a worker: it holds their blocks."""
        if self.size is not None:
            for block in {i // self.size for i in ids}:
                self.held[block] = self.held.get(block, 0) + 1

    def release(self, ids: list[int]) -> list[int]:
        """The task with the calls ``ids`` came back: the calls that waited for its blocks."""
        if self.size is None:
            return []
        back: list[int] = []
        for block in sorted({i // self.size for i in ids}):
            count = self.held.pop(block, 0) - 1
            if count > 0:  # pragma: no cover - defensive: take() never lets this happen
                self.held[block] = count
                continue
            back.extend(self.waiting.pop(block, []))
        self.n_waiting -= len(back)
        return sorted(back)

    def drain(self) -> list[int]:
        """Every waiting call, forgotten (the run gives them up or is cancelled)."""
        calls = sorted(i for ids in self.waiting.values() for i in ids)
        self.held.clear()
        self.waiting.clear()
        self.n_waiting = 0
        return calls
