"""Which buffer each call of the tasks running in a worker process writes to.

The shard writers (the ``"hdf5"`` and ``"zarr"`` stores'
:class:`~acme_core.store.WritesChunks` writers) buffer a task's calls and write
them when the task ends. Several tasks may run at once in one worker process
(threads), and with a timeout a task's calls run in other threads than the task:
so buffers are found by task id, and each task's own buffer by its thread.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

__all__ = ["TaskBuffers"]

B = TypeVar("B")


class TaskBuffers(Generic[B]):
    """The buffers of the tasks running in this process.

    A writer holding one is pickled to the workers: it unpickles as a new, empty
    one there (buffers stay in the process whose tasks filled them), so writers
    need no pickling code of their own for it.
    """

    def __init__(self) -> None:
        self._by_call: dict[int, B] = {}
        self._mine = threading.local()

    def __reduce__(self) -> tuple[type[TaskBuffers[B]], tuple[()]]:
        return (type(self), ())

    def begin(self, task_ids: list[int], buffer: B) -> None:
        """The task of ``task_ids``, running in this thread, buffers in ``buffer``."""
        self._mine.buffer, self._mine.ids = buffer, task_ids
        for i in task_ids:
            self._by_call[i] = buffer

    def end(self) -> B | None:
        """This thread's task ended: its buffer (None: no task began here), forgotten."""
        buffer: B | None = getattr(self._mine, "buffer", None)
        ids: list[int] = getattr(self._mine, "ids", [])
        self._mine.buffer, self._mine.ids = None, []
        for i in ids:
            if self._by_call.get(i) is buffer:
                del self._by_call[i]
        return buffer

    def of(self, task_id: int) -> B | None:
        """The buffer of call ``task_id``'s task (None: it runs outside a task)."""
        return self._by_call.get(task_id)
