"""A run directory belongs to one run: stale and concurrent runs, names, a full or gone disk.

Every test here failed before the run-directory rules (acme_core.run_directory): a new
run adopted an old run's files, two runs mixed their results, a function's name wrote
outside the run directory, a dead driver's half-written manifest stayed, a removed
directory ended in a bare OSError, and an unpicklable argument was found only after the
cluster started.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5py
import numpy as np
import pytest

from acme_core import ParallelMap, ParallelMapError, open_results
from acme_core.manifest import MANIFEST_NAME
from acme_core.run_directory import LOCK_NAME, STALE_AFTER, RunLockedError, file_stem


class Threads(ThreadPoolExecutor):
    name = "threads"

    def __init__(self):
        super().__init__(max_workers=2)


def double(x):
    return np.array([2.0 * x])


def tree(path: Path) -> dict[str, tuple[int, float]]:
    return {str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime)
            for p in sorted(path.rglob("*"))}


@pytest.mark.parametrize("options", [{}, {"result_shape": (None, 1)}, {"write_pickle": True}],
                         ids=["hdf5", "hdf5-stacked", "pickle"])
def test_a_new_run_refuses_a_directory_holding_another_run(in_tmp, options):
    with ParallelMap(double, [1, 2, 3], output_dir="run", backend=Threads, progress=False,
                     **options) as pmap:
        pmap.compute()
    before = tree(in_tmp / "run")
    with pytest.raises(ValueError, match=r"`output_dir` .* holds a run of 'double' \(3 of 3 "
                                         r"calls finished\).*resume=True") as err:
        ParallelMap(double, [7, 8, 9], output_dir="run", backend=Threads, **options)
    assert err.value.parameter == "output_dir"
    assert tree(in_tmp / "run") == before  # nothing touched, nothing adopted
    values = open_results(in_tmp / "run")
    if "result_shape" in options:  # the stacked array
        assert np.asarray(values).ravel().tolist() == [2.0, 4.0, 6.0]
    else:
        assert [float(np.ravel(v)[0]) for v in values] == [2.0, 4.0, 6.0]


def slow_double(x):
    time.sleep(0.3)
    return np.array([2.0 * x])


def test_a_second_run_at_the_same_time_is_refused_naming_the_owner(in_tmp):
    first = ParallelMap(slow_double, [1, 2, 3, 4], output_dir="run", backend=Threads,
                        progress=False)
    lock = json.loads((in_tmp / "run" / LOCK_NAME).read_text())
    assert lock["pid"] == os.getpid() and lock["host"] == socket.gethostname()
    with pytest.raises(RunLockedError, match=rf"is in use by a run of process {os.getpid()} "
                                             rf"on host {socket.gethostname()}"):
        ParallelMap(slow_double, [1, 2, 3, 4], output_dir="run", resume=True, backend=Threads)
    with first:
        first.compute()
    assert not (in_tmp / "run" / LOCK_NAME).exists()  # finished: the directory is free
    with ParallelMap(slow_double, [1, 2, 3, 4], output_dir="run", resume=True,
                     backend=Threads, progress=False) as again:
        assert len(again.compute()) == 4  # nothing left to run, the results come back


HOLDER = textwrap.dedent("""
    import sys, time
    from concurrent.futures import ThreadPoolExecutor
    from acme_core import ParallelMap

    class Threads(ThreadPoolExecutor):
        name = "threads"

    def slow(x):
        time.sleep(1)
        return x

    if __name__ == "__main__":
        with ParallelMap(slow, list(range(8)), output_dir=sys.argv[1], backend=Threads,
                         backend_options={"max_workers": 1}, progress=False) as pmap:
            print("running", flush=True)
            pmap.compute()
