"""Shared fixtures: one real dask LocalCluster for the session, scratch directories."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent


class DaskSession:
    """The session's real 2-worker LocalCluster, kept at two workers for every test.

    Tests kill workers on purpose; the nanny restarts them, but on a busy machine a
    worker killed again while it restarts stays away longer than distributed's
    ``lost-worker-timeout`` and the cluster forgets it for good, or its nanny hangs
    (acme-core revives the clusters it starts itself, not one the user brought, as
    here). The next tests then ran on one worker, or none. :meth:`healthy` asks for
    the missing worker, and starts a new cluster when it does not come.
    """

    def __init__(self) -> None:
        self.cluster: Any = None
        self.client: Any = None

    def start(self) -> None:
        from distributed import Client, LocalCluster

        self.cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                    dashboard_address="127.0.0.1:0", host="127.0.0.1")
        self.client = Client(self.cluster)  # the default client: backend="auto" uses it

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
        with contextlib.suppress(Exception):
            self.cluster.close(timeout=30)

    def healthy(self) -> Any:
        """The client, once both workers are up (a new cluster if they do not come)."""
        if self.client is None:
            self.start()
        if len(self.client.scheduler_info()["workers"]) >= 2:
            return self.client
        with contextlib.suppress(Exception):
            self.cluster.scale(2)
        try:
            self.client.wait_for_workers(2, timeout=30)
        except Exception:
            self.stop()
            self.start()
            self.client.wait_for_workers(2, timeout=120)
        return self.client


@pytest.fixture(scope="session")
def dask_session():
    """The session's :class:`DaskSession` (module fixtures take their client from it)."""
    session = DaskSession()
    yield session
    session.stop()


@pytest.fixture
def client(dask_session):
    """A real 2-worker LocalCluster, both workers up; ParallelMap(backend="auto") attaches
    to it."""
    return dask_session.healthy()


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
