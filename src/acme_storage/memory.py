"""The ``"memory"`` store (ACME's ``write_worker_results=False``): values come back to the caller."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from acme_core.errors import ArgumentValueError
from acme_core.store import BaseStore, RunInfo
from acme_storage.stacking import check_result_dtype, stack_in_memory

__all__ = ["MemoryStore", "MemoryWriter"]


class MemoryWriter:
    """Returns the value itself: it travels back to the caller with the outcome."""

    def __init__(self, collect: bool = True) -> None:
        self.collect = collect

    def write(self, task_id: int, value: Any) -> Any:
        """The value as its own reference (None when values are not collected)."""
        return value if self.collect else None


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
        return MemoryWriter(self.collect)

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
        raise ArgumentValueError("a 'memory' run keeps nothing on disk to read back",
                                 parameter="path")
