"""``timeout=``: a call that overruns is stopped and fails alone; the others keep their results.

On a real dask cluster of its own (hanging calls leave threads behind in its workers),
and in ``debug=True``. Each hang is real: a Python loop, ``time.sleep``, ``signal.pause``.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from acme_core import ParallelMap, ParallelMapError, cluster_cleanup, local_cluster_setup
from acme_core.errors import CallTimeoutError


@pytest.fixture(scope="module")
def cluster():
    client = local_cluster_setup(n_workers=2, interactive=False)
    yield client
    cluster_cleanup(client)


def hangs_at(x, bad, how):
    if x == bad:
        if how == "python":
            while True:  # interrupted between bytecodes
                pass
        elif how == "sleep":
            time.sleep(3600)  # one system call: cannot be interrupted from another thread
        else:
            signal.pause()  # waits for a signal that never comes to this thread
    return np.array([float(x)])


@pytest.mark.parametrize("how", ["python", "sleep", "pause"])
def test_one_hanging_call_among_50_fails_alone_and_soon(cluster, in_tmp, how):
    start = time.monotonic()
    with ParallelMap(hangs_at, list(range(50)), 17, how, output_dir="run", timeout=2,
                     progress=False) as pmap:
        with pytest.raises(ParallelMapError, match=r"1/50 calls .* \(task ids: 17\)") as err:
            pmap.compute()
    elapsed = time.monotonic() - start
    assert elapsed < 2 + 15, elapsed  # the limit, a grace period, and the run's own cost
    error = err.value.failed[17]
    assert isinstance(error, CallTimeoutError) and isinstance(error, TimeoutError)
    assert "call 17 ran longer than its time limit of 2 s" in str(error)
    assert sum(r is not None for r in err.value.results) == 49


def test_the_limit_is_per_call_not_per_chunk(cluster, in_tmp):
    """100 calls of 0.1 s in chunks of 25: each chunk runs 2.5 s, every call keeps 1 s."""
    with ParallelMap(naps, list(range(100)), output_dir="run", timeout=1, chunk_size=25,
                     progress=False) as pmap:
        paths = pmap.compute()
    assert len(paths) == 100


def naps(x):
    time.sleep(0.1)
    return np.array([float(x)])


def counts_and_hangs(x, marks):
    Path(marks, f"{x}-{time.monotonic_ns()}").touch()
    if x == 3:
        while True:
            pass
    return np.array([float(x)])


def test_retries_apply_to_calls_that_time_out(cluster, in_tmp):
    marks = in_tmp / "marks"
    marks.mkdir()
    with ParallelMap(counts_and_hangs, list(range(6)), str(marks), output_dir="run",
                     timeout=1, retries=2, progress=False) as pmap:
        with pytest.raises(ParallelMapError, match=r"task ids: 3\)"):
            pmap.compute()
    runs = [name.split("-")[0] for name in os.listdir(marks)]
    assert runs.count("3") == 3 and all(runs.count(str(i)) == 1 for i in (0, 1, 2, 4, 5))


@pytest.mark.parametrize("how", ["python", "sleep", "pause"])
def test_debug_mode_stops_overrunning_calls_too(in_tmp, how):
    handler = signal.getsignal(signal.SIGALRM)  # pytest-timeout's, for one
    start = time.monotonic()
    with ParallelMap(hangs_at, list(range(4)), 2, how, write_worker_results=False, timeout=1,
                     progress=False) as pmap:
        with pytest.raises(CallTimeoutError, match="call 2 ran longer than its time limit"):
            pmap.compute(debug=True)  # debug raises the call's own error, for pdb
    assert time.monotonic() - start < 10
    assert signal.getsignal(signal.SIGALRM) is handler  # given back as it was


def test_timeout_is_checked_before_anything_starts(in_tmp):
    for bad in (0, -1, "soon"):
        with pytest.raises((ValueError, TypeError), match="`timeout`") as err:
            ParallelMap(naps, [1, 2], timeout=bad)
        assert err.value.parameter == "timeout"
    assert list(in_tmp.iterdir()) == []
