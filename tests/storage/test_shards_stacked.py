"""The ``"hdf5"`` store's shards with ``result_shape``: the same stacked results as a
file per call.

Real runs on the session's 2-worker dask cluster (the ``client`` fixture), real HDF5
files read back with h5py and ``open_results``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from acme_core import ParallelMap, ParallelMapError, open_results
from acme_core.errors import ArgumentValueError, ManifestError
from acme_core.fileio import is_partial
from acme_core.manifest import Manifest
from acme_core.store import RunInfo, WritesChunks
from acme_storage.hdf5 import HDF5Store
from acme_storage.hdf5.links import SHARD_AUTO_CALLS
from acme_storage.hdf5.shards import SHARD_SUFFIX, STACKING_ATTR
from stacked_cases import (
    assert_same_stacked,
    bad_slot,
    cases,
    die_once_then_fail,
    plane,
    row,
    run_sharded,
    scalar,
)


def run(out: Path, func: Any, n: int, shard: Any, *args: Any, **options: Any) -> Any:
    return run_sharded(out, func, n, shard, *args, store="hdf5", **options)


def with_extras(i: int) -> Any:
    """An extra return value of one signature, and one that differs for call 5 (a group)."""
    extra = "five" if i == 5 else np.int32(i)
    return np.arange(3.0) * i, extra


CASES = cases(with_extras)  # function, result_shape, result_dtype


def slots(data: np.ndarray[Any, Any], dim: int, ids: list[int]) -> np.ndarray[Any, Any]:
    return np.take(data, ids, axis=dim)


@pytest.mark.parametrize("case", sorted(CASES))
def test_sharded_stacked_run_reads_as_per_call_files(client, tmp_path, case):
    func, shape, dtype = CASES[case]
    n = 30
    options = {"result_shape": shape, "result_dtype": dtype, "retries": 0}
    for layout, where in ((False, "calls"), ("rows", "shards")):
        if case == "failing":
            with pytest.raises(ParallelMapError):
                run(tmp_path / where, func, n, layout, **options)
        else:
            run(tmp_path / where, func, n, layout, **options)
    per_call, sharded = open_results(tmp_path / "calls"), open_results(tmp_path / "shards")
    assert_same_stacked(per_call, sharded)
    payload = tmp_path / "shards" / f"{func.__name__}_payload"
    assert {p.name.endswith(SHARD_SUFFIX) for p in payload.iterdir()} == {True}
    assert len(list(payload.iterdir())) < n
    finished = sorted(Manifest.load(tmp_path / "shards").finished)
    assert finished == sorted(Manifest.load(tmp_path / "calls").finished)
    if case == "failing":  # only the two bad calls failed, the others keep their slots
        assert finished == [i for i in range(n) if i not in (4, 9)]
    dim = shape.index(None)
    with h5py.File(tmp_path / "calls" / f"{func.__name__}.h5") as one, \
            h5py.File(tmp_path / "shards" / f"{func.__name__}.h5") as other:
        a, b = one["result_0"][()], other["result_0"][()]
        assert a.dtype == b.dtype == np.dtype(dtype) and a.shape == b.shape
        np.testing.assert_array_equal(slots(a, dim, finished), slots(b, dim, finished))
        missing = [i for i in range(n) if i not in finished]
        assert not slots(b, dim, missing).any()  # the fill value 0, as per call


def test_the_shard_block_is_stacked_along_the_stacking_axis(client, tmp_path):
    run(tmp_path / "run", plane, 12, True, result_shape=(2, None, 3))
    shards = sorted((tmp_path / "run" / "plane_payload").iterdir())
    with h5py.File(shards[0]) as h5f:
        ids = h5f["acme_ids"][()].tolist()
        block = h5f["acme_block"]["result_0"]
        assert h5f.attrs[STACKING_ATTR] == 1 and block.shape == (2, len(ids), 3)
        np.testing.assert_array_equal(block[:, 0, :], plane(ids[0]))
    with h5py.File(tmp_path / "run" / "plane.h5") as h5f:
        assert h5f["result_0"].is_virtual and h5f["result_0"].shape == (2, 12, 3)
        assert [k for k in h5f if k.startswith("comp_")] == []
        np.testing.assert_array_equal(h5f["result_0"][:, 7, :], plane(7))


def test_a_call_with_other_extras_is_a_group_linked_from_the_container(client, tmp_path):
    run(tmp_path / "run", with_extras, 12, "rows", result_shape=(None, 3))
    with h5py.File(tmp_path / "run" / "with_extras.h5") as h5f:
        assert [k for k in h5f if k.startswith("comp_")] == ["comp_5"]
        assert h5f["comp_5"]["result_1"][()] == b"five"
        np.testing.assert_array_equal(h5f["result_0"][5], np.arange(3.0) * 5)
        assert h5f["result_1"][7] == 7  # the extras of the rows: a virtual dataset too


def test_a_worker_killed_mid_shard_then_resume(client, tmp_path):
    out, marker, flag = tmp_path / "run", str(tmp_path / "died"), str(tmp_path / "flag")
    options = {"result_shape": (3, None), "retries": 0}
    with pytest.raises(ParallelMapError):
        run(out, die_once_then_fail, 40, True, marker, flag, **options)
    assert os.path.exists(marker)
    assert Manifest.load(out).finished == set(range(40)) - {25}
    partial = open_results(out)
    assert isinstance(partial[0], np.ma.MaskedArray)
    assert partial[0].mask[0].tolist() == [i == 25 for i in range(40)]
    Path(flag).touch()
    run(out, die_once_then_fail, 40, True, marker, flag, resume=True, **options)
    data, *extras = open_results(out)
    assert not isinstance(data, np.ma.MaskedArray)
    np.testing.assert_array_equal(data, np.arange(3.0)[:, None] + np.arange(40))
    assert extras == list(range(40))
    with h5py.File(out / "die_once_then_fail.h5") as h5f:
        np.testing.assert_array_equal(h5f["result_0"][()], data)
    assert not [p for p in out.rglob("*") if is_partial(p.name)]


def test_moved_run_directory_and_inspect_per_call(client, tmp_path):
    with pytest.raises(ParallelMapError):
        run(tmp_path / "run", bad_slot, 12, True, result_shape=(None, 3), result_dtype="int16",
            retries=0)
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    shutil.move(tmp_path / "run", moved / "run")
    out = moved / "run"
    done = subprocess.run([sys.executable, "-m", "acme_core.cli", "inspect", "--json", str(out)],
                          capture_output=True, text=True, timeout=120)
    state = json.loads(done.stdout)
    assert state["done"] == 10 and sorted(state["failed"]) == ["4", "9"]
    values = open_results(out)
    assert values.mask[:, 0].tolist() == [i in (4, 9) for i in range(12)]
    with h5py.File(out / "bad_slot.h5") as h5f:
        np.testing.assert_array_equal(h5f["result_0"][7], np.arange(3) + 7)
        np.testing.assert_array_equal(h5f["result_0"][4], [0, 0, 0])


def test_auto_shards_large_finite_stacked_runs_only(tmp_path):
    def prepared(name: str, n: int, shape: tuple[float, ...]) -> HDF5Store:
        store = HDF5Store()
        (tmp_path / name).mkdir()
        store.prepare(RunInfo(func_name="f", n_calls=n, output_dir=tmp_path / name,
                              result_shape=shape, result_dtype=np.dtype("float64"),
                              stacking_dim=0))
        return store

    n = SHARD_AUTO_CALLS
    assert prepared("large", n, (n, 3)).layout == "rows"
    assert not prepared("small", n - 1, (n - 1, 3)).sharded
    unlimited = prepared("inf", n, (n, np.inf))
    assert not unlimited.sharded and not isinstance(unlimited.writer(), WritesChunks)


@pytest.mark.parametrize(("value", "shape"), [(True, (None, np.inf)), ("rows", (np.inf, None)),
                                              ("groups", (None, 3))])
def test_refused_before_anything_is_written(tmp_path, value, shape):
    out = tmp_path / "r"
    with pytest.raises(ArgumentValueError, match=r"store_options\['shard_calls'\]") as info:
        ParallelMap(scalar, [1, 2], output_dir=str(out), store="hdf5",
                    store_options={"shard_calls": value}, result_shape=shape, logfile=False)
    assert info.value.parameter == "store_options"
    assert not out.exists()


def unusual(i: int) -> Any:
    """Call 3 returns what HDF5 cannot hold (an emergency pickle)."""
    return {"i": i} if i == 3 else np.arange(3.0) + i


def test_an_emergency_pickle_reads_per_call_as_per_call_files(client, tmp_path):
    run(tmp_path / "calls", unusual, 10, False, result_shape=(None, 3))
    run(tmp_path / "shards", unusual, 10, True, result_shape=(None, 3))
    per_call, sharded = open_results(tmp_path / "calls"), open_results(tmp_path / "shards")
    assert isinstance(sharded, list) and len(sharded) == len(per_call) == 10
    assert per_call[3] == sharded[3] == {"i": 3}
    for i in set(range(10)) - {3}:
        np.testing.assert_array_equal(per_call[i], sharded[i])
    with h5py.File(tmp_path / "shards" / "unusual.h5") as h5f:  # the pickled slot: the fill
        np.testing.assert_array_equal(h5f["result_0"][3], [0, 0, 0])
        np.testing.assert_array_equal(h5f["result_0"][4], np.arange(3.0) + 4)


def test_a_rerun_of_a_shards_first_call_keeps_its_other_slots(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    store = HDF5Store(shard_calls=True)
    store.prepare(RunInfo(func_name="f", n_calls=4, output_dir=out, result_shape=(2, 4, 3),
                          result_dtype=np.dtype("float64"), stacking_dim=1))
    writer = store.writer()
    writer.begin_chunk([0, 1, 2, 3])
    refs = [writer.write(i, plane(i)) for i in range(4)]
    writer.end_chunk()
    writer.begin_chunk([0])  # a retry of call 0 alone: the same shard name, taken over
    refs[0] = writer.write(0, plane(10))
    writer.end_chunk()
    store.finalize(refs, set())
    expected = np.stack([plane(10), plane(1), plane(2), plane(3)], axis=1)
    manifest = {"func_name": "f", "n_calls": 4, "store": "hdf5", "finished": [[0, 3]],
                "result_shape": [2, None, 3], "result_dtype": "float64", "stacking_dim": 1}
    np.testing.assert_array_equal(HDF5Store.read(out, manifest), expected)
    with h5py.File(out / "f.h5") as h5f:
        np.testing.assert_array_equal(h5f["result_0"][()], expected)


@pytest.mark.parametrize(("key", "value"), [("stacking_dim", 3), ("stacking_dim", "0"),
                                            ("result_dtype", "object"),
                                            ("result_shape", [None, -2])])
def test_a_planted_manifest_geometry_is_refused(client, tmp_path, key, value):
    out = tmp_path / "run"
    run(out, row, 6, True, result_shape=(None, 3))
    manifest = json.loads((out / "acme_manifest.json").read_text())
    manifest[key] = value
    (out / "acme_manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ManifestError):
        open_results(out)


def test_a_planted_stacking_attribute_is_ignored(client, tmp_path):
    out = tmp_path / "run"
    run(out, plane, 6, True, result_shape=(2, None, 3))
    for shard in (out / "plane_payload").iterdir():
        with h5py.File(shard, "r+") as h5f:
            h5f.attrs[STACKING_ATTR] = "1; not a number"
    values = open_results(out)  # read as an unstacked block: no error, nothing moved
    assert values.shape == (2, 6, 3)
