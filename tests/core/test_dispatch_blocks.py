"""The dispatcher's block rule (acme_core.store.WritesBlocks): no two tasks in flight hold
calls of the same block, on a real LocalCluster.

The store here records, on the workers, when each task's writer began and ended
(``begin_chunk`` .. ``end_chunk``, one file per task); the tests then check that
no two such intervals of one block overlap, for first runs, fixed and auto-sized
chunks, retries, a lost worker's calls run one by one, and a second ``compute()``.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any, ClassVar

import pytest

from acme_core import ParallelMap, ParallelMapError
from acme_core._blocks import Blocks
from acme_core.errors import PluginError
from acme_core.fileio import write_bytes_atomic
from acme_core.store import BaseStore, RunInfo, WritesBlocks, WritesChunks, block_calls_of


class RecordingWriter:
    """Buffers a task's values; at ``end_chunk`` records the task's interval and blocks."""

    def __init__(self, log_dir: str, block: int | None) -> None:
        self.log_dir = log_dir
        self.block = block
        self.ids: list[int] = []
        self.start = 0.0

    def begin_chunk(self, task_ids: list[int]) -> None:
        self.ids = list(task_ids)
        self.start = time.time()

    def write(self, task_id: int, value: Any) -> Any:
        return value

    def end_chunk(self) -> None:
        time.sleep(0.01)  # a writer busy for a while: overlaps would show
        record = {"ids": self.ids, "start": self.start, "end": time.time(), "pid": os.getpid()}
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


def square(x: int, marks: str, fail_once: str = "", die_once: int = -1) -> int:
    """x * x; fails once for the ids in ``fail_once`` ("5,6"), kills its worker once for
    ``die_once``. (A string: a tuple would be split among the calls like ``x``.)"""
    mark = Path(marks, str(x))
    if str(x) in fail_once.split(",") and not mark.exists():
        mark.touch()
        raise ValueError(f"call {x} fails once")
    if x == die_once and not mark.exists():
        mark.touch()
        os._exit(1)
    return x * x


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    path = tmp_path / "log"
    path.mkdir()
    (tmp_path / "marks").mkdir()
    return path


def test_the_recorder_is_a_blocks_store() -> None:
    store = BlockRecorder("x", 7)
    assert isinstance(store, WritesBlocks)
    assert isinstance(store.writer(), WritesChunks)
    run = RunInfo("f", 10, None)
    assert block_calls_of(store, run) == 7
    assert block_calls_of(BlockRecorder("x", None), run) is None
    assert block_calls_of(object(), run) is None
    with pytest.raises(PluginError, match="not a positive integer"):
        block_calls_of(BlockRecorder("x", 0), run)


@pytest.mark.parametrize("chunk_size", [3, "auto"])
def test_no_two_tasks_in_flight_hold_one_block(client, logs, chunk_size) -> None:
    n = 300
    with ParallelMap(square, list(range(n)), str(logs.parent / "marks"), fail_once="5,6,150",
                     store=BlockRecorder, store_options={"log_dir": str(logs), "block": 7},
                     output_dir=str(logs.parent / "run"), chunk_size=chunk_size, retries=1,
                     progress=False) as pmap:
        results = pmap.compute()
    assert list(results) == [x * x for x in range(n)]
    assert overlaps(logs, 7) == []
    ran = sorted(i for p in logs.glob("*.json") for i in json.loads(p.read_text())["ids"])
    assert set(ran) == set(range(n))


@pytest.mark.slow
def test_a_lost_workers_calls_and_a_second_compute_keep_the_rule(client, logs) -> None:
    n = 120
    with ParallelMap(square, list(range(n)), str(logs.parent / "marks"), fail_once="30,31",
                     die_once=60, store=BlockRecorder,
                     store_options={"log_dir": str(logs), "block": 10},
                     output_dir=str(logs.parent / "run"), chunk_size=4,
                     progress=False) as pmap:
        with pytest.raises(ParallelMapError, match=r"2/120 calls"):
            pmap.compute()
        results = pmap.compute()  # only calls 30 and 31 run again
    assert list(results) == [x * x for x in range(n)]
    assert overlaps(logs, 10) == []


def test_a_run_with_blocks_finishes_like_one_without(client, logs) -> None:
    n = 3000
    for block in (None, 100):
        with ParallelMap(square, list(range(n)), str(logs.parent / "marks"),
                         store=BlockRecorder, store_options={"log_dir": str(logs), "block": block},
                         output_dir=str(logs.parent / f"run-{block}"), progress=False) as pmap:
            assert list(pmap.compute()) == [x * x for x in range(n)]


def test_blocks_defer_calls_of_held_blocks_and_cut_auto_chunks() -> None:
    blocks = Blocks(4)
    todo = deque(range(12))
    first = blocks.take(todo, 6, cut=True)
    assert first == [0, 1, 2, 3]  # cut before block 1, whose next call is queued next
    blocks.hold(first)
    todo.appendleft(2)  # e.g. a retry of call 2 while its block is held
    second = blocks.take(todo, 3, cut=False)
    assert second == [4, 5, 6] and blocks.waiting == {0: [2]} and blocks.n_waiting == 1
    blocks.hold(second)
    assert blocks.take(todo, 1, cut=False) == [8]  # 7 waits for the task holding block 1
    assert blocks.release(first) == [2]
    assert blocks.release(second) == [7]
    assert blocks.n_waiting == 0 and blocks.held == {}
    assert blocks.take(deque([1, 2]), 5, cut=True) == [1, 2]  # nothing left to cut for
