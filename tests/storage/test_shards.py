"""The ``"hdf5"`` store's per-task shards (``shard_calls="rows"`` and ``"groups"``): the same
results as a file per call.

Real runs on the session's 2-worker dask cluster (the ``client`` fixture), real HDF5
files read back with h5py and ``open_results``.
"""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from acme_core import ParallelMap, ParallelMapError, open_results
from acme_core.errors import ArgumentValueError
from acme_core.fileio import is_partial
from acme_core.manifest import Manifest
from acme_core.store import RunInfo, WritesChunks
from acme_core.testing import StoreTests
from acme_storage.hdf5 import HDF5Store
from acme_storage.hdf5.links import SHARD_AUTO_CALLS, HDF5ShardWriter
from acme_storage.hdf5.shards import SHARD_SUFFIX


class TestHDF5StoreSharded(StoreTests):
    store_cls = HDF5Store
    store_options = {"shard_calls": True}


class TestHDF5StoreShardedGroups(StoreTests):
    store_cls = HDF5Store
    store_options = {"shard_calls": "groups"}


class TestHDF5StoreShardedCompressed(StoreTests):
    store_cls = HDF5Store
    store_options = {"shard_calls": True, "compression": "gzip", "locking": False}


def mixed(i: int) -> Any:
    """Every kind of value a per-call file holds: numbers, arrays, extras, text, bytes."""
    kind = i % 6
    if kind == 0:
        return float(i)
    if kind == 1:
        return np.arange(4, dtype=np.int32) + i
    if kind == 2:
        return np.full((2, 3), i, dtype=np.float32), f"text {i}", i
    if kind == 3:
        return ["a", f"b{i}"]
    if kind == 4:
        return b"raw\x00bytes" + bytes([i % 256])
    return np.bool_(i % 2), np.arange(3.0)


def unusual(i: int) -> Any:
    """Half of the calls return what HDF5 cannot hold (emergency pickles)."""
    return {"i": i} if i % 2 else np.arange(3) * i


def run(out: Path, func: Any, n: int, shard: bool | str, **options: Any) -> Any:
    with ParallelMap(func, list(range(n)), output_dir=str(out), store="hdf5",
                     store_options={"shard_calls": shard}, logfile=False, progress=False,
                     verbose=False, **options) as pmap:
        return pmap.compute()


