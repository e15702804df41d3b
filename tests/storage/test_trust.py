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
from acme_core.errors import ArgumentValueError, ManifestError, RunDirectoryError
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
