"""Only our workers get in: job-queue schedulers use TLS with temporary credentials.

On a shared cluster network, a dask scheduler that accepts any connection runs
anyone's code as the user. These tests start a real SLURM-backed cluster and try
to connect without the credentials.
"""

from __future__ import annotations

import stat
from urllib.parse import urlparse

import pytest

from acme_core import cluster_cleanup, local_cluster_setup, slurm_cluster_setup
from jobqueue_util import LOOPBACK, slurm_jobs, slurm_status, wait_until_empty

RUNNING, WHY = slurm_status()


# every test but the last is marked slurm, so that ``-m "not slurm"`` leaves SLURM alone


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory):
    if not RUNNING:
        pytest.skip(WHY)
    logs = tmp_path_factory.mktemp("tls-logs")
    client = slurm_cluster_setup(n_workers=1, mem_per_worker="500MB", timeout=60,
                                 interactive=False, log_directory=logs, **LOOPBACK)
    yield client, logs
    cluster_cleanup(client)
    assert wait_until_empty(slurm_jobs) == []


@pytest.mark.slurm
@pytest.mark.skipif(not RUNNING, reason=WHY)
def test_scheduler_speaks_tls_and_workers_connected(tls_cluster):
    client, _ = tls_cluster
    assert client.scheduler.address.startswith("tls://")
    workers = client.scheduler_info()["workers"]
    assert len(workers) == 1 and all(a.startswith("tls://") for a in workers)
    assert client.submit(sum, [1, 2]).result(timeout=30) == 3


@pytest.mark.slurm
@pytest.mark.skipif(not RUNNING, reason=WHY)
def test_plain_tcp_client_cannot_connect(tls_cluster):
    from distributed import Client

    client, _ = tls_cluster
    tcp = client.scheduler.address.replace("tls://", "tcp://")
    with pytest.raises((OSError, TimeoutError)):
        Client(tcp, timeout=3, set_as_default=False)


@pytest.mark.slurm
@pytest.mark.skipif(not RUNNING, reason=WHY)
def test_tls_client_without_the_credentials_cannot_connect(tls_cluster):
    from distributed import Client
    from distributed.security import Security

    client, _ = tls_cluster
    stranger = Security.temporary()  # valid TLS, but not signed by this cluster's CA
    with pytest.raises((OSError, TimeoutError)):
        Client(client.scheduler.address, security=stranger, timeout=3, set_as_default=False)


@pytest.mark.slurm
@pytest.mark.skipif(not RUNNING, reason=WHY)
def test_worker_credentials_are_private(tls_cluster):
    _, logs = tls_cluster
    tls_dir = logs / ".tls"
    assert stat.S_IMODE(tls_dir.stat().st_mode) == 0o700
    keys = list(tls_dir.iterdir())
    assert keys and all(stat.S_IMODE(k.stat().st_mode) == 0o600 for k in keys)


@pytest.mark.slurm
@pytest.mark.skipif(not RUNNING, reason=WHY)
def test_dashboard_binds_to_localhost(tls_cluster):
    client, _ = tls_cluster
    assert urlparse(client.dashboard_link).hostname == "127.0.0.1"


@pytest.mark.slurm
@pytest.mark.skipif(not RUNNING, reason=WHY)
def test_security_false_opts_out(tmp_path):
    client = slurm_cluster_setup(n_workers=1, mem_per_worker="500MB", timeout=60,
                                 interactive=False, security=False, reuse=False,
                                 log_directory=tmp_path / "logs", **LOOPBACK)
    try:
        assert client.scheduler.address.startswith("tcp://")
        assert not (tmp_path / "logs" / ".tls").exists()
        ours = set(client.cluster.acme_job_record.job_ids)
    finally:
        cluster_cleanup(client)
    assert wait_until_empty(lambda: sorted(ours & set(slurm_jobs()))) == []


def test_local_cluster_dashboard_binds_to_localhost():
    client = local_cluster_setup(n_workers=1, interactive=False)
    try:
        assert urlparse(client.dashboard_link).hostname == "127.0.0.1"
    finally:
        cluster_cleanup(client)
