"""The ``"zarr"`` store's zip shards (``shard_calls="rows"``, runs without ``result_shape``):
the same results as a group per call.

Real runs on the session's 2-worker dask cluster (the ``client`` fixture), real zip files
read back with zarr-python's ``ZipStore`` and ``open_results``.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from acme_core import ParallelMap, ParallelMapError, open_results
from acme_core.errors import ArgumentValueError
from acme_core.fileio import is_partial
from acme_core.manifest import Manifest
from acme_core.store import RunInfo, WritesChunks
from acme_storage.zarr import ZarrStore
from acme_storage.zarr.rows import SHARD_SUFFIX, ZarrRowsWriter
from acme_storage.zarr.shards import SHARD_AUTO_CALLS
from acme_storage.zarr.zips import GROUP_JSON, _through_zarr, array_entries


def mixed(i: int) -> Any:
    """Every kind of value a per-call group holds, emergency pickles, and a failing call."""
    kind = i % 8
    if kind == 0:
        return float(i)
    if kind == 1:
        return np.arange(4, dtype=np.int32) + i
    if kind == 2:
        return np.full((2, 3), i, dtype=np.float32), f"text {i}", i
    if kind == 3:
        return ["a", f"b{i}"]
    if kind == 4:
        return {"not": "zarr", "i": i}  # emergency pickle
    if kind == 5:
        return np.bool_(i % 2), np.arange(3.0), np.complex64(i)
    if kind == 6 and i == 14:
        raise ValueError("call 14 fails")
    return np.zeros(i % 3), np.uint8(i)  # ragged (and empty) arrays


def run(out: Path, func: Any, n: int, shard: Any, *args: Any, **options: Any) -> Any:
    with ParallelMap(func, list(range(n)), *args, output_dir=str(out), store="zarr",
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
        assert a.dtype == b.dtype and a.shape == b.shape, (a, b)
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, np.generic):
        assert a.dtype == b.dtype and a == b
    else:
        assert a == b


def shard_files(out: Path) -> list[Path]:
    return sorted(out.rglob(f"*{SHARD_SUFFIX}"))


def per_call_and_rows(tmp_path: Path, func: Any, shape: Any, chunk_size: int,
                      fails: bool) -> tuple[Any, Any]:
    """20 calls of ``func`` with ``result_shape=shape`` in the per-call layout
    (``<tmp>/calls``) and in zip shards (``<tmp>/rows``), read back; ``fails``: a
    call of ``func`` raises, so each run does."""
    options = {"result_shape": shape, "retries": 0, "chunk_size": chunk_size}
    for where, layout in (("calls", False), ("rows", "rows")):
        if fails:
            with pytest.raises(ParallelMapError):
                run(tmp_path / where, func, 20, layout, **options)
        else:
            run(tmp_path / where, func, 20, layout, **options)
    return open_results(tmp_path / "calls"), open_results(tmp_path / "rows")


def files_of(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if p.is_file()]


@pytest.mark.parametrize("chunk_size", [1, 5, "auto"])
def test_rows_run_reads_as_per_call_groups(client, tmp_path, chunk_size):
    n = 48
    for where, layout in (("calls", False), ("rows", "rows")):
        with pytest.raises(ParallelMapError):
            run(tmp_path / where, mixed, n, layout, retries=0, chunk_size=chunk_size)
    per_call, rows = open_results(tmp_path / "calls"), open_results(tmp_path / "rows")
    assert isinstance(rows, list) and len(rows) == n and rows[14] is None
    for a, b in zip(per_call, rows, strict=True):
        assert_same(a, b)
    calls, sharded = Manifest.load(tmp_path / "calls"), Manifest.load(tmp_path / "rows")
    assert sharded.finished == calls.finished == set(range(n)) - {14}
    assert sharded.pickled == calls.pickled == set(range(4, n, 8))
    # no group per call: the container is an empty group, the calls are in the zips
    assert [p.name for p in (tmp_path / "rows" / "mixed.zarr").iterdir()] == ["zarr.json"]
    assert 0 < len(shard_files(tmp_path / "rows")) <= (n if chunk_size == 1 else n // 2)
    assert not [p for p in (tmp_path / "rows").rglob("*") if is_partial(p.name)]


def pair(i: int) -> Any:
    return np.arange(3.0) * i, np.int64(i)


def test_a_zip_shard_is_a_zarr_group_zarr_python_reads(client, tmp_path):
    run(tmp_path / "run", pair, 20, "rows", chunk_size=10)
    first = tmp_path / "run" / "pair_payload" / f"pair_0{SHARD_SUFFIX}"
    group = zarr.open_group(zarr.storage.ZipStore(first, mode="r"), mode="r")
    assert group["acme_ids"][...].tolist() == list(range(10))
    np.testing.assert_array_equal(group["acme_block/result_0"][...],
                                  np.arange(3.0) * np.arange(10)[:, None])
    assert group["acme_block/result_1"][...].tolist() == list(range(10))
    values = open_results(tmp_path / "run")
    for i, value in enumerate(values):
        assert_same(value, (np.arange(3.0) * i, np.int64(i)))


@pytest.mark.parametrize("data", [np.arange(6.0).reshape(2, 3), np.int32(7), np.array(True),
                                  np.arange(4, dtype=">i8"), np.array([1 + 2j], "<c16"),
                                  np.arange(5, dtype=np.uint16), np.float16(2.5),
                                  np.array([1, 2], np.int8), np.array([3], np.uint64),
                                  np.ones((2, 1, 2), np.complex64), np.array([[False]])])
def test_by_hand_entries_are_zarrs_own(data):
    by_hand = array_entries("x", np.asarray(data), False, None)
    little = np.asarray(data).astype(np.asarray(data).dtype.newbyteorder("<"))
    by_zarr = _through_zarr("x", little, False, None, None)
    assert {k: bytes(v) for k, v in by_hand.items()} == by_zarr


def test_the_group_entry_is_zarrs_own(tmp_path):
    zarr.open_group(tmp_path / "g", mode="w", zarr_format=3)
    assert (tmp_path / "g" / "zarr.json").read_bytes() == GROUP_JSON


def test_a_shard_holds_what_fits_and_groups_the_rest(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    store = ZarrStore(shard_calls="rows")
    store.prepare(RunInfo(func_name="f", n_calls=7, output_dir=out))
    writer = store.writer()
    values = ["text first", 1.0, 2.0, np.arange(2.0), 4.0, np.zeros(0), b"raw\x00"]
    writer.begin_chunk(list(range(7)))
    refs = [writer.write(i, v) for i, v in enumerate(values)]
    writer.end_chunk()
    store.finalize(refs, set())
    group = zarr.open_group(zarr.storage.ZipStore(refs[0], mode="r"), mode="r")
    assert group["acme_ids"][...].tolist() == [1, 2, 4]  # the first call that fits sets it
    assert sorted(k for k in group.group_keys() if k.startswith("comp_")) == [
        "comp_0", "comp_3", "comp_5", "comp_6"]
    manifest = {"func_name": "f", "n_calls": 7, "store": "zarr", "finished": [[0, 6]]}
    read = ZarrStore.read(out, manifest)
    assert read[0] == "text first" and read[6] == b"raw"  # zarr's bytes, as per call
    assert [float(read[i][0]) for i in (1, 2, 4)] == [1.0, 2.0, 4.0]
    assert_same(read[3], np.arange(2.0))
    assert read[5].shape == (0,)


def die_once(i: int, marker: str) -> float:
    """Call 7 kills its worker the first time (mid-shard: its task's calls are buffered)."""
    if i == 7 and not os.path.exists(marker):
        Path(marker).touch()
        os._exit(1)
    return float(i)


def die_once_then_fail(i: int, marker: str, flag: str) -> float:
    """Call 7 kills its worker once (mid-shard); call 25 fails until ``flag`` exists."""
    if i == 25 and not os.path.exists(flag):
        raise ValueError("call 25 fails this time")
    return die_once(i, marker)


def floats(values: Any) -> list[float]:
    return [float(np.ravel(v)[0]) for v in values]


def test_a_worker_killed_mid_shard_loses_nothing_after_resume(client, tmp_path):
    out, marker, flag = tmp_path / "run", str(tmp_path / "died"), str(tmp_path / "flag")
    with pytest.raises(ParallelMapError):
        run(out, die_once_then_fail, 40, "rows", marker, flag, retries=0, chunk_size=4)
    assert os.path.exists(marker)
    assert Manifest.load(out).finished == set(range(40)) - {25}
    partial = open_results(out)
    assert partial[25] is None and floats(v for i, v in enumerate(partial) if i != 25) == [
        float(i) for i in range(40) if i != 25]
    Path(flag).touch()
    run(out, die_once_then_fail, 40, "rows", marker, flag, resume=True, chunk_size=4)
    assert floats(open_results(out)) == [float(i) for i in range(40)]
    assert not [p for p in out.rglob("*") if is_partial(p.name)]


def test_a_moved_run_directory_still_reads(client, tmp_path):
    run(tmp_path / "run", pair, 24, "rows")
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    shutil.move(tmp_path / "run", moved / "run")
    for i, value in enumerate(open_results(moved / "run")):
        assert_same(value, (np.arange(3.0) * i, np.int64(i)))


def test_an_unfinished_chunk_leaves_nothing_that_counts(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    store = ZarrStore(shard_calls=True)
    store.prepare(RunInfo(func_name="f", n_calls=10, output_dir=out))
    writer = pickle.loads(pickle.dumps(store.writer()))
    assert isinstance(writer, WritesChunks) and isinstance(writer, ZarrRowsWriter)
    writer.begin_chunk([0, 1, 2])
    for i in (0, 1, 2):
        writer.write(i, float(i))
    writer.end_chunk()
    writer.begin_chunk([3, 4, 5])  # the worker is killed before the chunk ends
    for i in (3, 4):
        writer.write(i, float(i))
    (out / "f_payload" / f".f_3{SHARD_SUFFIX}.0123456789ab.partial").write_bytes(b"half")
    (out / "f_payload" / f"f_5{SHARD_SUFFIX}").write_bytes(b"")  # a node crash's empty file
    (out / "f_payload" / f"f_6{SHARD_SUFFIX}").write_bytes(b"PK\x03\x04 cut short")
    (out / "f_payload" / f"f_60{SHARD_SUFFIX}").write_bytes(b"")  # beyond n_calls: not ours
    assert sorted(store.existing()) == [0, 1, 2]
    store.finalize([None] * 10, set())
    assert not [p for p in out.rglob("*") if is_partial(p.name)]


def test_a_rerun_of_a_shards_first_call_keeps_its_other_calls(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    store = ZarrStore(shard_calls="rows")
    store.prepare(RunInfo(func_name="f", n_calls=5, output_dir=out))
    writer = store.writer()
    writer.begin_chunk([0, 1, 2, 3, 4])
    refs = [writer.write(i, v) for i, v in enumerate([0.0, 1.0, 2.0, "three", 4.0])]
    writer.end_chunk()
    writer.begin_chunk([0])  # a retry of call 0 alone: the same shard name
    refs[0] = writer.write(0, np.arange(2))  # another signature than the block's
    writer.end_chunk()
    store.finalize(refs, set())
    manifest = {"func_name": "f", "n_calls": 5, "store": "zarr", "finished": [[0, 4]]}
    read = ZarrStore.read(out, manifest)
    assert_same(read[0], np.arange(2))
    assert floats(read[i] for i in (1, 2, 4)) == [1.0, 2.0, 4.0]
    assert_same(read[3], np.array(["three"], dtype=object))
    assert len(shard_files(out)) == 1


def test_a_rerun_pickled_call_then_in_a_shard_reads_from_the_shard(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    store = ZarrStore(shard_calls="rows")
    store.prepare(RunInfo(func_name="f", n_calls=2, output_dir=out))
    writer = store.writer()
    writer.begin_chunk([0, 1])
    refs = [writer.write(0, {"a": 1}), writer.write(1, 1.0)]
    writer.end_chunk()
    assert refs[0].endswith(".pickle") and os.path.exists(refs[0])
    writer.begin_chunk([0])
    refs[0] = writer.write(0, 5.0)
    writer.end_chunk()
    assert not (out / "f_0.pickle").exists()
    assert sorted(store.existing()) == [0, 1]
    manifest = {"func_name": "f", "n_calls": 2, "store": "zarr", "finished": [[0, 1]]}
    assert floats(ZarrStore.read(out, manifest)) == [5.0, 1.0]


def test_option_values_and_auto(tmp_path):
    def info(n: int, shape: Any = None) -> RunInfo:
        full = None if shape is None else tuple(n if s is None else s for s in shape)
        return RunInfo("f", n, tmp_path, full, None if shape is None else np.dtype("f8"),
                       None if shape is None else 0)

    auto = ZarrStore(shard_calls="auto")
    assert not auto.rows(info(SHARD_AUTO_CALLS - 1)) and auto.rows(info(SHARD_AUTO_CALLS))
    assert not auto.rows(info(10 ** 6, (None, 3)))  # the sharded result_0 instead
    assert auto.block_calls(info(10 ** 6, (None, 3))) is not None
    assert auto.rows(info(10 ** 6, (None, np.inf)))  # np.inf: zip shards too
    assert not auto.rows(info(10 ** 3, (None, np.inf)))
    for value in (True, "rows"):
        assert ZarrStore(shard_calls=value).rows(info(10))
        assert ZarrStore(shard_calls=value).rows(info(10, (None, np.inf)))
        assert ZarrStore(shard_calls=value).block_calls(info(10 ** 4, (None, 3))) is not None
    assert ZarrStore().shard_calls == "auto"  # the default
    assert ZarrStore().rows(info(10 ** 6)) and not ZarrStore().rows(info(10))
    assert not ZarrStore(shard_calls=False).rows(info(10 ** 6))


@pytest.mark.parametrize(("value", "shape"), [("Rows", None), (5, None), (5, (None, np.inf)),
                                              (None, None)])
def test_refused_before_anything_is_written(tmp_path, value, shape):
    out = tmp_path / "run"
    options = {} if shape is None else {"result_shape": shape}
    with pytest.raises(ArgumentValueError, match=r"store_options\['shard_calls'\]") as info:
        ParallelMap(fails_on_three, list(range(4)), output_dir=str(out), store="zarr",
                    store_options={"shard_calls": value}, logfile=False, progress=False,
                    **options)
    assert info.value.parameter == "store_options"
    assert not out.exists()


def fails_on_three(i: int) -> float:
    if i == 3:
        raise ValueError("cannot handle 3")
    return float(i)


def test_inspect_and_open_results_report_per_call(client, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ParallelMapError):
        run(out, fails_on_three, 12, "rows", retries=0)
    done = subprocess.run([sys.executable, "-m", "acme_core.cli", "inspect", "--json", str(out)],
                          capture_output=True, text=True, timeout=120)
    state = json.loads(done.stdout)
    assert state["done"] == 11 and list(state["failed"]) == ["3"] and state["missing"] == []
    values = open_results(out)
    assert values[3] is None
    assert floats(v for i, v in enumerate(values) if i != 3) == [float(i) for i in range(12)
                                                                 if i != 3]


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_shard_blocks_are_compressed_as_the_store_says(client, tmp_path, compression):
    with ParallelMap(np.full, 3, list(range(40)), output_dir=str(tmp_path / "run"), store="zarr",
                     store_options={"shard_calls": "rows", "compression": compression},
                     logfile=False, progress=False) as pmap:
        pmap.compute()
    assert shard_files(tmp_path / "run")
    for path in shard_files(tmp_path / "run"):
        group = zarr.open_group(zarr.storage.ZipStore(path, mode="r"), mode="r")
        names = [type(c).__name__ for c in group["acme_block/result_0"].compressors]
        assert names == [f"{compression.capitalize()}Codec"]
    values = open_results(tmp_path / "run")
    assert [list(np.asarray(v).ravel()) for v in values] == [[i] * 3 for i in range(40)]


def test_debug_runs_write_shards(tmp_path):
    """``debug=True`` hands the writer pieces of calls: a few shards, read back alike."""
    with ParallelMap(np.negative, list(range(30)), output_dir=str(tmp_path / "run"),
                     store="zarr", store_options={"shard_calls": "rows"}, logfile=False,
                     progress=False) as pmap:
        pmap.compute(debug=True)
    assert 1 <= len(shard_files(tmp_path / "run")) <= 3
    assert [int(np.ravel(v)[0]) for v in open_results(tmp_path / "run")] == [
        -i for i in range(30)]


def slot_and_extras(i: int) -> Any:
    """A stacked slot, a scalar extra and a ragged extra (a comp group in the zip)."""
    return np.arange(3.0) + i, np.int32(i), np.arange(i % 3)


def test_extras_of_a_sharded_stacked_run_are_zip_rows(client, tmp_path):
    options = {"result_shape": (None, 3), "chunk_size": 5}
    for where, layout in (("calls", False), ("shards", True)):
        run(tmp_path / where, slot_and_extras, 30, layout, **options)
    per_call, sharded = open_results(tmp_path / "calls"), open_results(tmp_path / "shards")
    assert len(per_call) == len(sharded) == 1 + 2 * 30
    for a, b in zip(per_call, sharded, strict=True):
        assert_same(a, b)
    container = tmp_path / "shards" / "slot_and_extras.zarr"
    assert not [p for p in container.iterdir() if p.name.startswith("comp_")]
    zips = shard_files(tmp_path / "shards")
    assert 0 < len(zips) <= 6
    group = zarr.open_group(zarr.storage.ZipStore(zips[0], mode="r"), mode="r")
    ids = group["acme_ids"][...].tolist()
    assert group["acme_block/result_1"][...].tolist() == ids
    assert "acme_block/result_2" not in group or group["acme_block/result_2"].shape[0] == len(ids)


def test_extras_of_one_block_written_by_several_tasks_share_its_zip(client, tmp_path):
    """Blocks of 20 calls, tasks of 5: each block's four tasks merge into one zip."""
    options = {"result_shape": (None, 3), "chunk_size": 5}
    run(tmp_path / "calls", slot_and_extras, 40, False, **options)
    run(tmp_path / "shards", slot_and_extras, 40, 20, **options)
    for a, b in zip(open_results(tmp_path / "calls"), open_results(tmp_path / "shards"),
                    strict=True):
        assert_same(a, b)
    zips = shard_files(tmp_path / "shards")
    assert [p.name for p in zips] == ["slot_and_extras_0.zarr.zip", "slot_and_extras_20.zarr.zip"]
    group = zarr.open_group(zarr.storage.ZipStore(zips[1], mode="r"), mode="r")
    held = group["acme_ids"][...].tolist() + [int(k[5:]) for k in group if k.startswith("comp_")]
    assert sorted(held) == list(range(20, 40))  # rows, and groups for the ragged extras


def ragged(i: int) -> Any:
    """np.inf results: lengths 1-4 (calls 0-3 of a task of 4 differ), call 9 fails."""
    if i == 9:
        raise ValueError("call 9 fails")
    return np.arange(1.0, i % 4 + 2) * i, np.int32(i)


def same_length(i: int) -> Any:
    return np.full((2, 3), float(i))


@pytest.mark.parametrize(("func", "shape", "chunk_size"),
                         [(ragged, (None, np.inf), 4), (ragged, (np.inf, None), 1),
                          (same_length, (2, None, np.inf), 5)])
def test_an_inf_axis_in_zip_shards_reads_as_per_call_chunks(client, tmp_path, func, shape,
                                                             chunk_size):
    from stacked_cases import assert_same_stacked

    per_call, rows = per_call_and_rows(tmp_path, func, shape, chunk_size, fails=func is ragged)
    assert_same_stacked(per_call, rows)
    assert not (tmp_path / "rows" / f"{func.__name__}.zarr" / "result_0").exists()
    assert 0 < len(shard_files(tmp_path / "rows")) <= 20
    assert Manifest.load(tmp_path / "rows").finished == Manifest.load(tmp_path / "calls").finished


def ragged_killed_once(i: int, marker: str, flag: str) -> Any:
    """np.inf results; call 7 kills its worker once (mid-shard), call 13 fails until ``flag``."""
    if i == 13 and not os.path.exists(flag):
        raise ValueError("call 13 fails this time")
    die_once(i, marker)
    return np.arange(1.0, i % 3 + 2) * i


def test_an_inf_axis_in_zip_shards_resumes_per_call(client, tmp_path):
    out, marker, flag = tmp_path / "run", str(tmp_path / "died"), str(tmp_path / "flag")
    options = {"result_shape": (None, np.inf), "chunk_size": 4}
    with pytest.raises(ParallelMapError):
        run(out, ragged_killed_once, 30, "rows", marker, flag, retries=0, **options)
    assert os.path.exists(marker)
    partial = open_results(out)
    assert partial.mask[:, 0].tolist() == [i == 13 for i in range(30)]
    Path(flag).touch()
    run(out, ragged_killed_once, 30, "rows", marker, flag, resume=True, **options)
    values = open_results(out)
    assert values.shape == (30, 3) and not np.ma.is_masked(values)
    for i in range(30):
        expected = np.arange(1.0, i % 3 + 2) * i
        np.testing.assert_array_equal(values[i, :len(expected)], expected)
        assert not values[i, len(expected):].any()  # padded with 0
    assert not [p for p in out.rglob("*") if is_partial(p.name)]


def half(i: int) -> float:
    return i / 2


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_many_calls_in_zip_shards(client, tmp_path):
    # the 200,000 calls in CI within a minute, in zip shards ("auto" from 10,000
    # calls); the rate is measured in benchmarks/README.md, never asserted
    n = 200_000
    out = tmp_path / "run"
    run(out, half, n, "auto")
    assert len(shard_files(out)) <= n // 1000
    assert [p.name for p in (out / "half.zarr").iterdir()] == ["zarr.json"]
    values = open_results(out)
    assert len(values) == n and float(values[-1][0]) == (n - 1) / 2


def test_a_pickling_codec_in_a_shard_is_not_read(tmp_path):
    from acme_storage.zarr.zips import ZipGroup, write_zip

    entries = _through_zarr("comp_0/result_0", np.array(["a"], dtype=object), True, None, None)
    meta = json.loads(entries["comp_0/result_0/zarr.json"])
    meta["codecs"] = [{"name": "numcodecs.pickle", "configuration": {}}]
    entries["comp_0/result_0/zarr.json"] = json.dumps(meta).encode()
    path = str(tmp_path / f"f_0{SHARD_SUFFIX}")
    write_zip(path, {"zarr.json": GROUP_JSON, "comp_0/zarr.json": GROUP_JSON, **entries})
    with ZipGroup(path) as z, pytest.raises(ValueError, match="pickling codec"):
        z.value("comp_0/result_0")


# -- padded ragged rows: an np.inf axis whose lengths differ within a task -----------------

def ragged_1d(i: int) -> Any:
    """Floats of lengths 0-4 (call 9 fails): a task of 5 pads to 4, at most twice its bytes."""
    if i == 9:
        raise ValueError("call 9 fails")
    return np.arange(i % 5, dtype=np.float64) * i + 0.5, np.int32(i)


def ragged_2d(i: int) -> Any:
    """int32 slots of shape (0-3, 3): the np.inf axis is not the slot's last."""
    return np.full((i % 4, 3), i, dtype=np.int32) + np.arange(3, dtype=np.int32)


def zip_groups(path: Path) -> Any:
    return zarr.open_group(zarr.storage.ZipStore(path, mode="r"), mode="r")


@pytest.mark.parametrize(("func", "shape", "chunk_size"),
                         [(ragged_1d, (None, np.inf), 5), (ragged_2d, (None, np.inf, 3), 4),
                          (ragged_2d, (np.inf, 3, None), 4)])
def test_ragged_rows_are_padded_and_read_as_per_call(client, tmp_path, func, shape,
                                                     chunk_size):
    from stacked_cases import assert_same_stacked

    per_call, rows = per_call_and_rows(tmp_path, func, shape, chunk_size,
                                       fails=func is ragged_1d)
    assert_same_stacked(per_call, rows)
    assert Manifest.load(tmp_path / "rows").finished == Manifest.load(tmp_path / "calls").finished
    for path in shard_files(tmp_path / "rows"):  # one padded block each, no group per call
        group = zip_groups(path)
        assert not [k for k in group.group_keys() if k.startswith("comp_")]
        ids, extent = group["acme_ids"][...], group["acme_block/acme_extent"][...]
        slots = group["acme_block/result_0"][...]
        assert extent.shape == ids.shape and slots.shape[1] == extent.max()
        for j, i in enumerate(ids.tolist()):
            assert extent[j] == i % (5 if func is ragged_1d else 4)
            assert not slots[j, extent[j]:].any()  # padded with 0


def ragged_writer(tmp_path: Path, n: int, **options: Any) -> tuple[Path, ZarrStore, Any]:
    out = tmp_path / "run"
    out.mkdir(exist_ok=True)
    store = ZarrStore(shard_calls="rows", **options)
    store.prepare(RunInfo(func_name="f", n_calls=n, output_dir=out, result_shape=(n, np.inf),
                          stacking_dim=0, resume=True))
    return out, store, store.writer()


def write_task(writer: Any, values: dict[int, Any]) -> list[Any]:
    writer.begin_chunk(sorted(values))
    refs = [writer.write(i, v) for i, v in sorted(values.items())]
    writer.end_chunk()
    return refs


def read_ragged(out: Path, n: int) -> Any:
    manifest = {"func_name": "f", "n_calls": n, "store": "zarr", "finished": [[0, n - 1]],
                "result_shape": [None, float("inf")], "stacking_dim": 0,
                "result_dtype": "float64"}
    return ZarrStore.read(out, manifest)


def test_padding_at_most_doubles_a_block_the_longest_calls_get_groups(tmp_path):
    lengths = [1, 0, 2, 2, 50, 1, 3]  # padded to 3: 6 x 3 values for 9 of their own
    out, store, writer = ragged_writer(tmp_path, len(lengths))
    values = {i: np.arange(n, dtype=np.float64) + i for i, n in enumerate(lengths)}
    refs = write_task(writer, values)
    store.finalize(refs, set())
    group = zip_groups(shard_files(out)[0])
    assert sorted(k for k in group.group_keys() if k.startswith("comp_")) == ["comp_4"]
    assert group["acme_ids"][...].tolist() == [0, 1, 2, 3, 5, 6]
    assert group["acme_block/acme_extent"][...].tolist() == [1, 0, 2, 2, 1, 3]
    assert group["acme_block/result_0"].shape == (6, 3)  # 50 among them: 7 x 50 for 59
    read = read_ragged(out, len(lengths))
    assert read.shape == (7, 50) and not np.ma.is_masked(read)
    for i, n in enumerate(lengths):
        np.testing.assert_array_equal(read[i, :n], values[i])
        assert not read[i, n:].any()


def test_a_task_of_empty_results_is_a_block_of_length_0(tmp_path):
    out, store, writer = ragged_writer(tmp_path, 3)
    refs = write_task(writer, {i: np.zeros(0) for i in range(3)})
    store.finalize(refs, set())
    group = zip_groups(shard_files(out)[0])
    assert group["acme_block/acme_extent"][...].tolist() == [0, 0, 0]
    read = read_ragged(out, 3)
    assert read.shape == (3, 0) and not np.ma.getmaskarray(read).any()  # as per call


def test_a_compressed_ragged_block_reads_back(tmp_path):
    lengths = [3, 0, 2, 4]
    out, store, writer = ragged_writer(tmp_path, 4, compression="zstd")
    values = {i: np.arange(n, dtype=np.float64) + 1 for i, n in enumerate(lengths)}
    store.finalize(write_task(writer, values), set())
    group = zip_groups(shard_files(out)[0])
    assert [type(c).__name__ for c in group["acme_block/result_0"].compressors] == ["ZstdCodec"]
    read = read_ragged(out, 4)
    for i, n in enumerate(lengths):
        np.testing.assert_array_equal(read[i, :n], values[i])
        assert not read[i, n:].any()


def tampered(path: Path, extent: np.ndarray) -> None:
    from acme_storage.zarr.zips import ZipGroup, write_zip

    with ZipGroup(str(path)) as z:
        entries = {name: z.read(name) for name in z.names
                   if not name.startswith("acme_block/acme_extent/")}
    entries.update(array_entries("acme_block/acme_extent", extent, False, None))
    write_zip(str(path), entries)


@pytest.mark.parametrize("extent", [[1, 2, 4, 2], [1, -1, 3, 2], [1, 2, 3], [1, 2, 3, 2, 1],
                                    [1.0, 2.0, 3.0, 2.0], [[1, 2, 3, 2]]])
def test_a_shard_whose_extent_does_not_check_out_holds_nothing(tmp_path, extent):
    lengths = [1, 2, 3, 2]
    out, store, writer = ragged_writer(tmp_path, 4)
    values = {i: np.arange(n, dtype=np.float64) + 1 for i, n in enumerate(lengths)}
    refs = write_task(writer, values)
    assert sorted(store.existing()) == [0, 1, 2, 3]
    tampered(shard_files(out)[0], np.array(extent))
    assert store.existing() == {}  # its calls run again
    assert np.ma.getmaskarray(read_ragged(out, 4)).all()
    refs = write_task(writer, values)  # the rerun replaces the shard
    store.finalize(refs, set())
    read = read_ragged(out, 4)
    assert sorted(store.existing()) == [0, 1, 2, 3] and not np.ma.is_masked(read)
    for i, n in enumerate(lengths):
        np.testing.assert_array_equal(read[i, :n], values[i])


def test_a_rerun_of_a_ragged_shards_first_call_keeps_the_others_lengths(tmp_path):
    out, store, writer = ragged_writer(tmp_path, 4)
    refs = write_task(writer, {i: np.arange(i + 1, dtype=np.float64) + 1 for i in range(4)})
    refs[0] = write_task(writer, {0: np.full(3, 7.0)})[0]  # a retry of call 0 alone
    store.finalize(refs, set())
    assert len(shard_files(out)) == 1
    read = read_ragged(out, 4)
    np.testing.assert_array_equal(np.ma.getdata(read), [[7, 7, 7, 0], [1, 2, 0, 0],
                                                         [1, 2, 3, 0], [1, 2, 3, 4]])


def test_a_tampered_shard_of_a_run_runs_again_on_resume(client, tmp_path):
    from stacked_cases import assert_same_stacked

    options = {"result_shape": (None, np.inf), "chunk_size": 5}
    out = tmp_path / "run"
    with pytest.raises(ParallelMapError):
        run(out, ragged_1d, 20, "rows", retries=0, **options)
    before = open_results(out)
    path = out / "ragged_1d_payload" / f"ragged_1d_10{SHARD_SUFFIX}"
    tampered(path, np.array([0, 1, 2, 9, 4]))  # 9: beyond the padded length
    assert np.ma.getmaskarray(open_results(out)[0])[10:15].all()  # [0]: without extras
    with pytest.raises(ParallelMapError):  # call 9 fails again; 10-14 run again
        run(out, ragged_1d, 20, "rows", resume=True, retries=0, **options)
    assert_same_stacked(before, open_results(out))


def test_a_slot_that_does_not_fit_the_result_shape_is_missing_not_an_error(tmp_path):
    from acme_storage.zarr.rows import write_shard

    out, store, writer = ragged_writer(tmp_path, 2)  # prepared as (2, np.inf): the container
    payload = out / "f_payload"
    payload.mkdir(exist_ok=True)
    write_shard(str(payload / f"f_0{SHARD_SUFFIX}"), [(0, {"result_0": (np.ones((2, 5)), False)}),
                                                      (1, {"result_0": (np.ones((1, 3)), False)})],
                None, None)
    manifest = {"func_name": "f", "n_calls": 2, "store": "zarr", "finished": [[0, 1]],
                "result_shape": [None, float("inf"), 3], "stacking_dim": 0,
                "result_dtype": "float64"}
    read = ZarrStore.read(out, manifest)  # (2, 5) does not fit (., 3): call 0 is missing
    assert read.shape == (2, 2, 3) and np.ma.getmaskarray(read)[:, 0, 0].tolist() == [True, False]


def ragged_outlier(i: int) -> Any:
    """Lengths 1-4, and call 6 of 200: its task's block would be 4 x 200 for 207 values."""
    return np.arange(200 if i == 6 else i % 4 + 1, dtype=np.float32) + i


def test_a_huge_call_among_tiny_ones_gets_a_group_and_reads_as_per_call(client, tmp_path):
    from stacked_cases import assert_same_stacked

    options = {"result_shape": (None, np.inf), "chunk_size": 4}
    for where, layout in (("calls", False), ("rows", "rows")):
        run(tmp_path / where, ragged_outlier, 12, layout, **options)
    per_call, rows = open_results(tmp_path / "calls"), open_results(tmp_path / "rows")
    assert_same_stacked(per_call, rows)
    assert rows.shape == (12, 200)
    payload = tmp_path / "rows" / "ragged_outlier_payload"
    group = zip_groups(payload / f"ragged_outlier_4{SHARD_SUFFIX}")
    assert [k for k in group.group_keys() if k.startswith("comp_")] == ["comp_6"]
    assert group["acme_ids"][...].tolist() == [4, 5, 7]
    assert group["acme_block/result_0"].shape == (3, 4)  # 12 for 7 values: at most twice
