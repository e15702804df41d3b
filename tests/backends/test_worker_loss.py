"""Workers that die mid-call and a driver interrupted with Ctrl-C: nothing is lost.

These tests kill real processes: a dask worker with SIGKILL, a driver script with
SIGINT. Every finished file must open with h5py afterwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import h5py
import psutil
import pytest

from acme_core import ParallelMap, open_results
from acme_core.manifest import Manifest


def slow_square(x, pid_dir):
    Path(pid_dir, str(os.getpid())).touch()  # tell the test which process runs calls
    time.sleep(0.3)
    return x * x


def _kill_first_worker(pid_dir: Path, killed: list[int], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = [int(p.name) for p in pid_dir.iterdir()]
        if pids:
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])
            return
        time.sleep(0.05)


def _valid_h5_files(directory: Path) -> list[Path]:
    files = sorted(directory.glob("*.h5"))
    for path in files:
        with h5py.File(path, "r") as h5f:
            assert "result_0" in h5f
    return files


def test_worker_killed_mid_call_loses_nothing(in_tmp):
    from acme_backends.dask import DaskLocalExecutor

    pid_dir = in_tmp / "pids"
    pid_dir.mkdir()
    killed: list[int] = []
    executor = DaskLocalExecutor(n_workers=2)
    try:
        killer = threading.Thread(target=_kill_first_worker, args=(pid_dir, killed))
        killer.start()
        with ParallelMap(slow_square, list(range(16)), str(pid_dir), output_dir="run",
                         backend=executor, chunk_size=2) as pmap:
            paths = pmap.compute()
        killer.join()
    finally:
        executor.shutdown()
    assert len(killed) == 1 and not psutil.pid_exists(killed[0])
    assert len(paths) == 16
    assert [int(v[0]) for v in open_results(in_tmp / "run")] == [x * x for x in range(16)]
    payload = in_tmp / "run" / "slow_square_payload"
    assert len(_valid_h5_files(payload)) == 16
    assert not [p for p in os.listdir(payload) if p.endswith(".partial")]


DRIVER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from acme_core import ParallelMap

    def slow(x):
        time.sleep(0.4)
        return x + 1

    if __name__ == "__main__":
        resume = sys.argv[2] == "resume"
        with ParallelMap(slow, list(range(30)), output_dir=sys.argv[1], n_workers=2,
                         resume=resume, chunk_size=1) as pmap:
            print("RESULTS", len(pmap.compute()), flush=True)
""")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_keeps_finished_results_and_resume_finishes(tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    run_dir = tmp_path / "run"
    payload = run_dir / "slow_payload"
    proc = subprocess.Popen([sys.executable, str(script), str(run_dir), "new"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    children: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            children |= {c.pid for c in psutil.Process(proc.pid).children(recursive=True)}
            if payload.is_dir() and len(list(payload.glob("*.h5"))) >= 4:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the run never got going")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0 and "RESULTS" not in out
    assert "KeyboardInterrupt" in err
    assert "rerun with resume=True" in err
    # the cluster this run started is gone: no worker or nanny process outlives the driver
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(psutil.pid_exists(p) for p in children):
        time.sleep(0.2)
    alive = [p for p in children if psutil.pid_exists(p)
             and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert children and alive == []
    finished = _valid_h5_files(payload)
    assert 4 <= len(finished) < 30
    # the manifest is the only source of truth: resume adopts the calls it lists (the
    # results on disk when the driver stopped); a call a worker finished later reruns
    listed = len(Manifest.load(run_dir).finished)
    assert 4 <= listed <= len(finished)

    done = subprocess.run([sys.executable, str(script), str(run_dir), "resume"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert "RESULTS 30" in done.stdout
    assert f"{listed} of 30 calls already finished" in done.stderr
    assert [int(v[0]) for v in open_results(run_dir)] == list(range(1, 31))


@pytest.mark.parametrize("store", [["--store", "hdf5"], ["--store", "hdf5-single", "--stacked"]],
                         ids=["hdf5", "hdf5-single-stacked"])
def test_soak_script_prints_lost_0(tmp_path, store):
    """A short run of benchmarks/soak_kill_workers.py: workers SIGKILLed every second."""
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "soak_kill_workers.py"
    try:  # a shorter timeout than pytest's, so that a stuck run shows what it logged
        out = subprocess.run([sys.executable, str(script), "--calls", "400", "--every", "1",
                              "--seconds", "0.02", "--output-dir", str(tmp_path / "run"),
                              *store], capture_output=True, text=True, timeout=240, cwd=tmp_path)
    except subprocess.TimeoutExpired as exc:
        logged = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
        pytest.fail(f"the soak run did not finish in 240 s; its log ended with:\n{logged[-3000:]}")
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    killed = int(out.stdout.split("workers killed:")[1].split()[0])
    assert killed >= 1
    assert out.stdout.strip().splitlines()[-1] == "lost: 0"


def test_workers_the_local_cluster_gave_up_on_are_started_again(in_tmp):
    """distributed's SpecCluster forgets a worker that stays away longer than
    ``distributed.deploy.lost-worker-timeout`` and never starts it again; the
    dask-local backend does (the soak test's kill storm ran into this: every
    worker gone, the run waiting for nothing).
    """
    import dask

    from acme_backends.dask import DaskLocalExecutor

    executor = DaskLocalExecutor(n_workers=1)
    cluster = executor.client.cluster
    try:
        with dask.config.set({"distributed.deploy.lost-worker-timeout": "10ms"}):
            (pid,) = executor.client.run(os.getpid).values()
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while cluster.workers and time.monotonic() < deadline:
                time.sleep(0.05)
        assert cluster.workers == {} and len(cluster.worker_spec) == 1  # dropped, spec kept
        time.sleep(1)
        assert cluster.workers == {}  # and nothing starts it again by itself
        deadline = time.monotonic() + 60
        while executor.worker_count() < 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert executor.worker_count() == 1
        assert executor.submit(abs, -2).result(timeout=30) == 2
    finally:
        executor.shutdown()
