"""Trust nothing on disk (issue 14): what the stores' readers, ``existing()`` and resume accept.

Every test here failed before the stores consulted the manifest: stale and planted
``<fn>_<i>`` files were returned and adopted (item 1), files the manifest does not
list were unpickled, symbolic links were followed out of the run directory, the
manifest's ``func_name`` was used as a path and a manifest claiming 10**12 calls
kept the reader busy (item 8).
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5py
import numpy as np
import pytest

from acme_core import ParallelMap, ParallelMapError, open_results
from acme_core.errors import (
    ArgumentError,
    ArgumentValueError,
    ManifestError,
    ResultMismatchError,
    ResultTypeError,
    RunDirectoryError,
)
from acme_core.manifest import MANIFEST_NAME, MAX_CALLS


class Threads(ThreadPoolExecutor):
    name = "threads"

    def __init__(self):
        super().__init__(max_workers=2)


def triple(x):
    if os.environ.get("ACME_TEST_FAIL") == str(x):
        raise RuntimeError(f"call {x} fails")
    return np.array([3.0 * x])


def as_dict(x):
    return {"x": x}


class Marker:
    """A pickle that, when loaded, creates a file: proof that it was unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def plant_pickle(path: Path, marker: Path) -> None:
    path.write_bytes(pickle.dumps([Marker(marker)]))


def run(out, func=triple, n=4, **options):
    with ParallelMap(func, list(range(n)), output_dir=str(out), backend=Threads,
                     logfile=False, **options) as pmap:
        return pmap.compute()


def run_failing(out, fail, monkeypatch, **options):
    monkeypatch.setenv("ACME_TEST_FAIL", str(fail))
    with pytest.raises(ParallelMapError):
        run(out, **options)
    monkeypatch.delenv("ACME_TEST_FAIL")


def edit_manifest(out: Path, **changes) -> None:
    path = out / MANIFEST_NAME
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def write_h5(path: Path, value) -> None:
    with h5py.File(path, "w") as h5f:
        h5f["result_0"] = value


# -- item 1: stale and planted files -------------------------------------------------------
@pytest.mark.parametrize("store, leftover", [
    ("hdf5", "triple_payload/triple_0.h5"), ("hdf5", "triple_1.pickle"),
    ("pickle", "triple_0.pickle"), ("zarr", "triple.zarr/zarr.json"),
    ("hdf5-single", "triple.h5")])
def test_a_fresh_run_refuses_another_runs_files_without_a_manifest(in_tmp, store, leftover):
    out = in_tmp / "run"
    (out / leftover).parent.mkdir(parents=True, exist_ok=True)
    (out / leftover).write_bytes(b"stale")
    before = sorted(p.name for p in out.rglob("*"))
    with pytest.raises(ArgumentValueError, match="no run manifest lists") as info:
        ParallelMap(triple, [1, 2], output_dir=str(out), store=store, backend=Threads,
                    logfile=False)
    assert info.value.parameter == "output_dir"
    assert Path(leftover).parts[0] in str(info.value)
    assert sorted(p.name for p in out.rglob("*")) == before  # nothing written, nothing deleted


@pytest.mark.parametrize("store", ["hdf5", "pickle", "zarr"])
def test_a_planted_file_of_an_unfinished_call_is_neither_read_nor_adopted(in_tmp, monkeypatch,
                                                                          store):
    out = in_tmp / "run"
    run_failing(out, 2, monkeypatch, store=store)
    planted = {"hdf5": out / "triple_payload" / "triple_2.h5", "pickle": out / "triple_2.pickle",
               "zarr": out / "triple_2.pickle"}[store]
    if store == "hdf5":
        write_h5(planted, np.array([999.0]))
    else:
        planted.write_bytes(pickle.dumps([np.array([999.0])]))
    assert open_results(out)[2] is None  # not listed: not read
    run(out, store=store, resume=True)
    assert [float(np.ravel(v)[0]) for v in open_results(out)] == [0.0, 3.0, 6.0, 9.0]


