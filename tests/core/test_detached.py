"""Runs that outlive the driver, on a backend written here as a third party would.

:class:`LocalElements` implements :class:`acme_core.executor.RunsDetached` with
plain processes on this machine (no scheduler): the core's whole-run path
(launch, polling, killed elements rerun, retries, cancel, attach) is tested on
it, and so is the rule that nothing the elements unpickle is trusted unless it
verifies against the run's key.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import cloudpickle
import numpy as np
import pytest

import acme_core.detached as detached_module
import block_recorder
from acme_core import ParallelMap, open_results
from acme_core.detached import RunHandle, element_bounds
from acme_core.element import chunk_name, outcome_name
from acme_core.errors import NoRunError, ParallelMapError, RunDirectoryError, UsageError
from acme_core.executor import ElementJob, RunsDetached
from acme_core.signed import KEY_DIR_ENV, RunKey
from block_recorder import BlockRecorder, overlaps, square

cloudpickle.register_pickle_by_value(sys.modules[__name__])
cloudpickle.register_pickle_by_value(block_recorder)


class LocalElements:
    """Elements as processes of this machine; a job is one process (its pid)."""

    name = "test-local-elements"
    _procs: dict[str, subprocess.Popen] = {}

    def __init__(self, calls_per_element: int = 2, poll_interval: float = 0.2,
                 hold: bool = False) -> None:
        self.calls_per_element = calls_per_element
        self.poll_interval = poll_interval
        self.hold = hold

    def submit(self, fn, /, *args, **kwargs):
        raise NotImplementedError("whole runs only")

    def shutdown(self, wait: bool = True) -> None:
        pass

    def submit_elements(self, command, count, *, name, log_dir):
        jobs = []
        for k in range(count):
            if self.hold:  # queued, never started (tests that start elements by hand)
                jobs.append(ElementJob(f"held{k}", k, 1))
                continue
            with open(Path(log_dir) / f"{name}-{k}.out", "w") as log:
                proc = subprocess.Popen([*command, str(k)], stdout=log, stderr=subprocess.STDOUT)
            self._procs[str(proc.pid)] = proc
            jobs.append(ElementJob(str(proc.pid), k, 1))
        return jobs

    def element_states(self, jobs):
        states = {}
        for job in jobs:
            proc = self._procs.get(job.job_id)
            if job.job_id.startswith("held"):
                states[job.job_id] = {0: ("PENDING", "held by the test")}
            elif proc is not None and proc.poll() is None:
                states[job.job_id] = {0: ("RUNNING", "")}
        return states

    def cancel_jobs(self, job_ids):
        for job_id in job_ids:
            proc = self._procs.get(job_id)
            if proc is not None and proc.poll() is None:
                proc.kill()

    def plan_elements(self, n_calls):
        return -(-n_calls // self.calls_per_element)

    def detached_options(self):
        return {"calls_per_element": self.calls_per_element, "poll_interval": self.poll_interval}


@pytest.fixture(autouse=True)
def setup(monkeypatch, tmp_path):
    monkeypatch.setenv(KEY_DIR_ENV, str(tmp_path / "keys"))
    monkeypatch.setattr(detached_module, "LOST_GRACE", 0.3)
    import acme_core.plugins

    backends = {**acme_core.plugins.list_backends(), LocalElements.name: LocalElements}
    monkeypatch.setattr(acme_core.plugins, "list_backends", lambda: backends)


def double(x):
    return 2 * x


def slow(x, seconds=1.0):
    time.sleep(seconds)
    return x


def flaky(x, marks):
    """Fails the first time it runs for each x (a file marks that it ran)."""
    mark = Path(marks) / str(x)
    if not mark.exists():
        mark.touch()
        raise OSError(f"transient failure of {x}")
    return x


def kills_its_element(x):
    if x == 3:
        os._exit(9)
    return x


def test_the_local_backend_is_detachable():
    assert isinstance(LocalElements(), RunsDetached)


def test_compute_runs_through_the_whole_run_path(tmp_path):
    out = tmp_path / "run"
    with ParallelMap(double, list(range(7)), output_dir=out, write_pickle=True,
                     backend=LocalElements, progress=False) as pmap:
        paths = pmap.compute()
    assert [pickle.loads(Path(p).read_bytes()) for p in paths] == [0, 2, 4, 6, 8, 10, 12]
    assert (out / ".acme_detached" / "run.json").is_file()
    assert RunHandle(out).status().complete


def test_submit_then_attach(tmp_path):
    out = tmp_path / "run"
    handle = ParallelMap(double, list(range(5)), output_dir=out, write_pickle=True,
                         backend=LocalElements).submit()
    paths = ParallelMap.attach(out).results(progress=False)
    assert len(paths) == 5
    assert handle.status().done == 5


def test_killed_element_reruns_its_calls(tmp_path, caplog):
    out = tmp_path / "run"
    backend = LocalElements(calls_per_element=3)
    handle = ParallelMap(slow, list(range(6)), seconds=0.5, output_dir=out, write_pickle=True,
                         backend=backend).submit()
    first = sorted(LocalElements._procs)[-2]  # the first of the two elements
    time.sleep(0.3)
    os.kill(int(first), signal.SIGKILL)
    with caplog.at_level("WARNING", logger="acme"):
        paths = handle.results(progress=False)
    assert len(paths) == 6 and all(paths)
    assert "ended before finishing calls" in caplog.text


def test_a_call_that_kills_its_element_fails_alone(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ParallelMapError) as info, \
            ParallelMap(kills_its_element, list(range(6)), output_dir=out, write_pickle=True,
                        backend=LocalElements(calls_per_element=3), progress=False) as pmap:
        pmap.compute()
    assert list(info.value.failed) == [3]
    assert "ended before the call finished" in str(info.value.failed[3])


def test_retries(tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    with ParallelMap(flaky, list(range(4)), str(marks), output_dir=tmp_path / "run",
                     write_pickle=True, backend=LocalElements, retries=1,
                     progress=False) as pmap:
        assert len(pmap.compute()) == 4


def test_cancel_marks_the_run_and_stops_the_waiter(tmp_path):
    out = tmp_path / "run"
    handle = ParallelMap(slow, list(range(4)), seconds=30, output_dir=out, write_pickle=True,
                         backend=LocalElements).submit()
    assert handle.cancel()
    with pytest.raises(ParallelMapError) as info:
        handle.results(progress=False)
    assert sorted(info.value.failed) == [0, 1, 2, 3]
    assert "cancelled" in str(info.value.failed[0])
    assert handle.status().cancelled


def test_status_reads_only(tmp_path):
    out = tmp_path / "run"
    ParallelMap(double, list(range(4)), output_dir=out, write_pickle=True,
                backend=LocalElements(hold=True)).submit()
    manifest = (out / "acme_manifest.json").read_bytes()
    status = RunHandle(out).status()
    assert (status.done, status.pending, status.running) == (0, 4, 0)
    assert status.reasons == {"held by the test": 4}
    assert (out / "acme_manifest.json").read_bytes() == manifest


def test_tampered_chunk_is_refused_and_never_unpickled(tmp_path):
    out = tmp_path / "run"
    handle = ParallelMap(double, list(range(2)), output_dir=out, write_pickle=True,
                         backend=LocalElements(calls_per_element=2, hold=True)).submit()
    run_id = handle._record()["run_id"]
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    chunk = out / chunk_name(0, 0)
    chunk.write_bytes(chunk.read_bytes()[:32] + b"P" + pickle.dumps(Evil()))
    done = subprocess.run([sys.executable, "-m", "acme_core.element", str(out), run_id, "0", "0"],
                          capture_output=True, text=True)
    assert done.returncode == 1
    assert not marker.exists()
    report = (out / outcome_name(0, 0)).read_text()
    assert "TamperedFileError" in report


def test_a_key_others_can_read_is_refused(tmp_path):
    key = RunKey.create("abc")
    RunKey.path_of("abc").chmod(0o644)
    with pytest.raises(RunDirectoryError, match="readable by others"):
        RunKey.load("abc")
    assert stat.S_IMODE(os.stat(RunKey.path_of("abc").parent).st_mode) == 0o700
    assert key.tag("a", b"x") != key.tag("b", b"x")  # a file cannot stand in for another


def test_submit_needs_a_detachable_backend(tmp_path):
    with pytest.raises(UsageError, match="cannot run detached"), \
            ParallelMap(double, [1, 2], output_dir=tmp_path / "run", write_pickle=True,
                        backend="dask-local", n_workers=1) as pmap:
        pmap.submit()
    with pytest.raises(NoRunError):
        ParallelMap.attach(tmp_path / "run")


def test_a_tampered_record_is_refused(tmp_path):
    import json

    from acme_core.errors import TamperedFileError

    out = tmp_path / "run"
    ParallelMap(double, list(range(2)), output_dir=out, write_pickle=True,
                backend=LocalElements(hold=True)).submit()
    path = out / ".acme_detached" / "run.json"
    data = json.loads(path.read_text())
    data["record"]["backend_options"]["calls_per_element"] = 1
    path.write_text(json.dumps(data))
    with pytest.raises(TamperedFileError):
        RunHandle(out).status()


def test_removing_a_run_directory_removes_its_key_and_no_other(tmp_path):
    """``acme clean`` (``housekeeping.remove_runs``) takes the run's key along; a record
    edited to name another run's id removes nothing (it does not verify)."""
    import json

    from acme_core.housekeeping import remove_runs

    runs = [tmp_path / "ACME_a", tmp_path / "ACME_b"]
    for out in runs:
        with ParallelMap(double, [1, 2], output_dir=out, write_pickle=True,
                         backend=LocalElements, progress=False) as pmap:
            pmap.compute()
    ids = [json.loads((out / ".acme_detached" / "run.json").read_text())["record"]["run_id"]
           for out in runs]
    forged = runs[1] / ".acme_detached" / "run.json"
    data = json.loads(forged.read_text())
    data["record"]["run_id"] = ids[0]
    forged.write_text(json.dumps(data))
    assert remove_runs([runs[1]]) == [runs[1]]
    assert RunKey.path_of(ids[0]).is_file()  # the planted id removed nothing
    assert remove_runs([runs[0]]) == [runs[0]]
    assert not RunKey.path_of(ids[0]).exists()


