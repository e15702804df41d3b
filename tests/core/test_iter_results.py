"""``ParallelMap.iter_results()``: results as they come, with compute()'s failure reporting."""

from __future__ import annotations

import os
import time
from pathlib import Path

import h5py
import pytest

from acme_core import ParallelMap, ParallelMapError, open_results
from acme_core.manifest import Manifest

pytestmark = pytest.mark.usefixtures("client")


def triple(x):
    return 3 * x


def waits_for_marker(x, marker):
    """Call 0 returns at once; the others wait until the test saw call 0's result."""
    if x == 0:
        return "first"
    deadline = time.monotonic() + 60
    while not os.path.exists(marker):
        if time.monotonic() > deadline:
            return "timed out"  # iter_results did not hand call 0 on before the end
        time.sleep(0.01)
    return x


def fails_on_three(x):
    if x == 3:
        raise ValueError("three is right out")
    return x


def test_memory_yields_every_call_once(in_tmp):
    with ParallelMap(triple, list(range(50)), write_worker_results=False, progress=False) as pmap:
        pairs = list(pmap.iter_results())
    assert sorted(pairs) == [(i, 3 * i) for i in range(50)]


def test_results_come_before_the_last_call_finishes(in_tmp):
    marker = str(in_tmp / "seen-first")
    seen = []
    with ParallelMap(waits_for_marker, list(range(6)), marker, write_worker_results=False,
                     chunk_size=1, progress=False) as pmap:
        for task_id, value in pmap.iter_results():
            seen.append((task_id, value))
            if task_id == 0:
                Path(marker).touch()  # only now may the other calls finish
    assert seen[0] == (0, "first")
    assert sorted(seen[1:]) == [(i, i) for i in range(1, 6)]


def test_hdf5_yields_complete_files_and_records_the_manifest(in_tmp):
    with ParallelMap(triple, list(range(12)), output_dir="run", progress=False) as pmap:
        for task_id, path in pmap.iter_results():
            with h5py.File(path, "r") as h5f:  # complete when it is handed on
                assert int(h5f["result_0"][0]) == 3 * task_id
            assert Path(path).name == f"triple_{task_id}.h5"
    manifest = Manifest.load(in_tmp / "run")
    assert manifest.finished == set(range(12)) and manifest["complete"] is True
    assert [int(v[0]) for v in open_results(in_tmp / "run")] == [3 * x for x in range(12)]


def test_failures_raise_after_the_last_result(in_tmp):
    got = []
    with ParallelMap(fails_on_three, list(range(8)), output_dir="run", progress=False) as pmap:
        with pytest.raises(ParallelMapError) as info:
            for task_id, _path in pmap.iter_results():
                got.append(task_id)
    assert sorted(got) == [0, 1, 2, 4, 5, 6, 7]  # every finished call came first
    assert set(info.value.failed) == {3} and "three is right out" in str(info.value)
    manifest = Manifest.load(in_tmp / "run")
    assert manifest.finished == {0, 1, 2, 4, 5, 6, 7}
    assert "three is right out" in manifest.failed[3] and manifest["complete"] is False


def test_breaking_early_keeps_finished_results_and_resume_finishes(in_tmp, client):
    with ParallelMap(triple, list(range(40)), output_dir="run", chunk_size=1,
                     progress=False) as pmap:
        for _ in pmap.iter_results():
            break
    manifest = Manifest.load(in_tmp / "run")
    assert manifest["complete"] is False and len(manifest.finished) >= 1
    # cancelling is best effort: let the calls already running on the workers end
    deadline = time.monotonic() + 30
    while any(client.processing().values()) and time.monotonic() < deadline:
        time.sleep(0.05)
    payload = in_tmp / "run" / "triple_payload"
    on_disk = {int(name[len("triple_"):-3]) for name in os.listdir(payload)
               if name.endswith(".h5")}
    assert manifest.finished <= on_disk
    with ParallelMap(triple, list(range(40)), output_dir="run", resume=True,
                     progress=False) as pmap:
        pairs = list(pmap.iter_results())
    ids = [i for i, _ in pairs]
    assert sorted(ids) == list(range(40))
    # the results the earlier run's manifest lists come first (the manifest is the only
    # source of truth: a call that finished on a worker after the break runs again)
    assert set(ids[:len(manifest.finished)]) == manifest.finished
    assert Manifest.load(in_tmp / "run")["complete"] is True


def test_iterating_again_runs_again(in_tmp):
    with ParallelMap(triple, [1, 2, 3], write_worker_results=False, progress=False) as pmap:
        assert dict(pmap.iter_results()) == {0: 3, 1: 6, 2: 9}
        assert dict(pmap.iter_results()) == {0: 3, 1: 6, 2: 9}
        assert pmap.compute() == [3, 6, 9]
