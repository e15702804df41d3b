"""``backend="slurm-array"`` against the real (single-node) SLURM of the CI.

Runs that outlive the driver: arrays split at the maximum array size with a
throttle, detach and attach in other processes, a driver killed while it
waits, an element cancelled mid-run, failing calls, resume, ``acme cancel``,
bad input refused before anything is submitted, and the executor contract.

The split test lowers the array size per test (``max_array_size``, below the
scheduler's ``MaxArraySize``, which is read from ``scontrol show config``) rather
than in the shared scheduler's configuration: SLURM here serves other tests and
engineers, and a restart of its daemons would disturb them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import h5py
import pytest
from arrays_util import (
    acme,
    arr_fails_on_odd,
    arr_fails_while,
    arr_hangs_at,
    arr_needs_memory,
    arr_slow,
    arr_square,
    arr_walkthrough,
    record,
    script,
    slurm_ours,
    wait_for,
    wait_gone,
)

from acme_backends.arrays import SlurmArrayExecutor
from acme_backends.arrays.slurm import parse_array_states, parse_max_array_size
from acme_core import ParallelMap, open_results
from acme_core.detached import RunHandle
from acme_core.errors import (
    ArgumentValueError,
    CallTimeoutError,
    ParallelMapError,
    UsageError,
    WorkerLostError,
)
from acme_core.testing import ExecutorTests
from jobqueue_util import slurm_status
from script_runner import run_script

RUNNING, WHY = slurm_status()
pytestmark = [pytest.mark.slurm, pytest.mark.skipif(not RUNNING, reason=WHY)]

FAST = {"poll_interval": 0.5}


@pytest.fixture(autouse=True)
def none_of_ours_left():
    yield
    left = wait_gone(slurm_ours)
    if left:
        subprocess.run(["scancel", *{j.split("_")[0] for j in left}], capture_output=True)
    assert left == [], f"array jobs left behind: {left}"


class TestSlurmArrayContract(ExecutorTests):
    def make_executor(self):
        return SlurmArrayExecutor(n_workers=2, mem_per_worker="500MB", poll_interval=0.5)


def test_walkthrough(tmp_path):
    out = tmp_path / "run"
    with ParallelMap(arr_walkthrough, [2, 4, 6, 8], 4, backend="slurm-array", output_dir=out,
                     n_workers=2, mem_per_worker="500MB", backend_options=FAST) as pmap:
        paths = pmap.compute()
    values = []
    for path in paths:
        with h5py.File(path, "r") as h5f:
            values.append(int(h5f["result_0"][()].ravel()[0]))
    assert values == [18, 24, 30, 36]
    logs = list((out / "job-logs").iterdir())
    assert logs and all(p.name.startswith("acme-arr_walkthrough-") for p in logs)


def test_2000_calls_split_into_arrays_with_a_throttle(tmp_path):
    out = tmp_path / "run"
    seen = {}

    def watch(pmap_record):
        for job in pmap_record["jobs"]:
            text = subprocess.run(["scontrol", "-o", "show", "job", job["job_id"]],
                                  capture_output=True, text=True).stdout
            if "ArrayTaskThrottle=" in text:
                seen[job["job_id"]] = text.split("ArrayTaskThrottle=")[1].split()[0]

    pmap = ParallelMap(arr_square, list(range(2000)), backend="slurm-array", output_dir=out,
                       write_pickle=True, n_workers=2, mem_per_worker="300MB",
                       backend_options={"calls_per_element": 40, "max_array_size": 20, **FAST})
    handle = pmap.submit()
    rec = record(out)
    watch(rec)
    assert handle.results(progress=False)[1999].endswith("arr_square_1999.pickle")
    # 50 elements of 40 calls, at most 20 per array: 3 arrays, one sbatch each
    assert [j["count"] for j in rec["jobs"]] == [20, 20, 10]
    assert record(out)["batches"] == 1  # no element was taken for lost and run again
    assert set(seen.values()) == {"2"}
    assert handle.status().done == 2000


def test_max_array_size_is_read_from_the_scheduler():
    text = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True).stdout
    limit = parse_max_array_size(text)
    assert limit is not None and limit > 1
    assert SlurmArrayExecutor(max_array_size=10**7).array_limit() == limit
    assert parse_array_states("12_3 RUNNING None\n12_4 PENDING JobArrayTaskLimit\n13 RUNNING x\n"
                              ) == {"12": {3: ("RUNNING", "None"),
                                           4: ("PENDING", "JobArrayTaskLimit")}}


def test_detach_then_attach_in_another_process(tmp_path):
    out = tmp_path / "run"
    submitter = script(tmp_path, f"""