def vec2(x):
    return np.arange(2) * x + 0.5


def slow_square(x, marks, fail_once="", die_at=-1):
    """``block_recorder.square`` after 0.2 s; kills its element every time at ``die_at``."""
    time.sleep(0.2)
    if x == die_at:
        os._exit(9)
    return square(x, marks, fail_once)


def test_element_bounds_fall_between_blocks():
    assert element_bounds(list(range(10)), 5, None) == [0, 2, 4, 6, 8, 10]
    assert element_bounds(list(range(10)), 5, 3) == [0, 3, 6, 9, 10]  # one block each
    assert element_bounds(list(range(10)), 2, 3) == [0, 6, 10]
    assert element_bounds([1, 2, 7, 8, 9, 13], 3, 4) == [0, 2, 3, 6]  # blocks 0 | 1 | 2-3
    assert element_bounds(list(range(4)), 3, 100) == [0, 4]  # one block: one element


def test_zarr_shards_run_on_detached_elements(tmp_path):
    """Elements cut at the shards' blocks write the shards; zarr reads them back."""
    import zarr

    out = tmp_path / "run"
    with ParallelMap(vec2, list(range(10)), output_dir=out, store="zarr",
                     store_options={"shard_calls": 3}, result_shape=(None, 2),
                     backend=LocalElements(calls_per_element=2), progress=False) as pmap:
        pmap.compute()
    record = json.loads((out / ".acme_detached" / "run.json").read_text())["record"]
    assert record["block_calls"] == 3
    assert [e["ids"] for e in record["elements"]] == [[[0, 2]], [[3, 5]], [[6, 8]], [[9, 9]]]
    expected = np.stack([vec2(x) for x in range(10)])
    np.testing.assert_array_equal(open_results(out), expected)
    array = zarr.open_group(out / "vec2.zarr", mode="r")["result_0"]
    np.testing.assert_array_equal(array[...], expected)
    shards = sorted(os.listdir(out / "vec2.zarr" / "result_0"))
    assert shards == ["c.0.0", "c.1.0", "c.2.0", "c.3.0", "zarr.json"]  # a file per block


