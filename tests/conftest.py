"""Shared fixtures: one real dask LocalCluster for the session, scratch directories."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.fixture(scope="session")
def client():
    """A real 2-worker LocalCluster; ParallelMap(backend="auto") attaches to it."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address="127.0.0.1:0", host="127.0.0.1")
    client = Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.fixture(autouse=True)
def _both_workers_up(request):
    """A test on the session's cluster starts with both workers up.

    Tests kill workers on purpose; the nanny restarts them, but on a busy machine a
    worker killed again while it restarts stays away longer than distributed's
    ``lost-worker-timeout`` and the cluster forgets it for good (acme-core revives the
    clusters it starts itself, not one the user brought, as here): the next test
    would run on one worker, or none.
    """
    if "client" in request.fixturenames:
        client = request.getfixturevalue("client")
        cluster = client.cluster
        if cluster is not None and len(cluster.workers) < 2:
            cluster.scale(2)
        client.wait_for_workers(2, timeout=120)
    yield


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run the test with the current directory in a scratch directory."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _pip_install(tmp_path_factory, name: str) -> Path:
    target = tmp_path_factory.mktemp(f"{name}-site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--target", str(target), str(HERE / "data" / name)],
                   check=True)
    return target


@pytest.fixture(scope="session")
def toy_plugin_path(tmp_path_factory) -> Path:
    """The toy third-party plugin distribution, really pip-installed into a scratch dir."""
    return _pip_install(tmp_path_factory, "toy-plugin")


@pytest.fixture(scope="session")
def rival_plugin_path(tmp_path_factory) -> Path:
    """A distribution of plugins with mistakes (a misspelt hook, names already taken)."""
    return _pip_install(tmp_path_factory, "rival-plugin")
