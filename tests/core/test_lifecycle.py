"""A ParallelMap's life: a second compute() finishes what the first left undone.

Calls leave a marker file per execution, so the tests count what really ran.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import h5py
import numpy as np
import pytest

from acme_core import ParallelMap, ParallelMapError, open_results
from acme_core.errors import UsageError
from acme_core.parallel_map import RunState


def marked(x, marks, fail_flag):
    """x * 10; leaves a marker per execution; fails for x == 2 while ``fail_flag`` exists."""
    Path(marks, f"{x}-{uuid.uuid4().hex}").touch()
    if x == 2 and os.path.exists(fail_flag):
        raise ValueError("flag says fail")
    return np.array([x * 10.0])


def runs_of(marks: Path) -> dict[int, int]:
    counts: dict[int, int] = {}
    for name in os.listdir(marks):
        x = int(name.split("-")[0])
        counts[x] = counts.get(x, 0) + 1
    return counts


@pytest.fixture
def marks(in_tmp):
    path = in_tmp / "marks"
    path.mkdir()
    return path


@pytest.mark.parametrize("store", ["hdf5", "hdf5-single", "pickle", "memory", "zarr"])
def test_compute_again_after_failure_runs_only_the_failed_calls(client, marks, in_tmp, store):
    flag = in_tmp / "fail"
    flag.touch()
    out = None if store == "memory" else str(in_tmp / "run")
    with ParallelMap(marked, [0, 1, 2, 3], str(marks), str(flag), store=store, output_dir=out,
                     progress=False) as pmap:
        with pytest.raises(ParallelMapError, match=r"1/4 calls .* failed \(task ids: 2\)"):
            pmap.compute()
        assert pmap.state is RunState.INCOMPLETE
        assert runs_of(marks) == {0: 1, 1: 1, 2: 1, 3: 1}
        flag.unlink()
        results = pmap.compute()
        assert pmap.state is RunState.FINISHED
    assert runs_of(marks) == {0: 1, 1: 1, 2: 2, 3: 1}  # only the failed call ran again
    values = results if store == "memory" else open_results(out)
    assert [float(np.asarray(v).ravel()[0]) for v in values] == [0.0, 10.0, 20.0, 30.0]


def test_compute_after_the_with_block_reruns_nothing(client, marks, in_tmp):
    with ParallelMap(marked, [0, 1, 2], str(marks), "no-flag", output_dir="run",
                     progress=False) as pmap:
        first = pmap.compute()
    again = pmap.compute()  # the misbehaviour was: every call silently ran again
    assert again == first
    assert runs_of(marks) == {0: 1, 1: 1, 2: 1}
    with h5py.File(pmap.results_container, "r") as h5f:
        assert [float(h5f[f"comp_{i}"]["result_0"][0]) for i in range(3)] == [0.0, 10.0, 20.0]


def test_compute_while_iterating_is_refused(client, marks):
    with ParallelMap(marked, [0, 1, 2], str(marks), "no-flag", write_worker_results=False,
                     progress=False) as pmap:
        it = pmap.iter_results()
        next(it)
        with pytest.raises(UsageError, match="running already"):
            pmap.compute()
        it.close()
        assert pmap.state is RunState.INCOMPLETE
        assert sorted(pmap.compute()[i][0] for i in range(3)) == [0.0, 10.0, 20.0]
