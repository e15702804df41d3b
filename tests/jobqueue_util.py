"""Helpers for the tests against real batch schedulers (test_slurm/sge/pbs/security).

The schedulers are started by ``.ci/schedulers/start-all.sh`` (SLURM with partitions
``debug`` (default), ``8GBXS``, ``8GBS``, ``16GBXS``, ``16GBS``; SGE with queue
``all.q``; PBS as Slurm's Torque wrappers in ``/opt/slurm-torque/bin``). A test
module skips, with the reason, only when its scheduler is not running, and never
when ``ACME_REQUIRE_SCHEDULERS=1`` (set by ``nox -s tests`` after starting them, so
that in CI a scheduler that is down fails its tests instead of skipping them).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import h5py

PBS_SHIM_BIN = "/opt/slurm-torque/bin"

#: the schedulers were started for this run: a test must not skip for want of one
REQUIRED = os.environ.get("ACME_REQUIRE_SCHEDULERS") == "1"


def _required(status: Callable[[], tuple[bool, str]]) -> Callable[[], tuple[bool, str]]:
    """Report a scheduler as running when it is required, so its tests run (and fail)."""

    def check() -> tuple[bool, str]:
        ok, why = status()
        return (True, why) if REQUIRED else (ok, why)

    check.__doc__ = status.__doc__
    return check

#: every cluster in these tests keeps its traffic on loopback
LOOPBACK = {"interface": "lo"}


def _ok(cmd: list[str]) -> tuple[bool, str]:
    if shutil.which(cmd[0]) is None:
        return False, f"`{cmd[0]}` is not installed"
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"`{' '.join(cmd)}` failed: {exc}"
    if done.returncode != 0:
        return False, f"`{' '.join(cmd)}` failed: {(done.stderr or done.stdout).strip()[:200]}"
    return True, done.stdout


@_required
def slurm_status() -> tuple[bool, str]:
    ok, out = _ok(["scontrol", "ping"])
    if ok and "UP" not in out:
        return False, f"slurmctld is not up: {out.strip()}"
    if not ok:
        return False, f"SLURM is not running ({out}); start it with .ci/schedulers/slurm.sh"
    ok, out = _ok(["sinfo", "-h", "-o", "%T"])
    if not ok or not ({"idle", "mixed", "allocated"} & set(out.split())):
        return False, f"no usable SLURM node (sinfo: {out.strip()!r}); see .ci/schedulers/slurm.sh"
    return True, ""


@_required
def sge_status() -> tuple[bool, str]:
    if shutil.which("qconf") is None:
        return False, "SGE is not installed; start it with .ci/schedulers/sge.sh"
    ok, out = _ok(["qconf", "-sql"])
    if not ok or "all.q" not in out.split():
        return False, f"SGE is not running ({out.strip()}); start it with .ci/schedulers/sge.sh"
    return True, ""


@_required
def pbs_status() -> tuple[bool, str]:
    if not os.access(os.path.join(PBS_SHIM_BIN, "qsub"), os.X_OK):
        return False, ("the PBS shim (Slurm's Torque wrappers) is not installed; start it with "
                       ".ci/schedulers/pbs-shim.sh")
    return slurm_status()


#: names of the jobs these tests submit (dask-jobqueue's default, and one test's own);
#: jobs of other names (another engineer's, on a shared machine) are not these tests' business
OUR_JOB_NAMES = ("dask-worker", "acme-pass-through")


def _ours(name: str, width: int | None = None) -> bool:
    return any(name.startswith(n[:width]) for n in OUR_JOB_NAMES)


def slurm_jobs() -> list[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i %j"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines()
            if len(line.split()) == 2 and _ours(line.split()[1])]


def sge_jobs() -> list[str]:
    out = subprocess.run(["qstat", "-u", "*"], capture_output=True, text=True,
                         env={**os.environ, "PATH": _without_shim()}).stdout
    # qstat cuts names to 10 characters
    return [line.split()[0] for line in out.splitlines()[2:]
            if len(line.split()) > 2 and _ours(line.split()[2], 10)]


def _without_shim() -> str:
    return os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != PBS_SHIM_BIN)


def wait_until_empty(list_jobs, timeout: float = 20) -> list[str]:
    """Poll the queue until it is empty (or ``timeout``); return what is left."""
    deadline = time.monotonic() + timeout
    left = list_jobs()
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = list_jobs()
    return left


def scontrol_job(job_id: str) -> dict[str, str]:
    out = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True,
                         text=True, check=True).stdout
    return dict(kv.split("=", 1) for kv in out.split() if "=" in kv)


def walkthrough(x, y, z=3):
    """ACME's walkthrough function."""
    return (x + y) * z


def read_results(paths: list[str]) -> list[int]:
    values = []
    for path in paths:
        with h5py.File(path, "r") as h5f:
            values.append(int(h5f["result_0"][()].ravel()[0]))
    return values


def files_in(path: Path) -> list[str]:
    return sorted(p.name for p in Path(path).iterdir())


def run_walkthrough(backend: str, out: Path) -> tuple[list[str], int]:
    """ACME's walkthrough on ``backend`` with 2 one-core workers; (result paths, workers up)."""
    from acme_core import ParallelMap

    with ParallelMap(walkthrough, [2, 4, 6, 8], 4, backend=backend, n_workers=2,
                     mem_per_worker="1GB", setup_timeout=60, output_dir=out,
                     backend_options={"run_dir": out, **LOOPBACK}) as pmap:
        paths = pmap.compute()
        workers = len(pmap.executor.client.scheduler_info()["workers"])
    return paths, workers


@contextlib.contextmanager
def queue_stays_empty(list_jobs: Callable[[], list[str]],
                      cancel: list[str] | None = None) -> Iterator[None]:
    """Around a test: the queue is empty before and after it (nothing may be left behind).

    ``cancel`` is the scheduler's cancel command; leftovers are cancelled before the
    failure is reported, so one bad test does not fail the next ones too.
    """
    assert wait_until_empty(list_jobs) == [], "jobs left from an earlier test"
    yield
    left = wait_until_empty(list_jobs)
    if left and cancel:
        subprocess.run([*cancel, *left], capture_output=True)
    assert left == [], f"jobs left in the queue after the test: {left}"
