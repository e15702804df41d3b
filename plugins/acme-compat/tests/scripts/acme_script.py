"""A script written for ACME, run unchanged on acme-core through acme-compat.

It prints one line ``REPORT <json>`` that tests/test_compat_scripts.py checks.
"""

import json

import acme
import h5py
from acme import ParallelMap, cluster_cleanup, esi_cluster_setup


def f(x, y, z=3):
    return (x + y) * z


def band(x, freq=None):
    return [x * f for f in freq]


if __name__ == "__main__":
    report = {"version": acme.__version__}

    # no client yet: acme-core starts one at compute() (ACME did in the constructor)
    pmap = ParallelMap(f, [2, 4], 4, write_worker_results=False, n_workers=1)
    try:
        print(pmap.daemon.client)
    except RuntimeError as err:
        report["no_client_yet"] = str(err)
    with pmap:
        report["auto_started"] = pmap.compute()
        report["auto_client"] = type(pmap.daemon.client).__name__

    # ACME's README: a client for several runs (off SLURM a local one)
    client = esi_cluster_setup(partition="8GBXS", n_workers=2, interactive=False)
    with ParallelMap(f, [2, 4, 6, 8], 4) as pmap:
        report["same_client"] = pmap.daemon.client is client
        paths = pmap.compute()
    with h5py.File(pmap.results_container, "r") as h5f:
        report["on_disk"] = [int(h5f[f"comp_{i}"]["result_0"][0]) for i in range(4)]
    report["n_paths"] = len(paths)

    with ParallelMap(f, [2, 4, 6, 8], 4, write_worker_results=False) as pmap:
        report["in_memory"] = pmap.compute()

    # Syncopy's way of keeping a list of length n_inputs whole
    pmap = ParallelMap(band, [1, 2], freq=[30, 50], write_worker_results=False)
    for key, value in pmap.kwargv.items():
        if len(value) == 2:
            pmap.kwargv[key] = [value]
    with pmap as pm:
        report["kwargv_edit"] = pm.compute()

    cluster_cleanup(client)
    report["client_after_cleanup"] = client.status
    print("REPORT " + json.dumps(report))
