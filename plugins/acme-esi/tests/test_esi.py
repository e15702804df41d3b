"""acme-esi: partition rules (pure), registration (a real pip install) and
``esi_cluster_setup`` against the local SLURM, whose partitions are named like ESI's
(``.ci/schedulers/slurm.sh`` of acme-core: ``8GBXS``, ``8GBS``, ``16GBXS``, ``16GBS``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from acme_esi import esi_cluster_setup, partition_memory_gb, pick_partition

LOCAL = ["debug", "8GBXS", "8GBS", "16GBXS", "16GBS"]


def slurm_up() -> bool:
    if os.environ.get("ACME_REQUIRE_SCHEDULERS") == "1":  # started for this run: never skip
        return True
    if shutil.which("scontrol") is None:
        return False
    out = subprocess.run(["scontrol", "ping"], capture_output=True, text=True)
    names = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True).stdout
    return "UP" in out.stdout and "8GBS" in names


#: needs SLURM; also marked ``slurm`` so that ``-m "not slurm"`` leaves SLURM alone
slurm = pytest.mark.skipif(not slurm_up(), reason="no local SLURM with ESI-like partitions; "
                           "start it with acme-core's .ci/schedulers/slurm.sh")
on_slurm = pytest.mark.slurm


def squeue() -> list[str]:
    return subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True,
                          text=True).stdout.split()


def job(job_id: str) -> dict[str, str]:
    out = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True,
                         text=True).stdout
    return dict(kv.split("=", 1) for kv in out.split() if "=" in kv)


def wait_empty(timeout: float = 20) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := squeue()) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


# ---------------------------------------------------------------- partition rules
@pytest.mark.parametrize(("need", "expected"), [
    (1, "8GBS"), (8, "8GBS"), (8.5, "16GBS"), (10, "16GBS"), (12, "16GBS"), (16, "16GBS"),
])
def test_auto_picks_the_smallest_partition_that_fits(need, expected):
    assert pick_partition(need, LOCAL) == expected


def test_auto_never_picks_a_partition_that_is_too_small():
    # ACME picks the nearest size: 10 GB -> 8GBS, where the job does not fit
    assert pick_partition(10, ["8GBS", "16GBS", "32GBS"]) == "16GBS"
    assert pick_partition(17, ["8GBS", "16GBS", "32GBS"]) == "32GBS"


def test_auto_without_a_partition_large_enough():
    with pytest.raises(ValueError, match=r"no 'S' partition has 20 GB.*\['8GBS', '16GBS'\]"):
        pick_partition(20, LOCAL)


def test_partition_memory():
    assert partition_memory_gb("16GBXS") == 16
    assert partition_memory_gb("E880") is None


def test_partition_is_required_and_checked():
    # checked before SLURM is asked anything: this test needs no scheduler
    with pytest.raises(TypeError):
        esi_cluster_setup()  # type: ignore[call-arg]  # no default, as in ACME
    with pytest.raises(ValueError, match="not for dask workers"):
        esi_cluster_setup(partition="PREPO", interactive=False)


@slurm
@on_slurm
def test_auto_partition_needs_the_memory_on_slurm():
    with pytest.raises(ValueError, match="give `mem_per_worker`"):
        esi_cluster_setup(partition="auto", interactive=False)
    assert squeue() == []


# ---------------------------------------------------------------- off SLURM, as ACME
FALLBACK = """
import json, logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
from acme_esi import esi_cluster_setup

if __name__ == "__main__":
    first = esi_cluster_setup(partition="auto", n_workers=1, interactive=False)
    again = esi_cluster_setup(partition="8GBXS", n_workers=1, interactive=False)
    print(json.dumps({"cluster": type(first.cluster).__name__, "same": again is first,
                      "workers": len(first.scheduler_info()["workers"])}))
    first.close(); first.cluster.close()
