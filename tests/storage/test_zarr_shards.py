"""The ``"zarr"`` store's shards (``shard_calls``) with ``result_shape``: the same stacked
results as a chunk file per call.

Real runs on the session's 2-worker dask cluster (the ``client`` fixture), real zarr
arrays read back with zarr-python and ``open_results``.
"""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from acme_core import ParallelMap, ParallelMapError, open_results
from acme_core.errors import ArgumentValueError
from acme_core.fileio import is_partial
from acme_core.manifest import Manifest
from acme_core.store import RunInfo, WritesBlocks, WritesChunks
from acme_storage.zarr import ZarrStore, _zarr
from acme_storage.zarr.shards import (
    SHARD_AUTO_CALLS,
    SHARD_MAX_CALLS,
    SHARD_MIN_COUNT,
    ZarrShardWriter,
    _shard_key,
    calls_per_shard,
    index_mask,
    raw_shard_bytes,
    raw_shards,
    read_raw,
)
from stacked_cases import (
    assert_same_stacked,
    bad_slot,
    cases,
    die_once_then_fail,
    plane,
    row,
    run_sharded,
)


def run(out: Path, func: Any, n: int, shard: Any, *args: Any, **options: Any) -> Any:
    return run_sharded(out, func, n, shard, *args, store="zarr", **options)


def with_extras(i: int) -> Any:
    return np.arange(3.0) * i, np.int32(i)


CASES = cases(with_extras)  # function, result_shape, result_dtype


def shard_files(out: Path, func: Any) -> list[Path]:
    array = out / f"{func.__name__}.zarr" / "result_0"
    return sorted(p for p in array.iterdir() if p.name != "zarr.json")


@pytest.mark.parametrize("case", sorted(CASES))
def test_sharded_stacked_run_reads_as_per_call_chunks(client, tmp_path, case):
    func, shape, dtype = CASES[case]
    n = 30
    options = {"result_shape": shape, "result_dtype": dtype, "retries": 0, "chunk_size": 3}
    for layout, where in ((False, "calls"), (4, "shards")):
        if case == "failing":
            with pytest.raises(ParallelMapError):
                run(tmp_path / where, func, n, layout, **options)
        else:
            run(tmp_path / where, func, n, layout, **options)
    per_call, sharded = open_results(tmp_path / "calls"), open_results(tmp_path / "shards")
    assert_same_stacked(per_call, sharded)
    assert len(shard_files(tmp_path / "shards", func)) == 8  # ceil(30 / 4), no leftovers
    finished = sorted(Manifest.load(tmp_path / "shards").finished)
    assert finished == sorted(Manifest.load(tmp_path / "calls").finished)
    if case == "failing":  # only the two bad calls failed, the others keep their slots
        assert finished == [i for i in range(n) if i not in (4, 9)]
    # zarr-python reads the shards as any sharded array, the same values as per call
    one = zarr.open_array(tmp_path / "calls" / f"{func.__name__}.zarr" / "result_0", mode="r")
    other = zarr.open_array(tmp_path / "shards" / f"{func.__name__}.zarr" / "result_0",
                            mode="r")
    assert other.shards is not None and one.shards is None
    assert one.dtype == other.dtype == np.dtype(dtype) and one.shape == other.shape
    np.testing.assert_array_equal(one[...], other[...])


def test_the_shard_index_lists_exactly_the_written_slots(client, tmp_path):
    """A written all-zero slot (call 0) has its inner chunk; a failed call has none."""
    with pytest.raises(ParallelMapError):
        run(tmp_path / "run", bad_slot, 12, 8, result_shape=(None, 3), result_dtype="int16",
            retries=0, chunk_size=5)
    run(tmp_path / "zeros", plane, 5, 8, result_shape=(2, None, 3))
    first = shard_files(tmp_path / "run", bad_slot)[0]
    mask = index_mask(first, (8, 1))
    assert mask is not None and mask[:, 0].tolist() == [i not in (4,) for i in range(8)]
    zeros = index_mask(shard_files(tmp_path / "zeros", plane)[0], (1, 8, 1))
    assert zeros is not None and zeros[0, :, 0].tolist() == [True] * 5 + [False] * 3
    # the same as zarr's own reading of the index (a private API: a cross-check only)
    from zarr.codecs.sharding import _ShardIndex

    data = first.read_bytes()
    pairs = np.frombuffer(data[-(16 * 8 + 4):-4], "<u8").reshape(8, 1, 2)
    assert _ShardIndex(pairs).get_full_chunk_map().tolist() == mask.tolist()
    # a shard whose index does not check out holds nothing (its calls run again)
    broken = bytearray(data)
    broken[-1] ^= 0xFF
    first.write_bytes(bytes(broken))
    assert index_mask(first, (8, 1)) is None
    store = ZarrStore(shard_calls=8)
    store.prepare(RunInfo("bad_slot", 12, tmp_path / "run", (12, 3), np.dtype("int16"), 0,
                          resume=True))
    assert sorted(store.existing()) == [8, 10, 11]