""")


def test_a_run_in_another_process_keeps_the_directory(in_tmp):
    script = in_tmp / "holder.py"
    script.write_text(HOLDER)
    holder = subprocess.Popen([sys.executable, str(script), str(in_tmp / "run")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "running"
        with pytest.raises(RunLockedError, match=rf"process {holder.pid} on host"):
            ParallelMap(slow, list(range(8)), output_dir="run", resume=True, backend=Threads)
    finally:
        holder.kill()
        holder.wait()
    # the holder died: its lock is stale and the resumed run takes the directory over
    with ParallelMap(slow, list(range(8)), output_dir="run", resume=True, backend=Threads,
                     progress=False) as pmap:
        assert pmap.compute() is not None
    assert not (in_tmp / "run" / LOCK_NAME).exists()


def slow(x):
    return x


def _plant_lock(run: Path, host: str, pid: int, age: float = 0.0) -> None:
    path = run / LOCK_NAME
    path.write_text(json.dumps({"host": host, "pid": pid, "owner": "x", "since": "then"}))
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))


def _interrupted_run(in_tmp: Path) -> Path:
    """A run directory of a run that failed on call 1 (so resume has work to do)."""
    with ParallelMap(fails_on_one, [0, 1, 2], output_dir="run", backend=Threads,
                     progress=False) as pmap:
        with pytest.raises(ParallelMapError):
            pmap.compute()
    return in_tmp / "run"


def fails_on_one(x):
    if x == 1 and not os.path.exists("fixed"):
        raise ValueError("one")
    return np.array([float(x)])


def test_the_lock_of_a_dead_process_is_taken_over(in_tmp, caplog):
    run = _interrupted_run(in_tmp)
    dead = subprocess.Popen(["true"])
    dead.wait()
    _plant_lock(run, socket.gethostname(), dead.pid)
    Path("fixed").touch()
    with caplog.at_level("WARNING", logger="acme"):
        with ParallelMap(fails_on_one, [0, 1, 2], output_dir="run", resume=True,
                         backend=Threads, progress=False) as pmap:
            pmap.compute()
    assert "Taking over the run directory" in caplog.text and "which is gone" in caplog.text


def test_another_hosts_lock_is_refused_until_it_is_stale(in_tmp):
    run = _interrupted_run(in_tmp)
    _plant_lock(run, "elsewhere.cluster", 4242, age=60)
    with pytest.raises(RunLockedError, match="process 4242 on host elsewhere.cluster"):
        ParallelMap(fails_on_one, [0, 1, 2], output_dir="run", resume=True, backend=Threads)
    _plant_lock(run, "elsewhere.cluster", 4242, age=STALE_AFTER + 60)
    Path("fixed").touch()
    with ParallelMap(fails_on_one, [0, 1, 2], output_dir="run", resume=True, backend=Threads,
                     progress=False) as pmap:
        pmap.compute()


@pytest.mark.parametrize(("name", "stem"), [("<lambda>", "lambda"), ("../escaped", "_escaped"),
                                             ("/etc/passwd", "_etc_passwd"),
                                             ("sub/dir", "sub_dir"), (".hidden", "hidden")])
def test_a_functions_name_never_leaves_the_run_directory(in_tmp, name, stem):
    def func(x):
        return np.array([float(x)])

    func.__name__ = name
    assert file_stem(name) == stem
    with ParallelMap(func, [1, 2], output_dir="out/run", backend=Threads, progress=False) as pmap:
        paths = pmap.compute()
    assert [Path(p).name for p in paths] == [f"{stem}_0.h5", f"{stem}_1.h5"]
    assert all(Path(p).resolve().is_relative_to(in_tmp / "out" / "run") for p in paths)
    assert sorted(p.name for p in in_tmp.iterdir()) == ["out"]
    assert sorted(p.name for p in (in_tmp / "out").iterdir()) == ["run"]
    with h5py.File(pmap.results_container, "r") as h5f:
        assert float(h5f["comp_1"]["result_0"][0]) == 2.0


def test_a_dead_drivers_half_written_manifest_goes_on_resume(in_tmp):
    run = _interrupted_run(in_tmp)
    leftover = run / f".{MANIFEST_NAME}.0123456789ab.partial"
    leftover.write_text("{half")
    Path("fixed").touch()
    with ParallelMap(fails_on_one, [0, 1, 2], output_dir="run", resume=True, backend=Threads,
                     progress=False) as pmap:
        pmap.compute()
    assert not leftover.exists()


def removes_the_run(x, run):
    if x == 0:
        import shutil

        shutil.rmtree(run)
    else:
        time.sleep(0.2)
    return np.array([float(x)])


def test_a_run_directory_removed_mid_run_ends_in_a_parallel_map_error(in_tmp):
    # (ENOSPC and EROFS take the same path, an OSError while writing; this machine's tests
    # cannot fill or remount a file system, so the removed directory stands for them)
    run = in_tmp / "run"
    with ParallelMap(removes_the_run, [0, 1, 2, 3], str(run), output_dir="run",
                     backend=Threads, progress=False) as pmap:
        with pytest.raises(ParallelMapError, match=r"could not be written .*FileNotFoundError") \
                as err:
            pmap.compute()
    assert "finished" in str(err.value) and "resume=True" in str(err.value)
    assert set(err.value.failed) >= {1, 2, 3}


def test_an_unpicklable_argument_is_named_before_anything_starts(in_tmp):
    lock = threading.Lock()
    start = time.monotonic()
    with pytest.raises(TypeError, match=r"positional argument 1 \(shared\) cannot be sent to "
                                        r"the workers.*(_thread.lock|object of type lock)") as err:
        ParallelMap(double_with, [1, 2], lock, backend="dask-local")
    assert err.value.parameter == "args"
    with pytest.raises(TypeError, match=r"keyword argument 'z', element 1 cannot be sent") as err:
        ParallelMap(double_with, [1, 2], 0, z=[0, threading.Lock()], backend="dask-local")
    assert err.value.parameter == "kwargs"
    assert time.monotonic() - start < 10  # no cluster was started to find out
    assert list(in_tmp.iterdir()) == []
    # on threads of this process nothing is pickled: the lock is fine there
    with ParallelMap(double_with, [1, 2], lock, backend=Threads, write_worker_results=False,
                     progress=False) as pmap:
        assert [float(v[0]) for v in pmap.compute()] == [2.0, 4.0]


def double_with(x, y, *, z=None):
    return np.array([2.0 * x])


def first_row_times(x, dataset):
    return np.array([float(dataset[0]) * x])


def test_a_read_only_h5py_dataset_travels_by_reference_on_dask(in_tmp, client):
    """ACME's test_simple_filter passes one: dask sends it by name, pickle could not."""
    with h5py.File(in_tmp / "data.h5", "w") as h5f:
        h5f["x"] = np.arange(1.0, 5.0)
    with h5py.File(in_tmp / "data.h5", "r") as h5f:
        with ParallelMap(first_row_times, [1, 2, 3], h5f["x"], write_worker_results=False,
                         progress=False) as pmap:
            assert [float(v[0]) for v in pmap.compute()] == [1.0, 2.0, 3.0]


def test_empty_output_dir_is_refused(in_tmp):
    with pytest.raises(ValueError, match="`output_dir` is empty") as err:
        ParallelMap(double, [1, 2], output_dir="")
    assert err.value.parameter == "output_dir"
    assert list(in_tmp.iterdir()) == []


def test_a_held_lock_is_refreshed_while_its_holder_sits_idle(in_tmp, monkeypatch):
    """Another host judges a lock by its age: the holder's thread keeps it young."""
    import acme_core.run_directory as rd

    monkeypatch.setattr(rd, "HEARTBEAT", 0.1)
    lock = rd.RunLock(in_tmp, "owner-1")
    lock.acquire()
    try:
        old = time.time() - rd.STALE_AFTER - 60
        os.utime(lock.path, (old, old))
        deadline = time.monotonic() + 10
        while lock.read().age > rd.STALE_AFTER and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lock.read().age < 5
    finally:
        lock.release()
    assert not lock.path.exists()
