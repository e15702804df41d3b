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


@pytest.mark.slurm
@pytest.mark.skipif(not RUNNING, reason=WHY)
def test_worker_http_server_binds_to_localhost(tls_cluster):
    """Before: every worker answered /health, /metrics and /sitemap.json on 0.0.0.0 without TLS."""
    import psutil

    client, _ = tls_cluster
    for worker in client.scheduler_info()["workers"].values():
        assert worker["services"]  # the worker reports its HTTP port ("dashboard")
        port = worker["services"]["dashboard"]
        bound = [c.laddr.ip for c in psutil.net_connections("tcp")
                 if c.status == psutil.CONN_LISTEN and c.laddr.port == port]
        assert bound and all(ip == "127.0.0.1" for ip in bound), bound


def test_job_scripts_bind_the_workers_http_server_to_localhost(tmp_path):
    """The worker command line of every job-queue kind, without a scheduler."""
    from acme_backends.jobqueue import executor as jq
    from acme_backends.jobqueue._djq_hooks import cluster_classes
    from acme_backends.jobqueue.settings import JobQueueSettings
    from acme_backends.jobqueue.startup import WORKER_HTTP_ADDRESS, cluster_keywords

    fields = {name: None for name in JobQueueSettings.__dataclass_fields__}
    for kind in (jq.SlurmExecutor, jq.SgeExecutor, jq.PbsExecutor):
        settings = JobQueueSettings(**{**fields, "security": False, "job_extra": (),
                                       "extra": {}, "cores": 1, "processes": 1,
                                       "memory": "1GB", "memory_mib": 954})
        _, job_cls = cluster_classes(kind)
        args = cluster_keywords(kind, settings, tmp_path, job_cls)["worker_extra_args"]
        assert args[-2:] == ["--dashboard-address", WORKER_HTTP_ADDRESS]
        mine = {**settings.__dict__, "extra": {"worker_extra_args": ["--dashboard-address",
                                                                    "0.0.0.0:8788"]}}
        args = cluster_keywords(kind, JobQueueSettings(**mine), tmp_path,
                                job_cls)["worker_extra_args"]
        assert args == ["--dashboard-address", "0.0.0.0:8788"]  # the user's choice stands