def test_a_worker_killed_mid_shard_then_resume(client, tmp_path):
    out, marker, flag = tmp_path / "run", str(tmp_path / "died"), str(tmp_path / "flag")
    options = {"result_shape": (3, None), "retries": 0, "chunk_size": 6}
    with pytest.raises(ParallelMapError):
        run(out, die_once_then_fail, 40, 10, marker, flag, **options)
    assert os.path.exists(marker)
    assert Manifest.load(out).finished == set(range(40)) - {25}
    partial = open_results(out)
    assert isinstance(partial[0], np.ma.MaskedArray)
    assert partial[0].mask[0].tolist() == [i == 25 for i in range(40)]
    Path(flag).touch()
    run(out, die_once_then_fail, 40, 10, marker, flag, resume=True, **options)
    data, *extras = open_results(out)
    assert not isinstance(data, np.ma.MaskedArray)
    np.testing.assert_array_equal(data, np.arange(3.0)[:, None] + np.arange(40))
    assert extras == list(range(40))
    assert len(shard_files(out, die_once_then_fail)) == 4
    assert not [p for p in out.rglob("*") if is_partial(p.name)]


def test_moved_run_directory_reads(client, tmp_path):
    with pytest.raises(ParallelMapError):
        run(tmp_path / "run", bad_slot, 12, True, result_shape=(None, 3), result_dtype="int16",
            retries=0)
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    shutil.move(tmp_path / "run", moved / "run")
    values = open_results(moved / "run")
    assert values.mask[:, 0].tolist() == [i in (4, 9) for i in range(12)]
    np.testing.assert_array_equal(values[7], np.arange(3) + 7)


def test_a_debug_run_writes_call_by_call_into_shards(tmp_path):
    with ParallelMap(row, list(range(10)), output_dir=str(tmp_path / "run"), store="zarr",
                     store_options={"shard_calls": 4}, result_shape=(None, 3), logfile=False,
                     progress=False, verbose=False) as pmap:
        pmap.compute(debug=True)
    np.testing.assert_array_equal(open_results(tmp_path / "run"),
                                  np.arange(3.0) + 10 * np.arange(10)[:, None])


