"""``backend="sge-array"`` against the real (single-host) Grid Engine of the CI.

The same runs as on SLURM, smaller: arrays split (``max_array_size`` below the
scheduler's ``max_aj_tasks``) with the ``-tc`` throttle, detach and attach in
another process, an element deleted mid-run, failing calls, ``acme cancel``,
an unknown queue refused, and the executor contract.
"""

from __future__ import annotations

import subprocess

import h5py
import pytest
from arrays_util import (
    acme,
    arr_fails_on_odd,
    arr_hangs_at,
    arr_needs_memory,
    arr_slow,
    arr_square,
    arr_walkthrough,
    record,
    script,
    sge_ours,
    wait_for,
    wait_gone,
)

from acme_backends.arrays import SgeArrayExecutor
from acme_backends.arrays.sge import expand_tasks, parse_array_states, parse_max_aj_tasks
from acme_core import ParallelMap, open_results
from acme_core.detached import RunHandle
from acme_core.errors import ArgumentValueError, CallTimeoutError, ParallelMapError
from acme_core.testing import ExecutorTests
from jobqueue_util import sge_status
from script_runner import run_script

RUNNING, WHY = sge_status()
pytestmark = [pytest.mark.sge, pytest.mark.skipif(not RUNNING, reason=WHY)]

OPTS = {"backend": "sge-array", "n_workers": 2, "mem_per_worker": "300MB",
        "backend_options": {"poll_interval": 0.5}}


@pytest.fixture(autouse=True)
def none_of_ours_left():
    yield
    left = wait_gone(sge_ours)
    if left:
        subprocess.run(["qdel", *set(left)], capture_output=True)
    assert left == [], f"array jobs left behind: {left}"


class TestSgeArrayContract(ExecutorTests):
    def make_executor(self):
        return SgeArrayExecutor(n_workers=2, mem_per_worker="300MB", poll_interval=0.5)


def test_walkthrough(tmp_path):
    out = tmp_path / "run"
    with ParallelMap(arr_walkthrough, [2, 4, 6, 8], 4, output_dir=out, **OPTS) as pmap:
        paths = pmap.compute()
    values = []
    for path in paths:
        with h5py.File(path, "r") as h5f:
            values.append(int(h5f["result_0"][()].ravel()[0]))
    assert values == [18, 24, 30, 36]
    assert any((out / "job-logs").iterdir())


def test_split_into_arrays_with_a_throttle(tmp_path):
    out = tmp_path / "run"
    options = {**OPTS, "backend_options": {"calls_per_element": 10, "max_array_size": 8,
                                           "poll_interval": 0.5}}
    pmap = ParallelMap(arr_square, list(range(200)), output_dir=out, write_pickle=True,
                       **options)
    handle = pmap.submit()
    rec = record(out)
    text = subprocess.run(["qstat", "-j", rec["jobs"][0]["job_id"]], capture_output=True,
                          text=True).stdout
    paths = handle.results(progress=False)
    assert len(paths) == 200 and all(paths)
    assert [j["count"] for j in rec["jobs"]] == [8, 8, 4]
    throttle = [line for line in text.splitlines() if line.startswith("maximum concurrency")]
    assert throttle and throttle[0].split()[-1] == "2"


def test_parsers():
    text = subprocess.run(["qconf", "-sconf"], capture_output=True, text=True).stdout
    assert (parse_max_aj_tasks(text) or 0) > 1
    assert expand_tasks("5-9:2,12") == [5, 7, 9, 12]
    lines = ("job-ID prior name user state submit/start at queue slots ja-task-ID\n"
             "-----\n"
             "7 0.5 acme-f root r 12/02/2026 05:00:00 all.q@vm 1 3\n"
             "7 0.5 acme-f root qw 12/02/2026 05:00:00 1 4-5:1\n")
    states = parse_array_states(lines, {"7"})
    assert states["7"][2][0] == "RUNNING" and states["7"][4][0] == "PENDING"


