"""Chunked dispatch: chunk sizes, time budgets, the bounded window, lean driver memory.

Structural checks only (how many tasks, how many outstanding, how much memory):
timing figures belong to ``benchmarks/``, not to tests.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from acme_core import ParallelMap
from acme_core.arguments import distribute
from acme_core.dispatch import MAX_CHUNK_CALLS, UNMEASURED_CHUNK_CALLS, Dispatcher, TaskContext
from acme_core.manifest import from_ranges, to_ranges
from acme_core.task import Chunk, Shared, run_chunk_calls
from acme_storage.memory import MemoryWriter


def double(x):
    return 2 * x


def nap(x, seconds):
    time.sleep(seconds)
    return x


def picky(x, y=1):
    if x == 2:
        raise ValueError("no twos")
    return x * y


class RecordingExecutor(ThreadPoolExecutor):
    """Threads that record every chunk submitted and the most ever outstanding."""

    name = "recording-threads"

    def __init__(self, workers: int = 2) -> None:
        super().__init__(workers)
        self.sizes: list[int] = []
        self.outstanding = 0
        self.most_outstanding = 0
        self._lock = threading.Lock()

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        chunk = args[1]
        with self._lock:
            self.sizes.append(len(chunk))
            self.outstanding += 1
            self.most_outstanding = max(self.most_outstanding, self.outstanding)
        future = super().submit(fn, *args, **kwargs)
        future.add_done_callback(self._done)
        return future

    def _done(self, _: Any) -> None:
        with self._lock:
            self.outstanding -= 1


def dispatch(func: Any, n: int, executor: Any, **options: Any) -> dict[int, Any]:
    dist = distribute(func, (list(range(n)),), {}, "auto")
    context = TaskContext(func, MemoryWriter(), dist.n_args, dist.pass_task_id, dist.shared)
    results: dict[int, Any] = {}

    def on_results(ids: list[int], refs: list[Any]) -> None:
        results.update(zip(ids, refs, strict=True))

    Dispatcher(executor, context, dist, range(n), on_outcome=lambda o: None,
               on_results=on_results, **options).run()
    return results


def test_short_calls_share_few_tasks():
    with RecordingExecutor(2) as executor:
        results = dispatch(double, 20_000, executor)
    assert results == {i: 2 * i for i in range(20_000)}
    assert max(executor.sizes[:4]) <= UNMEASURED_CHUNK_CALLS  # nothing known yet
    assert max(executor.sizes) <= MAX_CHUNK_CALLS
    assert len(executor.sizes) < 100  # not one task per call


def test_the_window_bounds_outstanding_chunks():
    with RecordingExecutor(2) as executor:
        results = dispatch(double, 5_000, executor, chunk_size=7, max_pending=5)
    assert len(results) == 5_000
    assert set(executor.sizes) <= {7, 5_000 % 7}
    assert executor.most_outstanding <= 5


def test_a_spent_budget_hands_the_rest_back():
    dist = distribute(nap, (list(range(4)), 0.05), {}, "auto")
    result = run_chunk_calls(nap, MemoryWriter(), dist.n_args, False, dist.shared,
                             dist.chunk([0, 1, 2, 3], budget=0.01))
    assert result.ok_ids == [0] and result.references == [0]  # the first call always runs
    assert result.not_run == [1, 2, 3] and not result.failed


def test_long_calls_are_not_held_hostage_by_an_auto_chunk():
    """Before any measurement a chunk holds many calls; slow ones come back one by one."""
    with RecordingExecutor(2) as executor:
        dist = distribute(nap, (list(range(6)), 0.6), {}, "auto")
        context = TaskContext(nap, MemoryWriter(), dist.n_args, False, dist.shared)
        done: list[int] = []
        Dispatcher(executor, context, dist, range(6), on_outcome=lambda o: None,
                   on_results=lambda ids, refs: done.extend(ids)).run()
    assert sorted(done) == list(range(6))
    assert executor.sizes[0] > 1  # sent together ...
    assert executor.sizes[-1] == 1  # ... but measured 0.6 s a call: one per chunk afterwards


def test_chunks_keep_per_call_failures_and_arguments():
    dist = distribute(picky, (list(range(5)),), {"y": [10, 20, 30, 40, 50]}, "auto")
    chunk = dist.chunk([4, 0, 2])  # not consecutive: values picked one by one
    assert chunk.args == {0: [4, 0, 2]} and chunk.kwargs == {"y": [50, 10, 30]}
    assert dist.chunk([1, 2, 3]).args == {0: [1, 2, 3]}  # consecutive: one slice
    result = run_chunk_calls(picky, MemoryWriter(), dist.n_args, False, dist.shared, chunk)
    assert result.ok_ids == [4, 0] and result.references == [200, 0]
    assert [o.task_id for o in result.failed] == [2]
    assert "no twos" in result.failed[0].traceback
    outcomes = run_chunk_calls(picky, MemoryWriter(), dist.n_args, False, dist.shared,
                               dist.chunk([0, 1, 2])).outcomes()
    assert [(o.task_id, o.ok, o.reference) for o in outcomes] == [(0, True, 0), (1, True, 20),
                                                                  (2, False, None)]
    assert dist.chunk([3, 4]).kwargs == {"y": [40, 50]}
    assert run_chunk_calls(picky, MemoryWriter(), 1, False, Shared(), Chunk([])).ok_ids == []


@pytest.mark.parametrize("ids", [[], [5], [0, 1, 2, 5, 6, 9], list(range(3000)) + [4000, 4002]])
def test_manifest_ranges_round_trip(ids):
    assert from_ranges(to_ranges(set(ids))) == sorted(ids)
    assert to_ranges(ids) == to_ranges(set(ids))


def test_chunked_run_on_a_real_cluster_keeps_every_result(in_tmp, client):
    with ParallelMap(double, list(range(30_000)), write_worker_results=False,
                     progress=False) as pmap:
        assert pmap.compute() == [2 * i for i in range(30_000)]


MILLION = textwrap.dedent("""
    import os, sys
    from acme_core import ParallelMap

    def double(x):
        return 2 * x

    def peak_mb():
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e6

    if __name__ == "__main__":
        n = int(sys.argv[1])
        with ParallelMap(double, range(n), write_worker_results=False, n_workers=2,
                         progress=False, verbose=False) as pmap:
            results = pmap.compute()
        assert len(results) == n and results[-1] == 2 * (n - 1)
        print("PEAK_MB", peak_mb())
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_a_million_calls_in_memory_keep_the_driver_under_1_gb(tmp_path):
    script = tmp_path / "million.py"
    script.write_text(MILLION)
    proc = subprocess.run([sys.executable, str(script), "1000000"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    peak = float(proc.stdout.split("PEAK_MB")[1])
    assert peak < 1000, peak