def test_the_store_declares_its_shards_as_blocks(tmp_path):
    def run_info(n: int, shape: Any = (None, 3)) -> RunInfo:
        full = None if shape is None else tuple(n if s is None else s for s in shape)
        return RunInfo("f", n, tmp_path, full, np.dtype("float64"), 0 if shape else None)

    store = ZarrStore(shard_calls=True)
    assert isinstance(store, WritesBlocks)
    assert store.block_calls(run_info(100)) == calls_per_shard(100, 24) == 2
    assert store.block_calls(run_info(10 ** 6)) == SHARD_MAX_CALLS
    assert calls_per_shard(10 ** 6, 2 ** 20) == 16  # a shard of about 16 MiB at most
    assert ZarrStore(shard_calls=50).block_calls(run_info(100)) == 50
    assert ZarrStore(shard_calls=False).block_calls(run_info(10 ** 6)) is None  # per call
    assert ZarrStore().block_calls(run_info(10 ** 6)) == SHARD_MAX_CALLS  # default: "auto"
    assert ZarrStore().block_calls(run_info(100)) is None
    auto = ZarrStore(shard_calls="auto")
    assert auto.block_calls(run_info(SHARD_AUTO_CALLS - 1)) is None
    assert auto.block_calls(run_info(SHARD_AUTO_CALLS)) == -(-SHARD_AUTO_CALLS // SHARD_MIN_COUNT)
    assert auto.block_calls(run_info(10 ** 6, None)) is None
    assert auto.block_calls(run_info(10 ** 6, (None, np.inf))) is None
    store.prepare(run_info(20))
    writer = pickle.loads(pickle.dumps(store.writer()))
    assert isinstance(writer, ZarrShardWriter) and isinstance(writer, WritesChunks)


@pytest.mark.parametrize(("value", "shape"), [(10, None), (10, (None, np.inf)),
                                              ("yes", (None, 3)), (0, (None, 3)),
                                              (1.5, (None, 3))])
def test_refused_before_anything_is_written(tmp_path, value, shape):
    out = tmp_path / "run"
    options = {} if shape is None else {"result_shape": shape}
    with pytest.raises(ArgumentValueError, match=r"store_options\['shard_calls'\]"):
        ParallelMap(row, list(range(4)), output_dir=str(out), store="zarr",
                    store_options={"shard_calls": value}, logfile=False, progress=False,
                    **options)
    assert not out.exists()


def _with_index(data: bytes, calls: int) -> tuple[bytes, np.ndarray[Any, Any]]:
    return data, np.frombuffer(data[-(16 * calls + 4):-4], "<u8").reshape(calls, 2)


@pytest.mark.parametrize(("shape", "dim", "dtype"), [((10, 3), 0, "float64"),
                                                     ((2, 10, 3), 1, "int16"),
                                                     ((10,), 0, "bool")])
def test_raw_shards_are_byte_for_byte_what_zarr_writes(tmp_path, shape, dim, dtype):
    store = ZarrStore(shard_calls=4)
    (tmp_path / "run").mkdir()
    store.prepare(RunInfo("f", 10, tmp_path / "run", shape, np.dtype(dtype), dim))
    array = zarr.open_array(store.root / "result_0", mode="r")
    assert raw_shards(array, dim)
    metadata = (store.root / "result_0" / "zarr.json").read_bytes()
    key = _shard_key(array, dim, 1)  # calls 4..7
    slot = tuple(s for k, s in enumerate(shape) if k != dim)
    values = {i: (np.arange(int(np.prod(slot))).reshape(slot) * i).astype(dtype)
              for i in (4, 6, 5)}

    def region(i: int) -> tuple[Any, ...]:
        return tuple(slice(i, i + 1) if k == dim else slice(None) for k in range(len(shape)))

    def zarr_bytes(existing: bytes | None, ids: list[int]) -> bytes:
        return _zarr.encode_shard(metadata, key, existing,
                                  [(region(i), np.expand_dims(values[i], dim)) for i in ids])

    first = zarr_bytes(None, [4, 6])
    assert raw_shard_bytes(None, 4, {0: values[4], 2: values[6]}) == first
    merged = zarr_bytes(first, [5])  # an earlier task's slots stay
    assert raw_shard_bytes(_with_index(first, 4), 4, {1: values[5]}) == merged
    # zarr-python reads a shard made by hand
    (store.root / "result_0" / key).write_bytes(merged)
    back = zarr.open_array(store.root / "result_0", mode="r")[...]
    for i in (4, 5, 6):
        np.testing.assert_array_equal(np.take(back, i, axis=dim), values[i])
    assert not np.take(back, 7, axis=dim).any()


def test_compressed_or_split_slots_are_not_raw(tmp_path):
    for options in ({"compression": "gzip"}, {"chunks": (2,)}):
        store = ZarrStore(shard_calls=4, **options)
        out = tmp_path / str(len(list(tmp_path.iterdir())))
        out.mkdir()
        store.prepare(RunInfo("f", 10, out, (10, 3), np.dtype("float64"), 0))
        assert not raw_shards(zarr.open_array(store.root / "result_0", mode="r"), 0)


def test_a_raw_shard_with_its_slots_out_of_order_reads(tmp_path):
    """The spec lets a shard hold its inner chunks in any order; zarr and we read it alike."""
    import google_crc32c

    store = ZarrStore(shard_calls=3)
    (tmp_path / "run").mkdir()
    store.prepare(RunInfo("f", 3, tmp_path / "run", (3,), np.dtype("float64"), 0))
    array = zarr.open_array(store.root / "result_0", mode="r")
    table = np.array([[8, 8], [0, 8], [2 ** 64 - 1] * 2], "<u8").tobytes()
    crc = np.array([google_crc32c.value(table)], "<u4").tobytes()
    shard = np.float64(2.5).tobytes() + np.float64(1.5).tobytes() + table + crc
    (store.root / "result_0" / _shard_key(array, 0, 0)).write_bytes(shard)
    data, written = read_raw(store.root, array, 0, 3)
    assert data.tolist() == [1.5, 2.5, 0.0] and written == {0, 1}
    assert zarr.open_array(store.root / "result_0", mode="r")[...].tolist() == [1.5, 2.5, 0.0]
