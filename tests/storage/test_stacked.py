"""Stacked results (``result_shape``) and the stores that hold them, on a real dask cluster.

Every store (hdf5, hdf5-single, zarr, memory) runs the same functions; what
``open_results`` reads back from disk, and what the memory store returns, is
compared value by value with ACME's in-memory result built by hand
(:func:`expected`). Files are read back with h5py / zarr directly too.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import shutil
import time

import h5py
import numpy as np
import pytest

from acme_core import ParallelMap, ParallelMapError, open_results
from acme_core.store import RunInfo
from acme_storage.hdf5.single import WRITTEN_ATTR, HDF5SingleStore
from acme_storage.memory import MemoryStore
from acme_storage.zarr.store import EXTENT, ZarrStore

zarr = pytest.importorskip("zarr")

pytestmark = pytest.mark.usefixtures("client")

DISK_STORES = ["hdf5", "hdf5-single", "zarr"]
N = 12


# -- functions the workers run (module level: importable there) ----------------------
def vec3(x):
    return np.arange(3) * x + 0.5


def ragged(x):
    """Results of different lengths for the np.inf axis."""
    return np.arange(x % 5 + 1, dtype=float) + x


def ragged_rows(x):
    return np.ones((x % 4 + 1, 2)) * x


def several(x):
    return np.full(3, float(x)), x * 2, np.eye(2) * x


def ints(x):
    return np.arange(4) * x


def in_middle(x):
    return np.arange(6).reshape(3, 2) * x


def zero_or_fail(x, marker):
    if x == 2 and not os.path.exists(marker):
        raise ValueError("no marker")
    return np.zeros(3) if x == 0 else np.full(3, float(x))


def with_pid(x, meet):
    """Return the process id; hold the first calls until a second process has run one.

    On a loaded machine one worker can take every short task before the other
    asks for work; waiting (60 s at most) in a meeting directory makes both
    workers write, which is what the tests that use this function check. After
    the wait a marker file lets the remaining calls through at once.
    """
    open(os.path.join(meet, str(os.getpid())), "w").close()
    deadline = time.monotonic() + 60
    while len(os.listdir(meet)) < 2:
        if time.monotonic() > deadline:
            open(os.path.join(meet, "gave-up"), "w").close()
        time.sleep(0.01)
    return np.full(1000, float(x)), os.getpid()


def unstorable(x):
    return {"x": x} if x % 2 else np.arange(2) * x


# (id, function, result_shape, result_dtype)
CASES = [
    ("no-shape", vec3, None, "float"),
    ("finite", vec3, (None, 3), "float"),
    ("inf", ragged, (None, np.inf), "float"),
    ("inf-2d", ragged_rows, (np.inf, None, 2), "float"),
    ("middle", in_middle, (3, None, 2), "float"),
    ("several", several, (None, 3), "float"),
    ("several-no-shape", several, None, "float"),
    ("dtype", ints, (None, 4), "int16"),
]


def run(func, store, shape=None, dtype="float", out=None, **kwargs):
    write = store != "memory"
    with ParallelMap(func, list(range(N)), result_shape=shape, result_dtype=dtype,
                     store=store if write else None, write_worker_results=write,
                     output_dir=out if write else None, progress=False, verbose=False,
                     **kwargs) as pmap:
        return pmap.compute(), pmap.results_container


def expected(func, shape, dtype):
    """ACME's in-memory result, built by hand (not by a store under test).

    Without ``result_shape``: every call's return value. With it: the calls'
    first return values stacked along the ``None`` axis (shorter ones padded with
    zeros along an ``np.inf`` axis), then every call's extra return values, flat.
    """
    values = [func(i) for i in range(N)]
    if shape is None:
        return values
    items = [v if isinstance(v, tuple) else (v,) for v in values]
    firsts = [np.asarray(t[0]) for t in items]
    dim = list(shape).index(None)
    for inf in (k for k, s in enumerate(shape) if s is not None and np.isinf(s)):
        axis = inf - (inf > dim)
        longest = max(r.shape[axis] for r in firsts)
        for k, r in enumerate(firsts):
            pad = [(0, 0)] * r.ndim
            pad[axis] = (0, longest - r.shape[axis])
            firsts[k] = np.pad(r, pad)
    stacked = np.stack(firsts, axis=dim).astype(dtype)
    extras = [extra for t in items for extra in t[1:]]
    return [stacked, *extras] if extras else stacked


def assert_same(got, want):
    """Value by value, including dtypes of stacked arrays; no slot may be masked."""
    if isinstance(want, (list, tuple)):
        assert isinstance(got, (list, tuple)) and len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert_same(g, w)
        return
    if isinstance(want, np.ndarray) and want.ndim > 1:
        assert not np.ma.is_masked(got)
        assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


@pytest.mark.parametrize("store", [*DISK_STORES, "memory"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_round_trip_matches_in_memory_result(in_tmp, store, case):
    _, func, shape, dtype = case
    if store == "memory" and shape is not None and any(np.isinf(s) for s in shape if s):
        # ACME: an unlimited axis exists only on disk; refused before anything runs
        with pytest.raises(ValueError, match="`np.inf` in `result_shape` is only valid if"):
            run(func, store, shape, dtype)
        return
    want = expected(func, shape, dtype)
    results, container = run(func, store, shape, dtype, out="run")
    if store == "memory":
        assert_same(results, want)
        return
    assert_same(open_results(in_tmp / "run"), want)
    if container is not None:  # the container path reads the same
        assert_same(open_results(container), want)
    if store == "hdf5-single":
        assert results == [str(in_tmp / "run" / f"{func.__name__}.h5")] == [container]
    else:
        assert len(results) == N


@pytest.mark.parametrize("store", [*DISK_STORES, "memory"])
def test_acceptance_same_n_by_3_array_for_every_store(in_tmp, store):
    results, _ = run(vec3, store, (None, 3), out="run")
    got = results if store == "memory" else open_results(in_tmp / "run")
    assert isinstance(got, np.ndarray) and not np.ma.isMaskedArray(got)
    np.testing.assert_array_equal(got, np.stack([vec3(i) for i in range(N)]))


@pytest.mark.parametrize("store", DISK_STORES)
@pytest.mark.parametrize("shape", [(None, 3), (None, np.inf), None], ids=["finite", "inf", "none"])
def test_moved_run_directory_still_reads(in_tmp, store, shape):
    func = ragged if shape == (None, np.inf) else vec3
    run(func, store, shape, out="run")
    want = open_results(in_tmp / "run")
    shutil.copytree(in_tmp / "run", in_tmp / "elsewhere" / "copy")
    shutil.rmtree(in_tmp / "run")  # nothing may point back into the old place
    got = open_results(in_tmp / "elsewhere" / "copy")
    assert_same(got, want)


@pytest.mark.parametrize("store", DISK_STORES)
def test_unwritten_slot_is_masked_and_resume_fills_it(in_tmp, store):
    marker = str(in_tmp / "marker")
    with pytest.raises(ParallelMapError) as info:
        run(zero_or_fail, store, (None, 3), out="run", marker=marker)
    assert set(info.value.failed) == {2}
    got = open_results(in_tmp / "run")
    assert np.ma.isMaskedArray(got)
    # the failed call's slot is masked; call 0 wrote real zeros and is not
    assert got.mask[2].all() and not got.mask[0].any() and not got.mask[3:].any()
    np.testing.assert_array_equal(got.data[0], np.zeros(3))
    np.testing.assert_array_equal(got[3:], np.stack([np.full(3, float(x)) for x in range(3, N)]))

    open(marker, "w").close()
    run(zero_or_fail, store, (None, 3), out="run", marker=marker, resume=True)
    got = open_results(in_tmp / "run")
    assert not np.ma.isMaskedArray(got)
    np.testing.assert_array_equal(got[2], np.full(3, 2.0))
    np.testing.assert_array_equal(got[0], np.zeros(3))


def test_memory_store_masks_failed_slots():
    mem = MemoryStore()
    mem.prepare(RunInfo("f", 3, None, result_shape=(3, 2), result_dtype=np.dtype(float),
                        stacking_dim=0))
    got = mem.finalize([np.zeros(2), None, np.ones(2)], failed={1})
    assert np.ma.isMaskedArray(got)
    assert got.mask[1].all() and not got.mask[0].any()
    np.testing.assert_array_equal(got.data[0], np.zeros(2))


def test_single_file_flag_writes_only_the_container(in_tmp):
    with ParallelMap(vec3, list(range(N)), single_file=True, output_dir="run",
                     progress=False) as pmap:
        results = pmap.compute()
    container = in_tmp / "run" / "vec3.h5"
    assert results == [str(container)] == [pmap.results_container]
    names = sorted(os.listdir(in_tmp / "run"))
    assert [n for n in names if not n.startswith("ACME_")] == ["acme_manifest.json", "vec3.h5"]
    with h5py.File(container, "r") as h5f:
        assert sorted(h5f.keys()) == sorted(f"comp_{i}" for i in range(N))
        for i in range(N):
            np.testing.assert_array_equal(h5f[f"comp_{i}"]["result_0"][()], vec3(i))


def test_single_file_many_workers_leave_a_valid_file_with_every_slot(in_tmp):
    """Calls run one per task on both worker processes; the file is complete and valid."""
    (in_tmp / "meet").mkdir()
    results, _ = run(with_pid, "hdf5-single", (None, 1000), out="run", chunk_size=1,
                     meet=str(in_tmp / "meet"))
    with h5py.File(results[0], "r") as h5f:
        data = h5f["result_0"][()]
        pids = {int(h5f[f"comp_{i}"]["result_1"][()]) for i in range(N)}
        assert json.loads(h5f.attrs[WRITTEN_ATTR]) == [[0, N - 1]]
    np.testing.assert_array_equal(data, np.repeat(np.arange(N, dtype=float)[:, None], 1000, 1))
    assert len(pids) >= 2  # really written from several processes
    assert not (in_tmp / "run" / "with_pid_staging").exists()


def test_single_file_unstorable_value_fails_the_call(in_tmp):
    with pytest.raises(ParallelMapError) as info:
        run(unstorable, "hdf5-single", out="run")
    assert set(info.value.failed) == {i for i in range(N) if i % 2}
    assert isinstance(info.value.failed[1], TypeError)
    got = open_results(in_tmp / "run")
    assert [g is None for g in got] == [bool(i % 2) for i in range(N)]


def test_zarr_pickles_what_it_cannot_hold(in_tmp):
    results, _ = run(unstorable, "zarr", out="run")
    for i in range(N):
        if i % 2:
            assert results[i] == str(in_tmp / "run" / f"unstorable_{i}.pickle")
            with open(results[i], "rb") as fh:
                assert pickle.load(fh) == [{"x": i}]  # ACME's emergency pickle: [value]
        else:
            assert results[i] == str(in_tmp / "run" / "unstorable.zarr" / f"comp_{i}")
    got = open_results(in_tmp / "run")
    assert got[1] == {"x": 1}
    np.testing.assert_array_equal(got[4], np.arange(2) * 4)


def test_zarr_stacked_workers_write_their_own_chunks(in_tmp):
    (in_tmp / "meet").mkdir()
    results, container = run(with_pid, "zarr", (None, 1000), out="run", chunk_size=1,
                             meet=str(in_tmp / "meet"))
    group = zarr.open_group(container, mode="r")
    array = group["result_0"]
    assert array.chunks == (1, 1000)  # one call per chunk: no writer shares a chunk
    np.testing.assert_array_equal(array[...], np.repeat(np.arange(N, dtype=float)[:, None],
                                                        1000, 1))
    chunk_files = sorted(os.listdir(os.path.join(container, "result_0")))
    assert chunk_files == sorted([f"c.{i}.0" for i in range(N)] + ["zarr.json"])
    pids = {int(group[f"comp_{i}"]["result_1"][...]) for i in range(N)}
    assert len(pids) >= 2
    assert results == [str(in_tmp / "run" / "with_pid.zarr" / "result_0")] * N


def test_zarr_inf_axis_is_sized_to_the_longest_result(in_tmp):
    _, container = run(ragged, "zarr", (None, np.inf), out="run")
    array = zarr.open_array(os.path.join(container, "result_0"), mode="r")
    assert array.shape == (N, 5)
    np.testing.assert_array_equal(zarr.open_array(os.path.join(container, EXTENT))[...],
                                  [i % 5 + 1 for i in range(N)])


def test_store_options_reach_the_files(in_tmp):
    _, container = run(vec3, "hdf5-single", (None, 3), out="h5",
                       store_options={"compression": "gzip", "locking": False})
    with h5py.File(container, "r") as h5f:
        assert h5f["result_0"].compression == "gzip"
        assert h5f["result_0"].chunks == (1, 3)
    _, container = run(vec3, "hdf5-single", None, out="h5g",
                       store_options={"compression": "gzip", "compression_opts": 9})
    with h5py.File(container, "r") as h5f:
        assert h5f["comp_3"]["result_0"].compression == "gzip"
    _, container = run(vec3, "zarr", (None, 3), out="zf", store_options={"compression": "gzip"})
    assert_same(open_results(container), expected(vec3, (None, 3), "float"))
    meta = json.loads((in_tmp / "zf" / "vec3.zarr" / "result_0" / "zarr.json").read_text())
    assert "gzip" in [c["name"] for c in meta["codecs"]]
    _, container = run(ragged_rows, "zarr", (np.inf, None, 2), out="z",
                       store_options={"compression": "zstd", "chunks": (2, 1)})
    meta = json.loads((in_tmp / "z" / "ragged_rows.zarr" / "result_0" / "zarr.json").read_text())
    assert meta["chunk_grid"]["configuration"]["chunk_shape"] == [2, 1, 1]
    assert "zstd" in [c["name"] for c in meta["codecs"]]
    assert_same(open_results(container), expected(ragged_rows, (np.inf, None, 2), "float"))


@pytest.mark.parametrize("store, options", [("zarr", {"compression": "snappy"}),
                                            ("zarr", {"chunks": (0,)}),
                                            ("hdf5-single", {"locking": "no"}),
                                            ("hdf5-single", {"compression": "gzipp"})])
def test_bad_store_options_fail_before_anything_is_written(in_tmp, store, options):
    with pytest.raises(ValueError, match="store_options|compression|chunks|locking"):
        ParallelMap(vec3, list(range(N)), store=store, store_options=options)
    assert os.listdir(in_tmp) == []


def test_wrong_result_shape_fails_the_call_not_the_file(in_tmp):
    for store in ("hdf5-single", "zarr"):
        with pytest.raises(ParallelMapError, match="does not fit `result_shape`"):
            run(vec3, store, (None, 4), out=f"run-{store}")
        got = open_results(in_tmp / f"run-{store}")
        assert np.ma.isMaskedArray(got) and got.mask.all()


# -- many real processes writing one store, without dask -------------------------------
def _write_slots(args):
    writer, ids, barrier_path, n_procs = args
    # start together, so the writes really overlap
    open(f"{barrier_path}.{os.getpid()}", "w").close()
    while len([p for p in os.listdir(os.path.dirname(barrier_path))
               if p.startswith(os.path.basename(barrier_path) + ".")]) < n_procs:
        time.sleep(0.001)
    for i in ids:
        writer.write(i, (np.full((4, 256), float(i)), i * 3))
    return os.getpid()


@pytest.mark.parametrize("store_cls", [HDF5SingleStore, ZarrStore])
def test_many_processes_write_concurrently(tmp_path, store_cls):
    n, procs = 48, 3
    store = store_cls()
    store.prepare(RunInfo("f", n, tmp_path / "run", result_shape=(4, n, 256),
                          result_dtype=np.dtype(float), stacking_dim=1))
    (tmp_path / "sync").mkdir()
    writer = store.writer()
    jobs = [(writer, list(range(k, n, procs)), str(tmp_path / "sync" / "go"), procs)
            for k in range(procs)]
    with multiprocessing.get_context("spawn").Pool(procs) as pool:
        pids = pool.map(_write_slots, jobs)
    assert len(set(pids)) == procs
    refs = [str(tmp_path)] * n
    store.finalize(refs, set())
    manifest = {"func_name": "f", "n_calls": n, "store": store.name, "finished": [[0, n - 1]],
                "result_shape": [4, None, 256], "stacking_dim": 1, "result_dtype": "float64"}
    got = store_cls.read(tmp_path / "run", manifest)
    data, extras = got[0], got[1:]
    assert not np.ma.isMaskedArray(data)
    for i in range(n):
        np.testing.assert_array_equal(data[:, i, :], np.full((4, 256), float(i)))
    assert [int(e) for e in extras] == [i * 3 for i in range(n)]


# -- crash leftovers and reruns, store level ----------------------------------------------
def _manifest(n, store, shape, finished):
    return {"func_name": "f", "n_calls": n, "store": store, "finished": finished,
            "result_shape": [None if s == n else s for s in shape], "stacking_dim": 0,
            "result_dtype": "float64"}


def test_single_file_merges_only_finished_complete_calls(tmp_path):
    n = 4
    store = HDF5SingleStore()
    store.prepare(RunInfo("f", n, tmp_path, result_shape=(n, 2), result_dtype=np.dtype(float),
                          stacking_dim=0))
    writer = pickle.loads(pickle.dumps(store.writer()))
    for i in range(3):
        writer.write(i, np.full(2, i + 1.0))
    # a worker killed mid-write leaves only a temporary file, which is never merged
    (tmp_path / "f_staging" / ".f_3.h5.0123456789ab.partial").write_bytes(b"\x89HDF garbage")
    assert set(store.existing()) == {0, 1, 2}
    # call 2 wrote its file but its task never reported back: not finished, not merged
    store.finalize([str(tmp_path)] * 2 + [None, None], failed=set())
    assert not (tmp_path / "f_staging").exists()
    got = HDF5SingleStore.read(tmp_path, _manifest(n, "hdf5-single", (n, 2), [[0, 1]]))
    assert got.mask[2:].all() and not got.mask[:2].any()
    np.testing.assert_array_equal(got[:2], [[1, 1], [2, 2]])
    with h5py.File(tmp_path / "f.h5", "r") as h5f:
        assert json.loads(h5f.attrs[WRITTEN_ATTR]) == [[0, 1]]


def test_single_file_inf_axis_grows_across_merges_and_a_shorter_rerun_leaves_nothing_stale(
        tmp_path):
    n = 3
    info = RunInfo("f", n, tmp_path, result_shape=(n, np.inf), result_dtype=np.dtype(float),
                   stacking_dim=0)
    store = HDF5SingleStore()
    store.prepare(info)
    store.writer().write(0, np.arange(2.0) + 1)
    store.finalize([str(tmp_path), None, None], failed={1, 2})
    with h5py.File(tmp_path / "f.h5", "r") as h5f:
        assert h5f["result_0"].shape == (3, 2)
    again = HDF5SingleStore()
    again.prepare(RunInfo(**{**info.__dict__, "resume": True}))
    writer = again.writer()
    writer.write(0, np.array([9.0]))  # a rerun returns less: its old tail must go
    writer.write(1, np.arange(5.0) + 1)  # longer than the extent the first merge set
    writer.write(2, np.array([7.0]))
    again.finalize([str(tmp_path)] * 3, failed=set())
    got = HDF5SingleStore.read(tmp_path, _manifest(n, "hdf5-single", (n, np.inf), [[0, 2]]))
    np.testing.assert_array_equal(got, [[9, 0, 0, 0, 0], [1, 2, 3, 4, 5], [7, 0, 0, 0, 0]])


def test_zarr_reads_an_unfinalized_inf_run_and_a_shorter_rerun_leaves_nothing_stale(tmp_path):
    n = 3
    store = ZarrStore()
    store.prepare(RunInfo("f", n, tmp_path, result_shape=(n, np.inf),
                          result_dtype=np.dtype(float), stacking_dim=0))
    writer = store.writer()
    writer.write(0, np.arange(6.0) + 1)
    writer.write(0, np.arange(2.0) + 1)  # a rerun returns less: the tail must not survive
    writer.write(1, np.arange(4.0) + 1)
    manifest = _manifest(n, "zarr", (n, np.inf), [[0, 1]])
    # the driver died before finalize: the read cuts the provisional axis itself
    got = ZarrStore.read(tmp_path, manifest)
    assert got.shape == (3, 4) and got.mask[2].all()
    np.testing.assert_array_equal(got.data[:2], [[1, 2, 0, 0], [1, 2, 3, 4]])
    store.finalize([str(tmp_path)] * 2 + [None], failed={2})
    assert zarr.open_array(str(tmp_path / "f.zarr" / "result_0")).shape == (3, 4)
    np.testing.assert_array_equal(ZarrStore.read(tmp_path, manifest).data, got.data)


def test_zarr_inf_resume_regrows_the_axis(tmp_path):
    n = 3
    info = RunInfo("f", n, tmp_path, result_shape=(n, np.inf), result_dtype=np.dtype(float),
                   stacking_dim=0)
    store = ZarrStore()
    store.prepare(info)
    store.writer().write(0, np.ones(2))
    store.finalize([str(tmp_path), None, None], failed={1, 2})
    assert zarr.open_array(str(tmp_path / "f.zarr" / "result_0")).shape == (3, 2)
    again = ZarrStore()
    again.prepare(RunInfo(**{**info.__dict__, "resume": True}))
    assert set(again.existing()) == {0}
    again.writer().write(1, np.arange(5.0))  # longer than the extent the first run set
    again.writer().write(2, np.arange(1.0))
    again.finalize([str(tmp_path)] * 3, failed=set())
    got = ZarrStore.read(tmp_path, _manifest(n, "zarr", (n, np.inf), [[0, 2]]))
    np.testing.assert_array_equal(got, [[1, 1, 0, 0, 0], [0, 1, 2, 3, 4], [0, 0, 0, 0, 0]])


def _write_and_die_at_the_rename(writer, task_id, value, target):
    """In a child process: write one call, but die where a finished write whose
    destination contains ``target`` would be renamed into place, as a worker killed
    at the worst moment does (no clean-up runs). Exit code 3 if it died there."""
    def guarded(real):
        def rename(src, dst, *args, **kwargs):
            if target in os.fspath(dst):
                os._exit(3)
            return real(src, dst, *args, **kwargs)
        return rename

    os.replace, os.rename = guarded(os.replace), guarded(os.rename)
    writer.write(task_id, value)
    os._exit(4)  # the write never renamed anything to `target`


class ZarrStoreThroughZarr(ZarrStore):
    """Every chunk through zarr-python (no whole chunks written as bytes by the store)."""

    fast_chunks = False


@pytest.mark.parametrize("store_cls", [ZarrStore, ZarrStoreThroughZarr],
                         ids=["zarr", "through-zarr"])
@pytest.mark.parametrize("shape, value, target", [
    ((4, 3), np.full(3, 7.0), "result_0"),             # a whole chunk of result_0
    ((4, np.inf), np.arange(5.0), "result_0"),         # a chunk zarr-python writes
    ((4, np.inf), np.arange(5.0), "acme_extent"),      # the acme_extent entry after it
    ((4, 3), (np.full(3, 7.0), np.arange(2)), "comp_"),  # the group of an extra return
    (None, np.arange(2.0), "comp_"),                   # a call's group
    (None, {"not": "storable"}, ".pickle"),            # an emergency pickle
], ids=["slot-chunk", "zarr-chunk", "extent", "extras-group", "group", "pickle"])
def test_zarr_finalize_removes_what_killed_writers_left(tmp_path, shape, value, target,
                                                        store_cls):
    n = 4
    store = store_cls()
    store.prepare(RunInfo("f", n, tmp_path, result_shape=shape, result_dtype=np.dtype(float),
                          stacking_dim=0 if shape else None))
    writer = store.writer()
    first = np.arange(5.0) + 1 if shape and np.isinf(shape[1]) else np.full(3, 2.0)
    writer.write(0, first)
    # another run's temporary file in the same output directory is not ours to remove
    foreign = tmp_path / ".g_1.pickle.0123456789ab.partial"
    foreign.write_bytes(b"")
    child = multiprocessing.get_context("spawn").Process(
        target=_write_and_die_at_the_rename, args=(writer, 1, value, target))
    child.start()
    child.join(60)
    assert child.exitcode == 3
    # what the killed writer left: temporary names only (ours, or zarr-python's own
    # "<stem>.<uuid>.partial" where a write went through zarr)
    left = [p for p in tmp_path.rglob("*") if p.name.endswith(".partial") and p != foreign]
    assert left
    assert 0 in store.existing()
    store.finalize([str(tmp_path), None, None, None], failed={1, 2, 3})
    assert [p for p in tmp_path.rglob("*") if p.name.endswith(".partial")] == [foreign]
    manifest = {"func_name": "f", "n_calls": n, "store": "zarr", "finished": [[0, 0]],
                "result_shape": None if shape is None else [None, *shape[1:]],
                "stacking_dim": 0 if shape else None, "result_dtype": "float64"}
    got = ZarrStore.read(tmp_path, manifest)
    if shape is None:
        np.testing.assert_array_equal(got[0], first)
        assert got[1:] == [None] * 3
    else:
        np.testing.assert_array_equal(got.data[0], first)
        assert got.mask[1:].all() and not got.mask[0].any()


def test_hdf5_stacked_run_with_emergency_pickles_reads_back_per_call(in_tmp):
    """ACME drops the container when a call had to be pickled; the run still reads."""
    results, container = run(unstorable, "hdf5", (None, 2), out="run")
    assert container is None and all(os.path.dirname(r) == str(in_tmp / "run") for r in results)
    got = open_results(in_tmp / "run")
    assert got[1] == {"x": 1}
    np.testing.assert_array_equal(got[2], np.arange(2) * 2)