def test_detach_then_attach_in_another_process(tmp_path):
    out = tmp_path / "run"
    submitter = script(tmp_path, f"""
from acme_core import ParallelMap
if __name__ == "__main__":
    ParallelMap(arr_slow, list(range(4)), output_dir={str(out)!r}, write_pickle=True,
                backend="sge-array", n_workers=2, mem_per_worker="300MB").submit()
""")
    assert run_script(submitter).returncode == 0
    done = acme("wait", str(out), "--quiet")
    assert done.returncode == 0, done.stdout + done.stderr
    assert RunHandle(out).status().done == 4


def test_deleted_element_reruns_its_calls(tmp_path):
    out = tmp_path / "run"
    options = {**OPTS, "backend_options": {"calls_per_element": 2, "poll_interval": 0.5}}
    handle = ParallelMap(arr_slow, list(range(8)), seconds=2.0, output_dir=out,
                         write_pickle=True, **options).submit()
    job = record(out)["jobs"][0]["job_id"]

    def running_task():
        text = subprocess.run(["qstat", "-u", "*"], capture_output=True, text=True).stdout
        return [line.split()[-1] for line in text.splitlines()
                if line.split()[:1] == [job] and line.split()[4] == "r"]

    task = wait_for(running_task)[0]
    subprocess.run(["qdel", job, "-t", task], check=True, capture_output=True)
    paths = handle.results(progress=False)
    assert len(paths) == 8 and all(paths)


def test_failing_calls_raise_after_attach(tmp_path):
    out = tmp_path / "run"
    ParallelMap(arr_fails_on_odd, list(range(4)), output_dir=out, write_pickle=True,
                **OPTS).submit()
    with pytest.raises(ParallelMapError) as info:
        ParallelMap.attach(out).results(progress=False)
    assert sorted(info.value.failed) == [1, 3]
    assert "odd input 3" in info.value.tracebacks[3]


def test_acme_cancel_empties_the_queue(tmp_path):
    out = tmp_path / "run"
    ParallelMap(arr_slow, list(range(4)), seconds=30, output_dir=out, write_pickle=True,
                **OPTS).submit()
    assert wait_for(sge_ours)
    assert acme("cancel", str(out)).returncode == 0
    assert wait_gone(sge_ours) == []


def test_unknown_queue_refused(tmp_path):
    with pytest.raises(ArgumentValueError, match="partition|queue"):
        ParallelMap(arr_square, [1, 2], output_dir=tmp_path / "run", backend="sge-array",
                    partition="nosuch.q")
    assert not (tmp_path / "run").exists()
    assert sge_ours() == []


@pytest.mark.timeout(180)  # a run waiting for the hanging call would end here, failed
def test_timeout_stops_a_call_hanging_in_c_inside_an_element(tmp_path):
    """``timeout=2`` on SGE: call 5 (``signal.pause``) fails alone with the limit."""
    with ParallelMap(arr_hangs_at, list(range(8)), 5, output_dir=tmp_path / "run", timeout=2,
                     **{**OPTS, "backend_options": {"calls_per_element": 4,
                                                    "poll_interval": 0.5}}) as pmap:
        with pytest.raises(ParallelMapError, match=r"1/8 calls") as info:
            pmap.compute()
    error = info.value.failed[5]
    assert isinstance(error, CallTimeoutError)
    assert "call 5 ran longer than its time limit of 2 s" in str(error)
    assert [r is not None for r in info.value.results] == [True] * 5 + [False] + [True] * 2


def test_a_call_over_its_elements_memory_runs_again_with_more(tmp_path, caplog):
    """``retry_memory_factor=2`` on SGE (which does not enforce ``mem_free``): the
    300 MB (287 MiB) element stops itself; 574 MiB are not enough either, so call 4
    runs a third time, in a 1148 MiB element."""
    out = tmp_path / "run"
    with caplog.at_level("WARNING", logger="acme"), \
            ParallelMap(arr_needs_memory, list(range(6)), 4, output_dir=out,
                        write_pickle=True, retry_memory_factor=2,
                        **{**OPTS, "backend_options": {"calls_per_element": 3,
                                                       "poll_interval": 0.5}}) as pmap:
        pmap.compute()
    results = open_results(out)
    assert [r[0] for r in results] == list(range(6))
    assert [r[1] for r in results] == [287] * 4 + [1148] + [287]
    assert "running it again in an element with more memory (step 1)" in caplog.text
    assert "running it again in an element with more memory (step 2)" in caplog.text
