"""The ``"hdf5"`` store's per-task shards (``shard_calls``): the same results as a file per call.

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


def test_sharded_run_reads_as_per_call_files(client, tmp_path):
    n = 60
    run(tmp_path / "calls", mixed, n, False)
    run(tmp_path / "shards", mixed, n, True)
    per_call, sharded = open_results(tmp_path / "calls"), open_results(tmp_path / "shards")
    for a, b in zip(per_call, sharded, strict=True):
        assert_same(a, b)
    shard_files = [f for f in files_of(tmp_path / "shards") if f.endswith(SHARD_SUFFIX)]
    assert 0 < len(shard_files) < n
    with h5py.File(tmp_path / "calls" / "mixed.h5") as one, \
            h5py.File(tmp_path / "shards" / "mixed.h5") as other:
        assert sorted(one) == sorted(other)
        for i in range(n):
            assert sorted(one[f"comp_{i}"]) == sorted(other[f"comp_{i}"])
            for key in one[f"comp_{i}"]:
                assert_same(one[f"comp_{i}"][key][()], other[f"comp_{i}"][key][()])


def test_emergency_pickles_and_masks_match(client, tmp_path):
    n = 20
    run(tmp_path / "calls", unusual, n, False)
    run(tmp_path / "shards", unusual, n, True)
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
        assert sorted(h5f, key=lambda k: int(k[5:])) == [f"comp_{i}" for i in range(0, n, 2)]


def die_once(i: int, marker: str) -> float:
    """Call 7 kills its worker process the first time (mid-shard: the task's buffer dies)."""
    if i == 7 and not os.path.exists(marker):
        Path(marker).touch()
        os._exit(1)
    return float(i)


def test_a_worker_killed_mid_shard_loses_nothing(client, tmp_path):
    out = tmp_path / "run"
    marker = str(tmp_path / "died")
    with ParallelMap(die_once, list(range(40)), str(marker), output_dir=str(out),
                     store="hdf5", store_options={"shard_calls": True}, logfile=False,
                     progress=False, verbose=False) as pmap:
        pmap.compute()
    assert os.path.exists(marker)
    values = open_results(out)
    assert [float(v[0]) for v in values] == [float(i) for i in range(40)]
    assert not [p for p in out.rglob("*") if is_partial(p.name)]


def fails_until_told(i: int, flag: str) -> float:
    if i >= 10 and not os.path.exists(flag):
        raise ValueError(f"call {i} fails this time")
    return float(i)


def test_resume_finishes_a_sharded_run_per_call(client, tmp_path):
    out, flag = tmp_path / "run", str(tmp_path / "flag")
    with pytest.raises(ParallelMapError), \
            ParallelMap(fails_until_told, list(range(30)), flag, output_dir=str(out),
                        store="hdf5", store_options={"shard_calls": True}, logfile=False,
                        progress=False, verbose=False, retries=0) as pmap:
        pmap.compute()
    assert Manifest.load(out).finished == set(range(10))
    Path(flag).touch()
    with ParallelMap(fails_until_told, list(range(30)), flag, output_dir=str(out),
                     store="hdf5", store_options={"shard_calls": True}, logfile=False,
                     progress=False, verbose=False, resume=True) as pmap:
        pmap.compute()
    assert [float(v[0]) for v in open_results(out)] == [float(i) for i in range(30)]


def test_a_moved_run_directory_still_reads(client, tmp_path):
    run(tmp_path / "run", mixed, 24, True)
    moved = tmp_path / "elsewhere" / "moved"
    moved.parent.mkdir()
    shutil.move(tmp_path / "run", moved)
    values = open_results(moved)
    for i, value in enumerate(values):
        assert_same(value, open_results_value(i))
    with h5py.File(moved / "mixed.h5") as h5f:
        np.testing.assert_array_equal(h5f["comp_7"]["result_0"][()], np.arange(4) + 7)


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


def test_a_rerun_of_a_shards_first_call_keeps_its_other_calls(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    store = HDF5Store(shard_calls=True)
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
    assert [float(v[0]) for v in HDF5Store.read(out, manifest)] == [10.0, 1.0, 2.0, 3.0]


def test_auto_shards_only_large_runs(tmp_path):
    small, large = HDF5Store(), HDF5Store()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    small.prepare(RunInfo(func_name="f", n_calls=SHARD_AUTO_CALLS - 1, output_dir=tmp_path / "a"))
    large.prepare(RunInfo(func_name="f", n_calls=SHARD_AUTO_CALLS, output_dir=tmp_path / "b"))
    assert not small.sharded and large.sharded
    assert not isinstance(small.writer(), WritesChunks)


def test_bad_shard_option_is_refused():
    with pytest.raises(ArgumentValueError, match="shard_calls") as info:
        HDF5Store(shard_calls="yes")
    assert info.value.parameter == "store_options"


def test_shards_with_result_shape_are_refused(tmp_path):
    with pytest.raises(ArgumentValueError, match="shard_calls"):
        ParallelMap(scalar, [1, 2], output_dir=str(tmp_path / "r"), store="hdf5",
                    store_options={"shard_calls": True}, result_shape=(None,),
                    logfile=False)


def scalar(i: int) -> float:
    return float(i)


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_many_calls_in_shards(client, tmp_path):
    # the 200,000 calls did not finish within a minute on the shared 2-core
    # machine (an HDF5 group per call costs ~0.3 ms: benchmarks/README.md); 50,000 do
    n = 50_000
    run(tmp_path / "run", scalar, n, "auto")
    assert len(list((tmp_path / "run" / "scalar_payload").iterdir())) <= n // 1000
    values = open_results(tmp_path / "run")
    assert len(values) == n and float(values[-1][0]) == n - 1


def fails_on_three(i: int) -> float:
    if i == 3:
        raise ValueError("cannot handle 3")
    return float(i)


def test_inspect_and_open_results_report_per_call(client, tmp_path):
    import json
    import subprocess
    import sys

    out = tmp_path / "run"
    with pytest.raises(ParallelMapError):
        run(out, fails_on_three, 12, True, retries=0)
    done = subprocess.run([sys.executable, "-m", "acme_core.cli", "inspect", "--json", str(out)],
                          capture_output=True, text=True, timeout=120)
    state = json.loads(done.stdout)
    assert state["done"] == 11 and list(state["failed"]) == ["3"] and state["missing"] == []
    values = open_results(out)
    assert values[3] is None
    assert [float(v[0]) for i, v in enumerate(values) if i != 3] == [
        float(i) for i in range(12) if i != 3]
    with h5py.File(out / "fails_on_three.h5") as h5f:
        assert "comp_3" not in h5f and float(h5f["comp_4"]["result_0"][0]) == 4.0
