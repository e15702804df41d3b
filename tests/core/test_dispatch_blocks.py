"""The dispatcher's block rule (acme_core.store.WritesBlocks): no two tasks in flight hold
calls of the same block, on a real LocalCluster.

The store here records, on the workers, when each task's writer began and ended
(``begin_chunk`` .. ``end_chunk``, one file per task); the tests then check that
no two such intervals of one block overlap, for first runs, fixed and auto-sized
chunks, retries, a lost worker's calls run one by one, and a second ``compute()``.
"""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path

import pytest

from acme_core import ParallelMap, ParallelMapError
from acme_core._blocks import Blocks
from acme_core.errors import PluginError
from acme_core.store import RunInfo, WritesBlocks, WritesChunks, block_calls_of
from block_recorder import BlockRecorder, overlaps, square


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
    # calls 30 and 31 fail until `allow` exists: also when the worker killed by call 60
    # took their finished task down with it and they ran again one by one
    allow = logs.parent / "allow"
    with ParallelMap(square, list(range(n)), str(logs.parent / "marks"), fail_once="30,31",
                     die_once=60, fail_until=str(allow), store=BlockRecorder,
                     store_options={"log_dir": str(logs), "block": 10},
                     output_dir=str(logs.parent / "run"), chunk_size=4,
                     progress=False) as pmap:
        with pytest.raises(ParallelMapError, match=r"2/120 calls"):
            pmap.compute()
        allow.touch()
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
