"""Fixtures of the acme-compat tests: a real local dask cluster, a scratch directory.

The tests import the installed distribution (``pip install -e ./plugins/acme-compat``,
as ``nox -s tests`` does): its version, its metadata and the clash check are part
of what they test.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def client():
    """A real 2-worker LocalCluster for one test module; ParallelMaps attach to it."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address="127.0.0.1:0", host="127.0.0.1")
    client = Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run the test with the current directory in a scratch directory (ACME_* dirs go there)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