from acme_core import ParallelMap
if __name__ == "__main__":
    pmap = ParallelMap(arr_slow, list(range(6)), output_dir={str(out)!r}, write_pickle=True,
                       backend="slurm-array", n_workers=2, mem_per_worker="300MB",
                       backend_options={{"poll_interval": 0.5}})
    pmap.submit()
    print("submitted")
""")
    done = run_script(submitter)
    assert done.returncode == 0, done.stderr
    assert "submitted" in done.stdout
    status = RunHandle(out).status()
    assert status.n_calls == 6 and status.jobs
    collector = script(tmp_path, f"""
import pickle
from acme_core import ParallelMap
paths = ParallelMap.attach({str(out)!r}).results(progress=False)
print([pickle.load(open(p, "rb")) for p in paths])
""")
    done = run_script(collector)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == str([1, 2, 3, 4, 5, 6])
    assert acme("status", str(out)).returncode == 0


def test_driver_killed_while_waiting_then_acme_wait_finishes(tmp_path):
    out = tmp_path / "run"
    driver = script(tmp_path, f"""
from acme_core import ParallelMap
if __name__ == "__main__":
    with ParallelMap(arr_slow, list(range(8)), output_dir={str(out)!r}, write_pickle=True,
                     backend="slurm-array", n_workers=2, mem_per_worker="300MB",
                     backend_options={{"poll_interval": 0.5}}) as pmap:
        pmap.compute()
