"""ACME's public names under ``import acme``, on a real local dask cluster."""

from __future__ import annotations

import importlib.metadata

import acme
import h5py
import numpy as np
import pytest
from acme import ACMEdaemon, ParallelMap

import acme_core
from acme_core.errors import UsageError


def f(x, y, z=3):
    return (x + y) * z


def band(x, freq=None, window=None):
    return (x, list(freq), list(window))


# ------------------------------------------------------------------ names
def test_acme_public_names_are_there():
    # ACME's __all__ minus bic_cluster_setup (no successor); esi_cluster_setup: acme-esi is
    # installed in the test environment
    assert set(acme.__all__) == {"ParallelMap", "ACMEdaemon", "esi_cluster_setup",
                                 "local_cluster_setup", "cluster_cleanup", "slurm_cluster_setup"}
    for name in acme.__all__:
        assert callable(getattr(acme, name)), name
    assert acme.__version__ == importlib.metadata.version("acme-compat")


def test_the_setups_are_acme_cores_and_the_esi_plugins():
    import acme_esi

    assert acme.local_cluster_setup is acme_core.local_cluster_setup
    assert acme.slurm_cluster_setup is acme_core.slurm_cluster_setup
    assert acme.cluster_cleanup is acme_core.cluster_cleanup
    assert acme.esi_cluster_setup is acme_esi.esi_cluster_setup
    # Syncopy's tests import it from here
    from acme.dask_helpers import cluster_cleanup, esi_cluster_setup, local_cluster_setup

    assert esi_cluster_setup is acme_esi.esi_cluster_setup
    assert (local_cluster_setup, cluster_cleanup) == (acme.local_cluster_setup,
                                                      acme.cluster_cleanup)


def test_parallelmap_is_acme_cores():
    assert issubclass(ParallelMap, acme_core.ParallelMap)


def test_names_acme_core_cannot_give_say_why():
    with pytest.raises(ImportError, match="no acme-core successor"):
        from acme import bic_cluster_setup  # noqa: F401
    with pytest.raises(AttributeError, match="no attribute 'no_such_thing'"):
        acme.no_such_thing  # noqa: B018


def test_cluster_cleanup_refuses_what_is_not_a_client():
    # ACME's test_dask runs exactly this off SLURM
    with pytest.raises(TypeError, match="`client` has to be a dask client object"):
        acme.cluster_cleanup(3)


# ------------------------------------------------------------------ the daemon
def test_daemon_client_is_the_client_the_run_uses(client, in_tmp):
    pmap = ParallelMap(f, [2, 4, 6, 8], 4, write_worker_results=False)
    # before compute(): the running client, which the run attaches to (ACME had it already)
    assert pmap.daemon.client is client
    with pmap:
        assert pmap.compute() == [18, 24, 30, 36]
        assert pmap.daemon.client is client
        assert pmap.executor.client is client
    assert client.status == "running"  # borrowed: stop_client="auto" leaves it alone


def test_daemon_computes_and_holds_the_container(client, in_tmp):
    with ParallelMap(f, [2, 4, 6, 8], 4) as pmap:
        paths = pmap.daemon.compute()
    assert pmap.daemon.results_container == pmap.results_container
    with h5py.File(pmap.daemon.results_container, "r") as h5f:
        assert [int(h5f[f"comp_{i}"]["result_0"][0]) for i in range(4)] == [18, 24, 30, 36]
    assert len(paths) == 4


def test_daemon_client_before_a_backend_of_its_own_started(client, in_tmp):
    # backend="dask-local" starts its own cluster at compute(): no client to name before
    pmap = ParallelMap(f, [2, 4], 4, write_worker_results=False, backend="dask-local")
    with pytest.raises(UsageError, match="no dask client yet.*first compute"):
        pmap.daemon.client  # noqa: B018


def test_acmedaemon_refuses_what_is_not_a_parallelmap():
    with pytest.raises(TypeError,
                       match="`pmap` has to be a `ParallelMap` instance, not <class 'str'>"):
        ACMEdaemon("invalid")


def test_acmedaemon_of_a_core_parallelmap(client, in_tmp):
    pmap = acme_core.ParallelMap(f, [2, 4], 4, write_worker_results=False)
    assert ACMEdaemon(pmap).client is client
    assert ACMEdaemon(pmap).compute() == [18, 24]


# ------------------------------------------------------------------ kwargv
def test_syncopys_kwargv_correction_keeps_values_whole(client, in_tmp):
    """computational_routine.py of esi-syncopy 2023.9, verbatim: a 2-trial band-pass gets
    freq=[30, 50] whole in every call (without the edit each call got one number)."""
    n_calls = 2
    pmap = ParallelMap(band, [1, 2], n_inputs=n_calls, write_worker_results=False,
                       freq=[30, 50], window=np.array([0.5, 1.0]))
    for key, value in pmap.kwargv.items():
        if isinstance(value, (list, tuple)):
            if len(value) == n_calls:
                pmap.kwargv[key] = [value]
        elif isinstance(value, np.ndarray):  # noqa: SIM102 - Syncopy's code as it is
            if len(value.squeeze().shape) == 1 and value.squeeze().size == n_calls:
                pmap.kwargv[key] = [value]
    client_seen = pmap.daemon.client
    with pmap as pm:
        results = pm.compute()
    assert client_seen is client
    assert results == [(1, [30, 50], [0.5, 1.0]), (2, [30, 50], [0.5, 1.0])]


def test_acme_code_keeps_the_per_call_layout_beyond_the_shard_threshold(client, in_tmp):
    """acme-core shards runs of 10,000 calls or more; ACME code reads ``comp_<i>`` and the
    per-call files ``compute()`` returns, so ``import acme`` keeps them (shards on request)."""
    with ParallelMap(np.negative, list(range(10_000)), output_dir="run") as pmap:
        paths = pmap.compute()
    with h5py.File(paths[9_999], "r") as h5f:
        assert h5f["result_0"][()] == -9_999
    with h5py.File(pmap.results_container, "r") as h5f:
        assert h5f["comp_7"]["result_0"][()] == -7
    with ParallelMap(np.negative, list(range(10_000)), output_dir="run2",
                     store_options={"shard_calls": "rows"}) as pmap:
        pmap.compute()
    with h5py.File(pmap.results_container, "r") as h5f:
        assert "comp_7" not in h5f and h5f["result_0"][7] == -7