"""


def test_a_failing_sinfo_means_a_local_cluster_and_a_rerun_reuses_it(tmp_path):
    """Issue 18, finding 3: SLURM's client installed, no controller (ACME checks sinfo's exit
    code); a second call returns the running client, as ACME does.

    The ``sinfo`` here is a stand-in that fails as SLURM's does without a controller: the
    real SLURM of this machine has to stay up for the other tests.
    """
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "sinfo"
    fake.write_text("#!/bin/sh\necho 'slurm_load_partitions: Unable to contact slurm controller "
                    "(connect failure)' >&2\nexit 1\n")
    fake.chmod(0o755)
    script = tmp_path / "fallback.py"
    script.write_text(FALLBACK)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=180)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"cluster": "LocalCluster", "same": True, "workers": 1}
    assert "`sinfo` is missing or does not answer" in out.stderr
    assert "Found existing parallel computing client" in out.stderr


# ---------------------------------------------------------------- registration
def test_registered_through_the_acme_entry_point(installed_plugin, tmp_path):
    script = ("import json; from acme_core import list_cluster_setups; "
              "from acme_core.plugins import failed_plugins; "
              "print(json.dumps({'setups': sorted(list_cluster_setups()), "
              "'failed': failed_plugins(), "
              "'module': list_cluster_setups()['esi'].__module__}))")
    env = {**os.environ, "PYTHONPATH": str(installed_plugin)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert "esi" in result["setups"] and "slurm" in result["setups"]
    assert result["failed"] == {}
    assert result["module"] == "acme_esi.setup"


# ---------------------------------------------------------------- on the local SLURM
@on_slurm
@slurm
def test_auto_partition_reaches_the_job(tmp_path):
    from acme_core import cluster_cleanup

    client = esi_cluster_setup(partition="auto", mem_per_worker="3GB", n_workers=1, timeout=60,
                               interactive=False, interface="lo", reuse=False,
                               log_directory=tmp_path / "logs")
    try:
        (job_id,) = client.cluster.acme_job_record.job_ids
        info = job(job_id)
        assert info["Partition"] == "8GBS"
        assert info["MinMemoryNode"] == "2862M"  # 3 GB (decimal), to the MiB
        assert client.submit(sum, [1, 2]).result(timeout=30) == 3
    finally:
        cluster_cleanup(client)
    assert wait_empty() == []


@on_slurm
@slurm
def test_memory_estimate_takes_the_whole_partition(tmp_path):
    from acme_core import cluster_cleanup

    client = esi_cluster_setup(partition="auto", mem_per_worker="estimate_memuse:10",
                               n_workers=1, timeout=60, interactive=False, interface="lo",
                               reuse=False, log_directory=tmp_path / "logs")
    try:
        (job_id,) = client.cluster.acme_job_record.job_ids
        info = job(job_id)
        assert info["Partition"] == "16GBS"
        assert info["MinMemoryNode"] == "15900M"  # 16000 MB less the 100 MB cushion
    finally:
        cluster_cleanup(client)
    assert wait_empty() == []


@on_slurm
@slurm
def test_walkthrough_with_esi_setup(tmp_path):
    import h5py
    from acme_core import ParallelMap, cluster_cleanup

    client = esi_cluster_setup(partition="8GBXS", mem_per_worker="1GB", n_workers=2,
                               timeout=60, interactive=False, interface="lo", reuse=False,
                               log_directory=tmp_path / "logs")
    try:
        with ParallelMap(_f, [2, 4, 6, 8], 4, output_dir=tmp_path / "run") as pmap:
            paths = pmap.compute()
        values = []
        for path in paths:
            with h5py.File(path, "r") as h5f:
                values.append(int(h5f["result_0"][()].ravel()[0]))
        assert values == [18, 24, 30, 36]
        assert client.status == "running"  # attached to it, so it stays up
    finally:
        cluster_cleanup(client)
    assert wait_empty() == []


@on_slurm
@slurm
def test_bad_partition_lists_the_partitions():
    with pytest.raises(ValueError, match="available SLURM partitions are"):
        esi_cluster_setup(partition="7GBS", interactive=False, interface="lo")
    assert squeue() == []


def _f(x, y, z=3):
    return (x + y) * z


def test_auto_backend_is_slurm_only_on_esi_hosts(monkeypatch):
    from acme_esi import partitions, plugin

    monkeypatch.setattr(plugin, "current_client", lambda: None)
    monkeypatch.setattr(partitions, "is_esi_host", lambda: False)
    assert plugin.acme_auto_backend() is None  # elsewhere acme-core runs locally
    # this machine is not an ESI host, so the host test is replaced: the answer itself is real
    monkeypatch.setattr(partitions, "is_esi_host", lambda: True)
    assert plugin.acme_auto_backend() == ("slurm", {"partition": "8GBXS"})


def test_auto_backend_attaches_to_a_running_client_on_esi_hosts(monkeypatch):
    from distributed import Client, LocalCluster

    from acme_esi import partitions, plugin

    monkeypatch.setattr(partitions, "is_esi_host", lambda: True)
    with LocalCluster(n_workers=1, processes=False, dashboard_address="127.0.0.1:0") as cluster, \
            Client(cluster):
        assert plugin.acme_auto_backend() is None  # ACME attaches to the running client
