"""A store of blocks whose writers record when they held which calls (tests of the block rule).

:class:`BlockRecorder` declares blocks of ``block`` calls
(:class:`acme_core.store.WritesBlocks`); its writer records, per task, when it
began and ended (``begin_chunk`` .. ``end_chunk``) in a file of its own, and
:func:`overlaps` finds two such intervals of one block that overlap: the rule
says there are none. Used on a dask cluster (``tests/core/test_dispatch_blocks.py``)
and with detached elements (``tests/core/test_detached.py``).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any, ClassVar

from acme_core.fileio import write_bytes_atomic
from acme_core.store import BaseStore, RunInfo


class RecordingWriter:
    """Buffers a task's values; at ``end_chunk`` records the task's interval and blocks."""

    def __init__(self, log_dir: str, block: int | None) -> None:
        self.log_dir = log_dir
        self.block = block
        self.ids: list[int] = []
        self.values: dict[str, Any] = {}
        self.start = 0.0

    def begin_chunk(self, task_ids: list[int]) -> None:
        self.ids = list(task_ids)
        self.values = {}
        self.start = time.time()

    def write(self, task_id: int, value: Any) -> Any:
        self.values[str(task_id)] = value
        return value

    def end_chunk(self) -> None:
        time.sleep(0.01)  # a writer busy for a while: overlaps would show
        record = {"ids": self.ids, "values": self.values, "start": self.start,
                  "end": time.time(), "pid": os.getpid()}
        write_bytes_atomic(Path(self.log_dir) / f"{uuid.uuid4().hex}.json",
                           json.dumps(record).encode())


class BlockRecorder(BaseStore):
    """A store of blocks of ``block`` calls whose writers record their intervals."""

    name: ClassVar[str] = "block-recorder"

    def __init__(self, log_dir: str = "", block: int | None = 7) -> None:
        super().__init__()
        self.log_dir = log_dir
        self.block = block

    def block_calls(self, run: RunInfo) -> int | None:
        return self.block

    def writer(self) -> RecordingWriter:
        return RecordingWriter(self.log_dir, self.block)

    def existing(self) -> dict[int, Any]:
        """The values the writers recorded (what a detached run's driver collects)."""
        found: dict[int, Any] = {}
        for path in Path(self.log_dir).glob("*.json"):
            found.update((int(k), v) for k, v in json.loads(path.read_text())["values"].items())
        return found

    @classmethod
    def read(cls, run_dir: Path, manifest: dict[str, Any]) -> Any:  # pragma: no cover
        raise NotImplementedError


def overlaps(log_dir: Path, block: int) -> list[tuple[int, dict[str, Any], dict[str, Any]]]:
    """Every pair of recorded tasks that held one block at the same time."""
    per_block: dict[int, list[dict[str, Any]]] = {}
    for path in log_dir.glob("*.json"):
        record = json.loads(path.read_text())
        for b in {i // block for i in record["ids"]}:
            per_block.setdefault(b, []).append(record)
    found = []
    for b, records in per_block.items():
        records.sort(key=lambda r: r["start"])
        for first, second in zip(records, records[1:], strict=False):
            if second["start"] < first["end"]:
                found.append((b, first, second))
    return found


def square(x: int, marks: str, fail_once: str = "", die_once: int = -1,
           fail_until: str = "") -> int:
    """x * x; fails once for the ids in ``fail_once`` ("5,6") (with ``fail_until``, a
    path: every time until that file exists), kills its worker once for ``die_once``.
    (Strings: a tuple would be split among the calls like ``x``.)"""
    mark = Path(marks, str(x))
    if str(x) in fail_once.split(",") and fail_until and not Path(fail_until).exists():
        raise ValueError(f"call {x} fails until {fail_until} exists")
    if str(x) in fail_once.split(",") and not fail_until and not mark.exists():
        mark.touch()
        raise ValueError(f"call {x} fails once")
    if x == die_once and not mark.exists():
        mark.touch()
        os._exit(1)
    return x * x


