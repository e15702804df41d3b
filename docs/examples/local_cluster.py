"""Start a local dask cluster by hand, run two ParallelMaps on it, stop it (docs: clusters).

Run with ``python docs/examples/local_cluster.py RUN_DIR``; the test suite does.
"""

from __future__ import annotations

import os
import sys

from acme_core import ParallelMap, cluster_cleanup, local_cluster_setup, open_results


def f(x, y, z=3):
    return (x + y) * z


def main(out: str) -> None:
    client = local_cluster_setup(n_workers=1, mem_per_worker="1GB")
    try:
        # backend="auto" attaches to the running client and leaves it running
        with ParallelMap(f, [2, 4, 6, 8], 4, output_dir=os.path.join(out, "first")) as pmap:
            pmap.compute()
        with ParallelMap(f, [1, 2], 10, write_worker_results=False) as pmap:
            print("in memory:", pmap.compute())
        print("on disk:", [int(v[0]) for v in open_results(os.path.join(out, "first"))])
    finally:
        cluster_cleanup(client)


if __name__ == "__main__":
    main(sys.argv[1])