def test_reruns_wait_until_no_element_holds_their_block(tmp_path):
    """A retried call waits for the element still running its block's other calls."""
    logs, marks = tmp_path / "log", tmp_path / "marks"
    logs.mkdir()
    marks.mkdir()
    with ParallelMap(slow_square, list(range(12)), str(marks), fail_once="4,9",
                     store=BlockRecorder, store_options={"log_dir": str(logs), "block": 4},
                     output_dir=tmp_path / "run", retries=1,
                     backend=LocalElements(calls_per_element=4), progress=False) as pmap:
        results = pmap.compute()
    assert list(results) == [x * x for x in range(12)]
    assert overlaps(logs, 4) == []
    retried = [json.loads(p.read_text())["ids"] for p in logs.glob("*.json")]
    assert [4] in retried and [9] in retried  # the retries ran, in elements of their own


def fails_once_at_0_else_slow(x, marks):
    if x == 0:
        return square(x, marks, fail_once="0")
    time.sleep(2.0)
    return x * x


def test_a_waiting_rerun_is_kept_in_the_record_and_reported(tmp_path, monkeypatch):
    """The waiting calls survive the waiting process; ``status()`` says why they wait."""
    import acme_core.plugins

    stores = {**acme_core.plugins.list_stores(), BlockRecorder.name: BlockRecorder}
    monkeypatch.setattr(acme_core.plugins, "list_stores", lambda: stores)  # attach finds it
    logs, marks, out = tmp_path / "log", tmp_path / "marks", tmp_path / "run"
    logs.mkdir()
    marks.mkdir()
    handle = ParallelMap(fails_once_at_0_else_slow, list(range(4)), str(marks),
                         store=BlockRecorder, store_options={"log_dir": str(logs), "block": 4},
                         output_dir=out, retries=1,
                         backend=LocalElements(calls_per_element=4)).submit()
    deadline = time.monotonic() + 30
    record: dict = {}
    while not record.get("waiting") and time.monotonic() < deadline:
        handle.wait(progress=False, timeout=0.3)  # a process that waits a while, then stops
        record = json.loads((out / ".acme_detached" / "run.json").read_text())["record"]
    assert record["waiting"] == {"0": [False, 0]}  # call 0: a retry, for block 0
    status = handle.status()
    assert status.reasons.get("waiting for the element holding its block") == 1
    assert ParallelMap.attach(out).results(progress=False) == [0, 1, 4, 9]
    assert overlaps(logs, 4) == []


def test_calls_run_alone_one_at_a_time_per_block(tmp_path):
    """Calls of a block that keeps killing its element run alone, never two at once."""
    logs, marks = tmp_path / "log", tmp_path / "marks"
    logs.mkdir()
    marks.mkdir()
    with pytest.raises(ParallelMapError) as info, \
            ParallelMap(slow_square, list(range(8)), str(marks), die_at=1,
                        store=BlockRecorder, store_options={"log_dir": str(logs), "block": 4},
                        output_dir=tmp_path / "run",
                        backend=LocalElements(calls_per_element=4), progress=False) as pmap:
        pmap.compute()
    assert list(info.value.failed) == [1]
    assert overlaps(logs, 4) == []
    written = {int(k) for p in logs.glob("*.json")
               for k in json.loads(p.read_text())["values"]}
    assert written == set(range(8)) - {1}
