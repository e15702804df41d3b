"""The ``"memory"`` store: results come back to the caller as Python values."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from acme_core.store import BaseStore


class MemoryWriter:
    """Returns the value itself: it travels back to the caller with the outcome."""

    def __init__(self, collect: bool = True) -> None:
        self.collect = collect

    def write(self, task_id: int, value: Any) -> Any:
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

    def writer(self) -> MemoryWriter:
        return MemoryWriter(self.collect)

    def finalize(self, references: list[Any], failed: set[int]) -> Any:
        if not self.collect:
            return None
        run = self.run
        if run is not None and run.result_shape is not None:
            from acme_storage.stacking import stack_in_memory

            return stack_in_memory(references, failed, run)
        return references

    @classmethod
    def read(cls, run_dir: Path, manifest: dict[str, Any]) -> Any:
        raise ValueError("a 'memory' run keeps nothing on disk to read back")
