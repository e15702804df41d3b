"""Failing calls: the others finish, the error names what failed, resume finishes the rest."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import pytest

from acme_core import ParallelMap, ParallelMapError, open_results
from acme_core.manifest import Manifest

pytestmark = pytest.mark.usefixtures("client")


def fails_on_seven(x, log):
    with open(log, "a") as fh:  # one line per execution, to count reruns
        fh.write(f"{x}\n")
    if x == 7 and not os.path.exists(log + ".fixed"):
        raise ValueError(f"cannot handle {x}")
    return x * 10


def fails_once(x, marker):
    path = f"{marker}.{x}"
    if x == 3 and not os.path.exists(path):
        open(path, "w").close()
        raise OSError("transient failure")
    return x


def bad_signature(x):
    return x


def test_one_failure_among_twenty_keeps_the_rest(in_tmp):
    log = str(in_tmp / "calls.log")
    with ParallelMap(fails_on_seven, list(range(20)), log, output_dir="run") as pmap:
        with pytest.raises(ParallelMapError) as info:
            pmap.compute()
    err = info.value
    assert isinstance(err, RuntimeError)
    message = str(err)
    assert "1/20 calls" in message and "task ids: 7" in message
    assert "ValueError: cannot handle 7" in message
    assert "fails_on_seven" in message  # the remote traceback names the user's function
    assert set(err.failed) == {7} and isinstance(err.failed[7], ValueError)
    assert len(err.results) == 20 and err.results[7] is None
    assert all(os.path.isfile(p) for i, p in enumerate(err.results) if i != 7)
    payload = in_tmp / "run" / "fails_on_seven_payload"
    assert sorted(os.listdir(payload)) == sorted(f"fails_on_seven_{i}.h5" for i in range(20)
                                                 if i != 7)
    for name in os.listdir(payload):
        with h5py.File(payload / name, "r") as h5f:  # every finished file is complete
            assert h5f["result_0"][0] % 10 == 0
    manifest = Manifest.load(in_tmp / "run")
    assert manifest.finished == set(range(20)) - {7}
    assert "cannot handle 7" in manifest.failed[7]

    # resume=True reruns exactly the failed call
    open(log + ".fixed", "w").close()
    before = Path(log).read_text().split()
    with ParallelMap(fails_on_seven, list(range(20)), log, output_dir="run", resume=True) as pmap:
        paths = pmap.compute()
    after = Path(log).read_text().split()
    assert after[len(before):] == ["7"]
    assert len(paths) == 20 and all(os.path.isfile(p) for p in paths)
    assert [int(v[0]) for v in open_results(in_tmp / "run")] == [x * 10 for x in range(20)]
    assert Manifest.load(in_tmp / "run")["complete"] is True


def test_in_memory_failure_keeps_finished_values(in_tmp):
    log = str(in_tmp / "calls.log")
    with ParallelMap(fails_on_seven, list(range(10)), log, write_worker_results=False) as pmap:
        with pytest.raises(ParallelMapError) as info:
            pmap.compute()
    assert info.value.results == [x * 10 if x != 7 else None for x in range(10)]


def test_retries_rerun_a_failed_call(in_tmp):
    marker = str(in_tmp / "marker")
    with ParallelMap(fails_once, [1, 2, 3, 4], marker, write_worker_results=False,
                     retries=1) as pmap:
        assert pmap.compute() == [1, 2, 3, 4]
    with ParallelMap(fails_once, [1, 2, 3, 4], str(in_tmp / "other"),
                     write_worker_results=False) as pmap:
        with pytest.raises(ParallelMapError, match="transient failure"):
            pmap.compute()


def test_resume_refuses_a_different_run(in_tmp):
    with ParallelMap(bad_signature, [1, 2, 3], output_dir="run") as pmap:
        pmap.compute()
    with pytest.raises(ValueError, match="n_calls=3, this one has n_calls=4"):
        ParallelMap(bad_signature, [1, 2, 3, 4], output_dir="run", resume=True)
    with pytest.raises(ValueError, match="store='hdf5', this one has store='pickle'"):
        ParallelMap(bad_signature, [1, 2, 3], output_dir="run", resume=True, write_pickle=True)


def raises_key_error(x):
    return {}["missing"]


def test_debug_runs_in_this_process_with_the_users_exception(in_tmp):
    seen = []

    def record_pid(x):
        seen.append(os.getpid())
        return x

    with ParallelMap(record_pid, [1, 2, 3], write_worker_results=False) as pmap:
        assert pmap.compute(debug=True) == [1, 2, 3]
    assert seen == [os.getpid()] * 3  # every call ran here, in order
    with ParallelMap(raises_key_error, [1, 2], output_dir="dbg") as pmap:
        with pytest.raises(KeyError, match="missing") as info:
            pmap.compute(debug=True)
    # the traceback reaches into the user's function: pdb.post_mortem would land there
    assert info.traceback[-1].name == "raises_key_error"
    # and the failure is on record for `acme inspect` and resume
    assert "KeyError: 'missing'" in Manifest.load(in_tmp / "dbg").failed[0]


def test_resume_refuses_different_arguments(in_tmp):
    with ParallelMap(bad_signature, [1, 2, 3], output_dir="run") as pmap:
        pmap.compute()
    with pytest.raises(ValueError, match="was made with different arguments"):
        ParallelMap(bad_signature, [1, 2, 4], output_dir="run", resume=True)
    with pytest.raises(ValueError, match="func_name='bad_signature', this one has "
                                         "func_name='raises_key_error'"):
        ParallelMap(raises_key_error, [1, 2, 3], output_dir="run", resume=True)
    # the same inputs resume (nothing left to do: every call finished)
    with ParallelMap(bad_signature, [1, 2, 3], output_dir="run", resume=True) as pmap:
        assert len(pmap.compute()) == 3