def test_a_stacked_slot_the_manifest_does_not_list_stays_masked(in_tmp, monkeypatch):
    out = in_tmp / "run"
    run_failing(out, 1, monkeypatch, result_shape=(None, 1))
    write_h5(out / "triple_payload" / "triple_1.h5", np.array([999.0]))
    data = open_results(out)
    assert np.ma.getmaskarray(data)[1].all() and data[2, 0] == 6.0


# -- item 8: nothing unpickled that the manifest does not list, no link followed ----------
@pytest.mark.parametrize("case", ["failed call", "finished call's file", "next to zarr"])
def test_a_planted_pickle_is_never_unpickled(in_tmp, monkeypatch, case):
    out = in_tmp / "run"
    marker = in_tmp / "unpickled"
    if case == "failed call":
        run_failing(out, 2, monkeypatch)
        plant_pickle(out / "triple_payload" / "triple_2.pickle", marker)
    elif case == "finished call's file":
        run(out)
        (out / "triple_payload" / "triple_1.h5").unlink()
        plant_pickle(out / "triple_payload" / "triple_1.pickle", marker)
    else:
        run(out, store="zarr")
        plant_pickle(out / "triple_1.pickle", marker)
    values = open_results(out)
    subprocess.run([sys.executable, "-m", "acme_core.cli", "results", str(out)],
                   capture_output=True, timeout=120)
    subprocess.run([sys.executable, "-m", "acme_core.cli", "inspect", str(out)],
                   capture_output=True, timeout=120)
    assert not marker.exists()
    if case == "next to zarr":
        assert float(values[1][0]) == 3.0  # the call's own group
    elif case == "failed call":
        assert values[2] is None
    else:
        assert values[1] is None


def test_emergency_pickles_the_manifest_lists_read_back(in_tmp):
    out = in_tmp / "run"
    run(out, func=as_dict, n=3)
    assert json.loads((out / MANIFEST_NAME).read_text())["pickled"] == [[0, 2]]
    assert open_results(out) == [{"x": 0}, {"x": 1}, {"x": 2}]
    edit_manifest(out, pickled=[[0, 0]])
    assert open_results(out) == [{"x": 0}, None, None]


@pytest.mark.parametrize("what", ["file", "payload directory"])
def test_a_symlink_out_of_the_run_directory_is_refused(in_tmp, what):
    out = in_tmp / "run"
    run(out)
    elsewhere = in_tmp / "elsewhere"
    elsewhere.mkdir()
    payload = out / "triple_payload"
    if what == "file":
        write_h5(elsewhere / "secret.h5", np.array([42.0]))
        (payload / "triple_1.h5").unlink()
        (payload / "triple_1.h5").symlink_to(elsewhere / "secret.h5")
    else:
        payload.rename(elsewhere / "triple_payload")
        payload.symlink_to(elsewhere / "triple_payload")
    with pytest.raises(RunDirectoryError, match="symbolic link"):
        open_results(out)


@pytest.mark.parametrize("store", ["pickle", "zarr", "hdf5-single"])
def test_a_symlinked_pickle_or_container_is_refused(in_tmp, store):
    out = in_tmp / "run"
    run(out, store=store, n=2)
    name = {"pickle": "triple_1.pickle", "zarr": "triple.zarr", "hdf5-single": "triple.h5"}[store]
    moved = in_tmp / name
    (out / name).rename(moved)
    (out / name).symlink_to(moved)
    with pytest.raises(RunDirectoryError, match="symbolic link"):
        open_results(out)


@pytest.mark.parametrize("func_name", ["../elsewhere/x", "/tmp/x", ".hidden", "a/b"])
def test_a_manifests_func_name_is_not_a_path(in_tmp, func_name):
    out = in_tmp / "run"
    run(out, store="pickle", n=2)
    edit_manifest(out, func_name=func_name)
    with pytest.raises(ManifestError, match="not a plain file name"):
        open_results(out)


@pytest.mark.parametrize("changes", [{"n_calls": 10 ** 12, "finished": [[0, 10 ** 12 - 1]]},
                                     {"n_calls": 2.5}, {"finished": [[0, 10 ** 9]]},
                                     {"pickled": "all"}])