""")
    proc = subprocess.Popen([sys.executable, str(driver)], cwd=tmp_path)
    wait_for(lambda: (out / ".acme_detached" / "run.json").exists())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    waited = acme("wait", str(out))
    assert waited.returncode == 0, waited.stdout + waited.stderr
    status = acme("status", str(out), "--json")
    assert '"done": 8' in status.stdout


def test_cancelled_element_reruns_its_calls(tmp_path, caplog):
    out = tmp_path / "run"
    pmap = ParallelMap(arr_slow, list(range(12)), seconds=2.0, output_dir=out, write_pickle=True,
                       backend="slurm-array", n_workers=2, mem_per_worker="300MB",
                       backend_options={"calls_per_element": 3, **FAST})
    handle = pmap.submit()
    job = record(out)["jobs"][0]["job_id"]
    running = wait_for(lambda: [j for j in slurm_ours() if j.startswith(job + "_")
                                and _running(j)])
    subprocess.run(["scancel", running[0]], check=True)
    with caplog.at_level("WARNING", logger="acme"):
        paths = handle.results(progress=False)
    assert len(paths) == 12 and all(p for p in paths)
    assert "ended before finishing calls" in caplog.text
    assert "it was cancelled: slurmstepd" in caplog.text  # the cause, from its job log


def _running(job: str) -> bool:
    out = subprocess.run(["squeue", "-h", "-o", "%T", "-j", job], capture_output=True,
                         text=True).stdout
    return "RUNNING" in out


def test_failing_calls_raise_after_attach(tmp_path):
    out = tmp_path / "run"
    pmap = ParallelMap(arr_fails_on_odd, list(range(6)), output_dir=out, write_pickle=True,
                       backend="slurm-array", n_workers=2, mem_per_worker="300MB",
                       backend_options=FAST)
    pmap.submit()
    with pytest.raises(UsageError):
        pmap.compute()
    with pytest.raises(ParallelMapError) as info:
        ParallelMap.attach(out).results(progress=False)
    err = info.value
    assert sorted(err.failed) == [1, 3, 5]
    assert isinstance(err.failed[1], ValueError) and "odd input 1" in str(err.failed[1])
    assert "arr_fails_on_odd" in err.tracebacks[3] and "odd input 3" in err.tracebacks[3]
    assert acme("status", str(out)).returncode == 1


def test_resume(tmp_path):
    out = tmp_path / "run"
    flag = tmp_path / "flag"
    flag.touch()
    kwargs = dict(output_dir=out, write_pickle=True, backend="slurm-array", n_workers=2,
                  mem_per_worker="300MB", backend_options=FAST)
    with pytest.raises(ParallelMapError), \
            ParallelMap(arr_fails_while, list(range(9)), str(flag), **kwargs) as pmap:
        pmap.compute()
    flag.unlink()
    with ParallelMap(arr_fails_while, list(range(9)), str(flag), resume=True, **kwargs) as pmap:
        paths = pmap.compute()
    assert len(paths) == 9 and all(paths)


def test_zarr_shards_on_elements_then_resume_into_the_same_shards(tmp_path):
    """Elements write zarr shards of 3 calls; the failed calls' rerun completes them."""
    out = tmp_path / "run"
    flag = tmp_path / "flag"
    flag.touch()
    kwargs = dict(output_dir=out, store="zarr", store_options={"shard_calls": 3},
                  result_shape=(None,), backend="slurm-array", n_workers=2,
                  mem_per_worker="300MB", backend_options=FAST)
    with pytest.raises(ParallelMapError) as info, \
            ParallelMap(arr_fails_while, list(range(9)), str(flag), **kwargs) as pmap:
        pmap.compute()
    assert sorted(info.value.failed) == [0, 3, 6]
    got = open_results(out)
    assert list(got.mask) == [x % 3 == 0 for x in range(9)]
    flag.unlink()
    with ParallelMap(arr_fails_while, list(range(9)), str(flag), resume=True, **kwargs) as pmap:
        pmap.compute()
    assert list(open_results(out)) == [x * 10 for x in range(9)]
    shards = sorted(os.listdir(out / "arr_fails_while.zarr" / "result_0"))
    assert shards == ["c.0", "c.1", "c.2", "zarr.json"]


def test_acme_cancel_empties_the_queue(tmp_path):
    out = tmp_path / "run"
    pmap = ParallelMap(arr_slow, list(range(6)), seconds=30, output_dir=out, write_pickle=True,
                       backend="slurm-array", n_workers=1, mem_per_worker="300MB",
                       backend_options=FAST)
    pmap.submit()
    assert wait_for(lambda: slurm_ours(("acme-arr_slow",)))
    done = acme("cancel", str(out))
    assert done.returncode == 0, done.stderr
    assert wait_gone(lambda: slurm_ours(("acme-arr_slow",))) == []
    status = RunHandle(out).status()
    assert status.cancelled and status.done == 0


def test_ctrl_c_of_a_waiting_driver_cancels_the_jobs(tmp_path):
    out = tmp_path / "run"
    driver = script(tmp_path, f"""
from acme_core import ParallelMap
if __name__ == "__main__":
    with ParallelMap(arr_slow, list(range(4)), seconds=60, output_dir={str(out)!r}, write_pickle=True,
                     backend="slurm-array", n_workers=2, mem_per_worker="300MB",
                     backend_options={{"poll_interval": 0.5}}) as pmap:
        pmap.compute()
""")
    proc = subprocess.Popen([sys.executable, str(driver)], cwd=tmp_path,
                            stderr=subprocess.PIPE, text=True)
    wait_for(lambda: slurm_ours(("acme-arr_slow",)))
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert "cancelled the run's jobs" in err
    assert wait_gone(lambda: slurm_ours(("acme-arr_slow",))) == []


