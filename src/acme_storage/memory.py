"""The ``"memory"`` store (ACME's ``write_worker_results=False``): values come back to the caller."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from acme_core.errors import NoRunError
from acme_core.store import BaseStore, RunInfo
from acme_storage._values import elements
from acme_storage.stacking import check_result_dtype, check_slot_value, stack_in_memory

__all__ = ["MemoryStore", "MemoryWriter"]


class MemoryWriter:
    """Returns the value itself: it travels back to the caller with the outcome.

    With ``result_shape`` the first value is checked against its slot (and cast to
    ``result_dtype``) here, on the worker, as every stacking store does: a value
    that does not fit fails its call alone instead of the driver's stacking.
    """

    def __init__(self, collect: bool = True,
                 slot: tuple[tuple[float, ...], int, str] | None = None) -> None:
        self.collect = collect
        self.slot = slot

    def write(self, task_id: int, value: Any) -> Any:
        """The value as its own reference (None when values are not collected).

        Raises
        ------
        acme_core.errors.ResultMismatchError
            With ``result_shape``: the value does not fit its slot.
        """
        if not self.collect:
            return None
        if self.slot is None:
            return value
        shape, dim, dtype = self.slot
        items = elements(value)
        checked = check_slot_value(items[0], shape, dim, np.dtype(dtype))
        if isinstance(value, (list, tuple)):
            return (tuple if isinstance(value, tuple) else list)([checked, *items[1:]])
        return checked


class MemoryStore(BaseStore):
    """Gather every return value in the calling process (``write_worker_results=False``).

    Parameters
    ----------
    collect : bool
        ``False`` drops the return values (ACME's behaviour when ``func``
        declares ``taskID`` and handles its own output): ``compute()`` returns None.
    """

    name: ClassVar[str] = "memory"
    writes_files: ClassVar[bool] = False

    def __init__(self, collect: bool = True) -> None:
        super().__init__()
        self.collect = collect

    @classmethod
    def check_run(cls, run: RunInfo) -> None:
        """Refuse a ``result_dtype`` that is not numeric (``parameter="result_dtype"``)."""
        check_result_dtype(run, cls.name)

    def writer(self) -> MemoryWriter:
        """The writer the tasks use."""
        run = self.run
        if run is None or run.result_shape is None:
            return MemoryWriter(self.collect)
        assert run.stacking_dim is not None and run.result_dtype is not None
        return MemoryWriter(self.collect,
                            (run.result_shape, run.stacking_dim, str(run.result_dtype)))

    def finalize(self, references: list[Any], failed: set[int]) -> Any:
        """The values in task order, or with ``result_shape`` ACME's stacked array."""
        if not self.collect:
            return None
        run = self.run
        if run is not None and run.result_shape is not None:
            return stack_in_memory(references, failed, run)
        return references

    @classmethod
    def read(cls, run_dir: Path, manifest: dict[str, Any]) -> Any:
        """Always raises: a memory run writes nothing to read back."""
        raise NoRunError("a 'memory' run keeps nothing on disk to read back")