def test_an_impossible_manifest_is_refused_quickly(in_tmp, changes):
    out = in_tmp / "run"
    run(out, store="pickle", n=2)
    edit_manifest(out, **changes)
    start = time.monotonic()
    with pytest.raises(ManifestError):
        open_results(out)
    cli = subprocess.run([sys.executable, "-m", "acme_core.cli", "results", str(out)],
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode != 0
    if "n_calls" in changes and changes["n_calls"] == 10 ** 12:
        assert f"{MAX_CALLS:,}" in cli.stderr
    assert time.monotonic() - start < 30


# -- item 6: resume opens a result before it counts ---------------------------------------
def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    path.write_bytes(b"" if how == "empty" else data[:len(data) // 2])


@pytest.mark.parametrize("how", ["empty", "truncated"])
@pytest.mark.parametrize("store, name", [
    ("hdf5", "triple_payload/triple_1.h5"), ("pickle", "triple_1.pickle"),
    ("zarr", "triple.zarr/comp_1/result_0/c/0"), ("hdf5-stacked", "triple_payload/triple_1.h5"),
    ("zarr-stacked", "triple.zarr/result_0/c.1.0")])
def test_resume_reruns_a_call_whose_file_is_empty_or_truncated(in_tmp, store, name, how):
    out = in_tmp / "run"
    options = {"store": store.split("-")[0]}
    if store.endswith("stacked"):
        options["result_shape"] = (None, 1)
    run(out, **options)
    if how == "truncated" and name.endswith("/0"):
        how = "empty"  # a 1-value chunk has no half
    _damage(out / name, how)
    run(out, resume=True, **options)
    values = open_results(out)
    assert [float(np.ravel(v)[0]) for v in values] == [0.0, 3.0, 6.0, 9.0]


@pytest.mark.parametrize("how", ["empty", "truncated"])
def test_single_file_staged_files_count_only_when_they_open(tmp_path, how):
    from acme_core.store import RunInfo
    from acme_storage.hdf5 import HDF5SingleStore

    store = HDF5SingleStore()
    store.prepare(RunInfo("f", 3, tmp_path))
    writer = store.writer()
    for i in range(3):
        writer.write(i, np.arange(100.0))
    _damage(tmp_path / "f_staging" / "f_1.h5", how)
    assert set(store.existing()) == {0, 2}


def test_fsync_calls_flushes_every_calls_file_before_its_rename(tmp_path, monkeypatch):
    from acme_core.store import RunInfo
    from acme_storage.hdf5 import HDF5Store

    flushed = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (flushed.append(fd), real(fd)))
    durable = type("Durable", (HDF5Store,), {"fsync_calls": True})()
    durable.prepare(RunInfo("f", 3, tmp_path))
    writer = durable.writer()
    writer.write(0, np.arange(3.0))  # h5py, then the template's check
    writer.write(1, np.arange(3.0))  # from the template
    writer.write(2, "text")  # h5py
    assert len(flushed) == 3
    assert [open_h5(tmp_path / "f_payload" / f"f_{i}.h5") for i in range(2)] == [[0, 1, 2]] * 2


def open_h5(path):
    with h5py.File(path, "r") as h5f:
        return h5f["result_0"][()].tolist()


# -- items 3, 4, 5: every value is checked against its slot on the worker -----------------
STACKING = ["hdf5", "hdf5-single", "zarr", "memory"]


def returns(values):
    """A function returning ``values[x]``, by name (picklable for every backend)."""
    return _Returns(values)


class _Returns:
    __name__ = "returns"

    def __init__(self, values):
        self.values = values

    def __call__(self, x):
        return self.values[x]


def stacked_run(in_tmp, store, values, shape, dtype="float64"):
    options = {"write_worker_results": False} if store == "memory" else {
        "store": store, "output_dir": str(in_tmp / "run")}
    with ParallelMap(returns(values), list(range(len(values))), result_shape=shape,
                     result_dtype=dtype, backend=Threads, logfile=False, **options) as pmap:
        return pmap.compute()


def failed_alone(in_tmp, store, values, shape, dtype, bad):
    with pytest.raises(ParallelMapError) as info:
        stacked_run(in_tmp, store, values, shape, dtype)
    assert set(info.value.failed) == {bad}
    error = info.value.failed[bad]
    assert isinstance(error, ResultMismatchError) and isinstance(error, ValueError)
    return error


@pytest.mark.parametrize("store", STACKING)
@pytest.mark.parametrize("shape, bad_value", [((None, 3), np.ones(4)),
                                              ((3, None, 2), np.ones((2, 3))),
                                              ((None, 3), 7.0)],
                         ids=["too long", "re-laid out", "scalar into a vector"])
def test_a_value_that_does_not_fit_its_slot_fails_its_call_alone(in_tmp, store, shape,
                                                                 bad_value):
    good = np.ones([s for s in shape if s is not None])
    error = failed_alone(in_tmp, store, [good, bad_value, good], shape, "float64", 1)
    assert error.parameter == "result_shape"
    if store != "memory":
        data = open_results(in_tmp / "run")
        dim = shape.index(None)
        assert np.ma.getmaskarray(data).take(1, axis=dim).all()
        np.testing.assert_array_equal(np.ma.getdata(data).take(2, axis=dim), good)


@pytest.mark.parametrize("store", STACKING)
@pytest.mark.parametrize("dtype, bad, good", [
    ("int8", np.array([1000]), np.array([100])),
    ("float16", np.array([1e5]), np.array([1.5])),
    ("int8", np.array([1.5]), np.array([2.0])),
    ("uint8", np.array([-1]), np.array([255])),
    ("int32", np.array([np.nan]), np.array([-3.0])),
    ("float64", np.array([1 + 2j]), np.array([1 + 0j]))])
def test_a_cast_happens_only_where_the_values_survive_it(in_tmp, store, dtype, bad, good):
    error = failed_alone(in_tmp, store, [good, bad], (None, 1), dtype, 1)
    assert error.parameter == "result_dtype" and dtype in str(error)


@pytest.mark.parametrize("store", STACKING)
def test_floats_round_into_a_narrower_float(in_tmp, store):
    got = stacked_run(in_tmp, store, [np.array([0.1]), np.array([2.0 ** 40])], (None, 1),
                      "float32")
    if store != "memory":
        got = open_results(in_tmp / "run")
    assert got.dtype == np.float32 and got[0, 0] == np.float32(0.1) and got[1, 0] == 2.0 ** 40


def test_memory_stacking_keeps_the_calls_that_fit(in_tmp):
    with pytest.raises(ParallelMapError) as info:
        stacked_run(in_tmp, "memory", [np.ones(2), np.ones(3), np.full(2, 2.0)], (None, 2))
    assert set(info.value.failed) == {1}
    assert info.value.results[2].tolist() == [2.0, 2.0]


def test_a_result_mismatch_travels_between_processes():
    error = ResultMismatchError("does not fit", parameter="result_dtype")
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is ResultMismatchError and again.parameter == "result_dtype"
    typed = pickle.loads(pickle.dumps(ResultTypeError("no", parameter="store")))
    assert isinstance(typed, TypeError) and isinstance(typed, ValueError)


# -- items 12, 13: every keyword and store option checked before anything is written -------
@pytest.mark.parametrize("keywords, parameter", [
    ({"result_shape": (None, 1e300)}, "result_shape"),
    ({"result_shape": (None, 3), "result_dtype": "object"}, "result_dtype"),
    ({"result_shape": (None, 3), "result_dtype": "U10"}, "result_dtype"),
    ({"result_shape": (None, 3), "result_dtype": "datetime64[s]"}, "result_dtype"),
    ({"result_shape": (None, 3), "result_dtype": "complex128"}, "result_dtype"),
    ({"result_shape": (None, 3), "result_dtype": "complex128", "single_file": True},
     "result_dtype"),
    ({"result_shape": (None, 3), "result_dtype": "U10", "write_worker_results": False},
     "result_dtype"),
    ({"result_shape": (None, 3), "result_dtype": "float128", "store": "zarr"}, "result_dtype"),
    ({"result_shape": (None, 3), "result_dtype": "V8", "store": "zarr"}, "result_dtype"),
    ({"result_shape": (None, 3), "store": "zarr", "store_options": {"chunks": (1, 2)}},
     "store_options"),
    ({"store_options": {"locking": "yes"}}, "store_options"),
    ({"store_options": {"locking": "yes"}, "single_file": True}, "store_options"),
    ({"store_options": {"compression": "bogus"}}, "store_options"),
    ({"store": "pickle", "store_options": {"protocol": 99}}, "store_options"),
    ({"store": "pickle", "store_options": {"protocol": True}}, "store_options"),
])
def test_a_run_the_store_cannot_hold_is_refused_before_anything_is_written(in_tmp, keywords,
                                                                          parameter):
    out = in_tmp / "run"
    with pytest.raises(ArgumentError) as info:
        ParallelMap(triple, [1, 2], output_dir=str(out), backend=Threads, logfile=False,
                    **keywords)
    assert info.value.parameter == parameter
    assert f"`{parameter}`" in str(info.value) or parameter in str(info.value)
    assert not out.exists() and os.listdir(in_tmp) == []


def test_complex_numbers_stack_on_zarr_and_in_memory(in_tmp):
    values = [np.array([1 + 2j]), np.array([3j])]
    got = stacked_run(in_tmp, "memory", values, (None, 1), "complex128")
    assert got[:, 0].tolist() == [1 + 2j, 3j]
    stacked_run(in_tmp, "zarr", values, (None, 1), "complex128")
    assert open_results(in_tmp / "run")[:, 0].tolist() == [1 + 2j, 3j]


@pytest.mark.parametrize("scheduler", [pytest.param("slurm", marks=pytest.mark.slurm),
                                       pytest.param("sge", marks=pytest.mark.sge)])
@pytest.mark.parametrize("keywords, parameter", [({"partition": "no-such-queue"}, "partition"),
                                                 ({"mem_per_worker": "5000GB"},
                                                  "mem_per_worker")])
def test_queue_and_memory_are_checked_before_the_run_directory_exists(in_tmp, scheduler,
                                                                       keywords, parameter):
    from jobqueue_util import sge_status, slurm_status

    running, why = (slurm_status if scheduler == "slurm" else sge_status)()
    if not running:
        pytest.skip(why)
    out = in_tmp / "run"
    with pytest.raises(ArgumentError) as info:
        ParallelMap(triple, [1, 2], output_dir=str(out), backend=scheduler, logfile=False,
                    **keywords)
    # ParallelMap's own keyword is named, with the value given
    assert info.value.parameter == parameter
    assert str(keywords[parameter]) in str(info.value)
    assert not out.exists()


# -- item 7: bytes that are not UTF-8, strings holding NUL ---------------------------------
ODD = [b"\xff\xfe\x00raw", "a\x00b", np.array([b"\xff", b"ok"]), (b"\x80", "text")]


# zarr warns that its fixed-length bytes type has no finished v3 specification yet
@pytest.mark.filterwarnings("ignore:The data type .* does not have a Zarr V3 specification")
@pytest.mark.parametrize("store", ["hdf5", "zarr", "hdf5-single"])
def test_non_utf8_bytes_and_nul_strings_read_back(in_tmp, store):
    out = in_tmp / "run"
    if store == "hdf5-single":  # it pickles nothing: the NUL string fails its call alone
        with pytest.raises(ParallelMapError) as info:
            run(out, func=returns(ODD), store=store)
        assert set(info.value.failed) == {1}
        assert isinstance(info.value.failed[1], ResultTypeError)
    else:
        run(out, func=returns(ODD), store=store)
    got = open_results(out)
    assert got[0] == b"\xff\xfe\x00raw"
    assert got[2].tolist() == [b"\xff", b"ok"]
    assert got[3] == (b"\x80", "text")
    if store != "hdf5-single":
        assert np.ravel(got[1])[0] == "a\x00b"
    cli = subprocess.run([sys.executable, "-m", "acme_core.cli", "results", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert "UnicodeDecodeError" not in cli.stderr + cli.stdout