@pytest.mark.parametrize(("options", "parameter"), [
    ({"partition": "nosuchpartition"}, "partition"),
    ({"mem_per_worker": "500GB"}, "mem_per_worker"),
    ({"resources": {"gpus": 1}}, "resources"),  # no node of this SLURM has GPUs
])
def test_bad_input_refused_before_anything_is_submitted(tmp_path, options, parameter):
    with pytest.raises(ArgumentValueError) as info:
        ParallelMap(arr_square, [1, 2], output_dir=tmp_path / "run", backend="slurm-array",
                    **options)
    assert parameter in str(info.value)
    assert not (tmp_path / "run").exists()  # refused before the run directory was made
    assert slurm_ours(("acme-arr_square",)) == []


def test_node_local_run_directory_refused(tmp_path):
    out = f"/dev/shm/acme-test-{os.getpid()}-{time.time_ns()}"
    try:
        with pytest.raises(ArgumentValueError, match="node-local") as info, \
                ParallelMap(arr_square, [1, 2], output_dir=out, backend="slurm-array") as pmap:
            pmap.compute()
        assert info.value.parameter == "output_dir"
        assert slurm_ours(("acme-arr_square",)) == []
    finally:
        subprocess.run(["rm", "-rf", out])


@pytest.mark.timeout(180)  # a run waiting for the hanging call would end here, failed
@pytest.mark.parametrize("per_element", [4, "auto"])
def test_timeout_stops_a_call_hanging_in_c_inside_an_element(tmp_path, per_element):
    """``timeout=2``: call 5 never returns (``signal.pause``); it fails alone with the
    limit, its element's other calls and every other element keep their results."""
    with ParallelMap(arr_hangs_at, list(range(8)), 5, output_dir=tmp_path / "run", timeout=2,
                     backend="slurm-array", n_workers=2, mem_per_worker="300MB",
                     backend_options={"calls_per_element": per_element, **FAST}) as pmap:
        with pytest.raises(ParallelMapError, match=r"1/8 calls") as info:
            pmap.compute()
    error = info.value.failed[5]
    assert isinstance(error, CallTimeoutError) and isinstance(error, TimeoutError)
    assert "call 5 ran longer than its time limit of 2 s" in str(error)
    assert [r is not None for r in info.value.results] == [True] * 5 + [False] + [True] * 2


def test_a_call_over_its_elements_memory_runs_again_with_more(tmp_path, caplog):
    """``retry_memory_factor=2``: call 4 needs 700 MiB in 500 MB elements. Its element
    stops itself (``ACME_ELEMENT_MEMORY``), its calls run again one per element, and
    call 4 runs once more in a job SLURM gives twice the memory, 954 MiB (``SLURM_MEM_PER_NODE``)."""
    out = tmp_path / "run"
    with caplog.at_level("WARNING", logger="acme"), \
            ParallelMap(arr_needs_memory, list(range(6)), 4, env="SLURM_MEM_PER_NODE",
                        output_dir=out, write_pickle=True, backend="slurm-array",
                        n_workers=2, mem_per_worker="500MB", retry_memory_factor=2,
                        backend_options={"calls_per_element": 3, **FAST}) as pmap:
        pmap.compute()
    results = open_results(out)
    assert [r[0] for r in results] == list(range(6))
    assert [r[1] for r in results] == [477] * 4 + [954] + [477]  # 500 MB is 477 MiB
    assert "Call 4 exceeded its element's memory; running it again in an element with more " \
           "memory (step 1)" in caplog.text
    assert record(out)["memory"] == {"4": 1}
    logs = "".join(p.read_text() for p in (out / "job-logs").iterdir())
    assert "exceeded memory limit" in logs  # the element said why it stopped


def test_without_a_factor_the_call_over_its_memory_fails_alone(tmp_path):
    out = tmp_path / "run"
    with ParallelMap(arr_needs_memory, list(range(6)), 4, output_dir=out, write_pickle=True,
                     backend="slurm-array", n_workers=2, mem_per_worker="500MB",
                     backend_options={"calls_per_element": 3, **FAST}) as pmap:
        with pytest.raises(ParallelMapError, match=r"1/6 calls") as info:
            pmap.compute()
    error = info.value.failed[4]
    assert isinstance(error, WorkerLostError)
    assert "it exceeded its memory limit" in str(error)
    assert sum(r is not None for r in info.value.results) == 5