def assert_same(a: Any, b: Any) -> None:
    assert type(a) is type(b), (a, b)
    if isinstance(a, tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b


def files_of(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


LAYOUTS = ["rows", "groups"]


def comp_keys(h5f: Any) -> list[str]:
    return sorted((k for k in h5f if k.startswith("comp_")), key=lambda k: int(k[5:]))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_sharded_run_reads_as_per_call_files(client, tmp_path, layout):
    n = 60
    run(tmp_path / "calls", mixed, n, False)
    run(tmp_path / "shards", mixed, n, layout)
    per_call, sharded = open_results(tmp_path / "calls"), open_results(tmp_path / "shards")
    assert isinstance(sharded, list)  # mixed signatures: per call, also with rows
    for a, b in zip(per_call, sharded, strict=True):
        assert_same(a, b)
    shard_files = [f for f in files_of(tmp_path / "shards") if f.endswith(SHARD_SUFFIX)]
    assert 0 < len(shard_files) < n
    with h5py.File(tmp_path / "calls" / "mixed.h5") as one, \
            h5py.File(tmp_path / "shards" / "mixed.h5") as other:
        if layout == "groups":
            assert sorted(one) == sorted(other)
        linked = comp_keys(other)
        assert linked and set(linked) <= set(one)
        for key in linked:  # rows: the calls that did not fit a row have a group
            assert sorted(one[key]) == sorted(other[key])
            for name in one[key]:
                assert_same(one[key][name][()], other[key][name][()])


def pair(i: int) -> Any:
    """Every call the same signature: a block row per call, and an extra return value."""
    return np.arange(3.0) * i, np.int32(i)


@pytest.mark.parametrize("shard_bytes", [None, 200])
def test_rows_read_stacked_and_the_container_maps_every_call(client, tmp_path, monkeypatch,
                                                             shard_bytes):
    if shard_bytes:  # several shards per task: more mappings in the virtual datasets
        monkeypatch.setattr("acme_storage.hdf5.shards.SHARD_BYTES", shard_bytes)
    n = 50
    run(tmp_path / "calls", pair, n, False)
    run(tmp_path / "rows", pair, n, "rows")
    per_call = open_results(tmp_path / "calls")
    first, second = open_results(tmp_path / "rows")
    assert first.shape == (n, 3) and second.shape == (n,)
    assert not isinstance(first, np.ma.MaskedArray)
    for i, (a, b) in enumerate(per_call):
        assert_same(first[i], a)
        assert_same(second[i], b)
    with h5py.File(tmp_path / "rows" / "pair.h5") as h5f:
        assert comp_keys(h5f) == []  # every call is a row: nothing per call
        np.testing.assert_array_equal(h5f["result_0"][7], np.arange(3.0) * 7)
        np.testing.assert_array_equal(h5f["result_0"][()], first)
        np.testing.assert_array_equal(h5f["result_1"][()], np.arange(n))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_emergency_pickles_and_masks_match(client, tmp_path, layout):
    n = 20
    run(tmp_path / "calls", unusual, n, False)
    run(tmp_path / "shards", unusual, n, layout)
    for a, b in zip(open_results(tmp_path / "calls"), open_results(tmp_path / "shards"),
                    strict=True):
        if isinstance(a, dict):
            assert a == b
        else:
            assert_same(a, b)
    calls, shards = Manifest.load(tmp_path / "calls"), Manifest.load(tmp_path / "shards")
    assert calls.pickled == shards.pickled == {i for i in range(n) if i % 2}
    assert calls.finished == shards.finished == set(range(n))
    with h5py.File(tmp_path / "shards" / "unusual.h5") as h5f:  # pickled calls: no link
        if layout == "groups":
            assert comp_keys(h5f) == [f"comp_{i}" for i in range(0, n, 2)]
        else:  # rows: the others are rows, the pickled slots read as the fill value
            assert comp_keys(h5f) == []
            np.testing.assert_array_equal(h5f["result_0"][4], np.arange(3) * 4)
            np.testing.assert_array_equal(h5f["result_0"][5], [0, 0, 0])


def die_once(i: int, marker: str) -> float:
    """Call 7 kills its worker process the first time (mid-shard: the task's buffer dies)."""
    if i == 7 and not os.path.exists(marker):
        Path(marker).touch()
        os._exit(1)
    return float(i)


def floats(values: Any) -> list[float]:
    """Call values as floats, from a per-call list or a stacked ``(n, 1)`` array."""
    return [float(np.ravel(v)[0]) for v in values]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_worker_killed_mid_shard_loses_nothing(client, tmp_path, layout):
    out = tmp_path / "run"
    marker = str(tmp_path / "died")
    with ParallelMap(die_once, list(range(40)), str(marker), output_dir=str(out),
                     store="hdf5", store_options={"shard_calls": layout}, logfile=False,
                     progress=False, verbose=False) as pmap:
        pmap.compute()
    assert os.path.exists(marker)
    assert floats(open_results(out)) == [float(i) for i in range(40)]
    assert not [p for p in out.rglob("*") if is_partial(p.name)]


def die_once_then_fail(i: int, marker: str, flag: str) -> float:
    """Call 7 kills its worker once (mid-shard); call 25 fails until ``flag`` exists."""
    if i == 25 and not os.path.exists(flag):
        raise ValueError("call 25 fails this time")
    return die_once(i, marker)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_worker_killed_mid_shard_loses_nothing_after_resume(client, tmp_path, layout):
    out, marker, flag = tmp_path / "run", str(tmp_path / "died"), str(tmp_path / "flag")
    options = {"store": "hdf5", "store_options": {"shard_calls": layout}, "logfile": False,
               "progress": False, "verbose": False}
    with pytest.raises(ParallelMapError), \
            ParallelMap(die_once_then_fail, list(range(40)), marker, flag, output_dir=str(out),
                        retries=0, **options) as pmap:
        pmap.compute()
    assert os.path.exists(marker)
    assert Manifest.load(out).finished == set(range(40)) - {25}
    Path(flag).touch()
    with ParallelMap(die_once_then_fail, list(range(40)), marker, flag, output_dir=str(out),
                     resume=True, **options) as pmap:
        pmap.compute()
    assert floats(open_results(out)) == [float(i) for i in range(40)]
    assert not [p for p in out.rglob("*") if is_partial(p.name)]


def fails_until_told(i: int, flag: str) -> float:
    if i >= 10 and not os.path.exists(flag):
        raise ValueError(f"call {i} fails this time")
    return float(i)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_resume_finishes_a_sharded_run_per_call(client, tmp_path, layout):
    out, flag = tmp_path / "run", str(tmp_path / "flag")
    with pytest.raises(ParallelMapError), \
            ParallelMap(fails_until_told, list(range(30)), flag, output_dir=str(out),
                        store="hdf5", store_options={"shard_calls": layout}, logfile=False,
                        progress=False, verbose=False, retries=0) as pmap:
        pmap.compute()
    assert Manifest.load(out).finished == set(range(10))
    if layout == "rows":  # the unfinished calls: masked, as stacked runs mask them
        partial = open_results(out)
        assert isinstance(partial, np.ma.MaskedArray)
        assert partial.mask[:, 0].tolist() == [i >= 10 for i in range(30)]
    Path(flag).touch()
    with ParallelMap(fails_until_told, list(range(30)), flag, output_dir=str(out),
                     store="hdf5", store_options={"shard_calls": layout}, logfile=False,
                     progress=False, verbose=False, resume=True) as pmap:
        pmap.compute()
    assert floats(open_results(out)) == [float(i) for i in range(30)]
    if layout == "rows":  # the container was rewritten over the resumed calls' shards too
        with h5py.File(out / "fails_until_told.h5") as h5f:
            assert h5f["result_0"][:, 0].tolist() == [float(i) for i in range(30)]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_moved_run_directory_still_reads(client, tmp_path, layout):
    run(tmp_path / "run", mixed, 24, layout)
    run(tmp_path / "pairs", pair, 24, layout)
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    shutil.move(tmp_path / "run", moved / "run")
    shutil.move(tmp_path / "pairs", moved / "pairs")
    values = open_results(moved / "run")
    for i, value in enumerate(values):
        assert_same(value, open_results_value(i))
    if layout == "groups":
        with h5py.File(moved / "run" / "mixed.h5") as h5f:
            np.testing.assert_array_equal(h5f["comp_7"]["result_0"][()], np.arange(4) + 7)
    else:
        with h5py.File(moved / "pairs" / "pair.h5") as h5f:
            np.testing.assert_array_equal(h5f["result_0"][7], np.arange(3.0) * 7)
    stacked = open_results(moved / "pairs")
    assert_same(stacked[0][7] if layout == "rows" else stacked[7][0], np.arange(3.0) * 7)


def open_results_value(i: int) -> Any:
    """What ``open_results`` gives for :func:`mixed`'s call ``i`` (HDF5's types)."""
    value = mixed(i)
    kind = i % 6
    if kind == 0:
        return np.array([value])
    if kind == 2:
        return value[0], value[1], np.int64(value[2])
    if kind == 3:
        return np.array(value, dtype=object)
    if kind == 4:
        return value
    return value


def test_unfinished_chunk_leaves_nothing_that_counts(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    store = HDF5Store(shard_calls=True)
    store.prepare(RunInfo(func_name="f", n_calls=10, output_dir=out))
    writer = pickle.loads(pickle.dumps(store.writer()))
    assert isinstance(writer, WritesChunks) and isinstance(writer, HDF5ShardWriter)
    writer.begin_chunk([0, 1, 2])
    for i in (0, 1, 2):
        writer.write(i, float(i))
    writer.end_chunk()
    writer.begin_chunk([3, 4, 5])  # the worker is killed before the chunk ends
    for i in (3, 4):
        writer.write(i, float(i))
    (out / "f_payload" / f".f_3{SHARD_SUFFIX}.0123456789ab.partial").write_bytes(b"half")
    (out / "f_payload" / f"f_5{SHARD_SUFFIX}").write_bytes(b"")  # a node crash's empty file
    assert sorted(store.existing()) == [0, 1, 2]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_rerun_of_a_shards_first_call_keeps_its_other_calls(tmp_path, layout):
    out = tmp_path / "run"
    out.mkdir()
    store = HDF5Store(shard_calls=layout)
    store.prepare(RunInfo(func_name="f", n_calls=4, output_dir=out))
    writer = store.writer()
    writer.begin_chunk([0, 1, 2, 3])
    refs = [writer.write(i, float(i)) for i in range(4)]
    writer.end_chunk()
    writer.begin_chunk([0])  # a retry of call 0 alone: the same shard name
    refs[0] = writer.write(0, 10.0)
    writer.end_chunk()
    store.finalize(refs, set())
    manifest = {"func_name": "f", "n_calls": 4, "store": "hdf5", "finished": [[0, 3]]}
    assert floats(HDF5Store.read(out, manifest)) == [10.0, 1.0, 2.0, 3.0]
    with h5py.File(out / "f.h5") as h5f:
        values = (h5f["result_0"][:, 0] if layout == "rows"
                  else [h5f[f"comp_{i}"]["result_0"][0] for i in range(4)])
        assert list(values) == [10.0, 1.0, 2.0, 3.0]


def test_auto_shards_only_large_runs(tmp_path):
    small, large = HDF5Store(), HDF5Store()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    small.prepare(RunInfo(func_name="f", n_calls=SHARD_AUTO_CALLS - 1, output_dir=tmp_path / "a"))
    large.prepare(RunInfo(func_name="f", n_calls=SHARD_AUTO_CALLS, output_dir=tmp_path / "b"))
    assert not small.sharded and large.sharded and large.layout == "rows"
    assert not isinstance(small.writer(), WritesChunks)


@pytest.mark.parametrize("value", ["yes", "Rows", 1, 0, None, 1.0, ["rows"]])
def test_bad_shard_option_is_refused_before_anything_is_written(tmp_path, value):
    out = tmp_path / "r"
    with pytest.raises(ArgumentValueError, match=r"store_options\['shard_calls'\]") as info:
        ParallelMap(scalar, [1, 2], output_dir=str(out), store="hdf5",
                    store_options={"shard_calls": value}, logfile=False)
    assert info.value.parameter == "store_options"
    assert repr(value) in str(info.value) and "'rows'" in str(info.value)
    assert not out.exists()


def test_group_shards_with_result_shape_are_refused(tmp_path):
    # stacked runs shard as rows (tests/storage/test_shards_stacked.py)
    with pytest.raises(ArgumentValueError, match="shard_calls"):
        ParallelMap(scalar, [1, 2], output_dir=str(tmp_path / "r"), store="hdf5",
                    store_options={"shard_calls": "groups"}, result_shape=(None,),
                    logfile=False)
    assert not (tmp_path / "r").exists()


def scalar(i: int) -> float:
    return float(i)


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_many_calls_in_shards(client, tmp_path):
    # the 200,000 calls in CI within a minute, with the default store choice
    # (the "hdf5" store, shard_calls="auto": rows); the time is measured in
    # benchmarks/README.md, never asserted
    n = 200_000
    out = tmp_path / "run"
    with ParallelMap(scalar, list(range(n)), output_dir=str(out), logfile=False,
                     progress=False, verbose=False) as pmap:
        pmap.compute()
    assert len(list((out / "scalar_payload").iterdir())) <= n // 1000
    values = open_results(out)
    assert values.shape == (n, 1) and values[-1, 0] == n - 1


def fails_on_three(i: int) -> float:
    if i == 3:
        raise ValueError("cannot handle 3")
    return float(i)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_inspect_and_open_results_report_per_call(client, tmp_path, layout):
    import json
    import subprocess
    import sys

    out = tmp_path / "run"
    with pytest.raises(ParallelMapError):
        run(out, fails_on_three, 12, layout, retries=0)
    done = subprocess.run([sys.executable, "-m", "acme_core.cli", "inspect", "--json", str(out)],
                          capture_output=True, text=True, timeout=120)
    state = json.loads(done.stdout)
    assert state["done"] == 11 and list(state["failed"]) == ["3"] and state["missing"] == []
    values = open_results(out)
    if layout == "rows":  # stacked, the failed call masked (as a stacked run's)
        assert values.mask[:, 0].tolist() == [i == 3 for i in range(12)]
    else:
        assert values[3] is None
    assert [float(v[0]) for i, v in enumerate(values) if i != 3] == [
        float(i) for i in range(12) if i != 3]
    with h5py.File(out / "fails_on_three.h5") as h5f:
        if layout == "rows":
            assert comp_keys(h5f) == [] and h5f["result_0"][4, 0] == 4.0
            assert np.isnan(h5f["result_0"][3, 0])  # the fill value
        else:
            assert "comp_3" not in h5f and float(h5f["comp_4"]["result_0"][0]) == 4.0


def test_a_rows_shard_holds_what_fits_and_groups_the_rest(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    store = HDF5Store(shard_calls="rows")
    store.prepare(RunInfo(func_name="f", n_calls=6, output_dir=out))
    writer = store.writer()
    values = ["text first", 1.0, 2.0, np.arange(2.0), 4.0, np.zeros(0)]
    writer.begin_chunk(list(range(6)))
    refs = [writer.write(i, v) for i, v in enumerate(values)]
    writer.end_chunk()
    store.finalize(refs, set())
    with h5py.File(refs[0]) as shard:  # the first call that fits a row sets the signature
        assert shard["acme_ids"][()].tolist() == [1, 2, 4]
        assert comp_keys(shard) == ["comp_0", "comp_3", "comp_5"]
    with h5py.File(out / "f.h5") as h5f:
        assert comp_keys(h5f) == ["comp_0", "comp_3", "comp_5"]
        column = h5f["result_0"][:, 0]
        assert column[[1, 2, 4]].tolist() == [1.0, 2.0, 4.0]
        assert np.isnan(column[[0, 3, 5]]).all()
        np.testing.assert_array_equal(h5f["comp_3"]["result_0"][()], np.arange(2.0))
    manifest = {"func_name": "f", "n_calls": 6, "store": "hdf5", "finished": [[0, 5]]}
    read = HDF5Store.read(out, manifest)
    assert isinstance(read, list) and read[0] == "text first"
    assert [float(read[i][0]) for i in (1, 2, 4)] == [1.0, 2.0, 4.0]
    assert_same(read[3], np.arange(2.0))
    assert read[5].shape == (0,)


def test_debug_runs_write_shards_of_many_calls(tmp_path):
    """``debug=True`` hands the writer pieces of calls: 2,500 calls make 3 shards, not 2,500;
    a call that raises still leaves the calls before it durable and listed."""
    with ParallelMap(np.negative, list(range(2_500)), output_dir=str(tmp_path / "run"),
                     store_options={"shard_calls": "rows"}, logfile=False,
                     progress=False) as pmap:
        pmap.compute(debug=True)
    shard_files = [f for f in files_of(tmp_path / "run") if f.endswith(SHARD_SUFFIX)]
    assert len(shard_files) == 3
    assert np.array_equal(np.asarray(open_results(tmp_path / "run")).ravel(),
                          -np.arange(2_500))

    def fails_at_1500(x):
        if x == 1_500:
            raise ValueError("call 1500")
        return float(x)

    with ParallelMap(fails_at_1500, list(range(2_500)), output_dir=str(tmp_path / "bad"),
                     store_options={"shard_calls": "rows"}, logfile=False,
                     progress=False) as pmap:
        with pytest.raises(ValueError, match="call 1500"):
            pmap.compute(debug=True)
    assert Manifest.load(tmp_path / "bad").finished == set(range(1_500))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_shard_blocks_are_compressed_as_the_store_says(client, tmp_path, layout):
    """``compression`` is not ignored by shards: every block is written with the filter."""
    with ParallelMap(np.full, 3, list(range(40)), output_dir=str(tmp_path / "run"),
                     store_options={"shard_calls": layout, "compression": "gzip"},
                     logfile=False, progress=False) as pmap:
        pmap.compute()
    shard_files = sorted((tmp_path / "run").rglob(f"*{SHARD_SUFFIX}"))
    assert shard_files
    for path in shard_files:
        with h5py.File(path, "r") as h5f:
            assert h5f["acme_block"]["result_0"].compression == "gzip"
    values = open_results(tmp_path / "run")
    assert [list(np.asarray(v).ravel()) for v in values] == [[i] * 3 for i in range(40)]


def test_task_buffers_unpickle_empty():
    """A shard writer is pickled to the workers with its buffers: they arrive empty."""
    from acme_storage._task_buffers import TaskBuffers

    buffers: TaskBuffers[str] = TaskBuffers()
    buffers.begin([1, 2], "the task's values")
    copy = pickle.loads(pickle.dumps(buffers))
    assert buffers.of(1) == "the task's values"
    assert copy.of(1) is None and copy.end() is None
