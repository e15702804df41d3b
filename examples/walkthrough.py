"""The acme-core walkthrough: ACME's quickstart, run on a local dask cluster.

Run it with ``python examples/walkthrough.py [RUN_DIR]``. It writes into
``RUN_DIR`` (default: ``ACME_walkthrough`` next to this file, replaced on each
run), prints what every step returns and the output tree.
"""

from __future__ import annotations

import os
import shutil
import sys

import h5py
import numpy as np

from acme_core import ParallelMap, cluster_cleanup, open_results


def f(x, y, z=3):
    return (x + y) * z


def stats(x, y):
    return x + y, np.full(3, x * y)


def tree(path: str) -> None:
    """Print a directory like the ``tree`` command."""
    for root, dirs, files in os.walk(path):
        dirs.sort()
        depth = root[len(path):].count(os.sep)
        print("    " * depth + os.path.basename(root) + "/")
        for name in sorted(files):
            print("    " * (depth + 1) + name)


def main(out: str) -> None:
    # 1. Results on disk (the default): one HDF5 file per call plus one container.
    #    stop_client=False keeps the local cluster for the next steps.
    with ParallelMap(f, [2, 4, 6, 8], 4, output_dir=out, stop_client=False) as pmap:
        paths = pmap.compute()
    with h5py.File(pmap.results_container, "r") as h5f:
        values = [int(h5f[f"comp_{i}"]["result_0"][0]) for i in range(4)]
    print("1. results read back from", os.path.relpath(pmap.results_container), ":", values)
    print("   the same with open_results:", [int(v[0]) for v in open_results(out)])
    print("   per-call files:", [os.path.relpath(p, out) for p in paths])
    print("   output tree:")
    tree(out)

    # 2. Results in memory.
    with ParallelMap(f, [2, 4, 6, 8], 4, write_worker_results=False, stop_client=False) as pmap:
        print("2. in memory:", pmap.compute())

    # 3. Two lists of different lengths: which one is split is ambiguous.
    try:
        ParallelMap(f, [2, 4, 6, 8], [2, 2])
    except ValueError as err:
        print("3. ambiguous input:", err)

    # 4. n_inputs says how many calls; everything else is shared by every call.
    with ParallelMap(f, 2, 3, n_inputs=4, write_worker_results=False,
                     stop_client=False) as pmap:
        print("4. n_inputs=4 with scalars:", pmap.compute())
    with ParallelMap(f, np.array([2, 4, 6, 8]), 4, n_inputs=4, write_worker_results=False,
                     stop_client=False) as pmap:
        print("   n_inputs=4 with an array:", [int(v) for v in pmap.compute()])

    # 5. Pickles instead of HDF5, and several return values per call.
    with ParallelMap(stats, [1, 2, 3], 10, write_pickle=True,
                     output_dir=os.path.join(out, "pickled"), stop_client=False) as pmap:
        print("5. pickle files:", [os.path.basename(p) for p in pmap.compute()])
    print("   read back:", open_results(os.path.join(out, "pickled"))[0])

    # The last run stops the cluster the first one started.
    cluster_cleanup()


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "ACME_walkthrough")
    if os.path.exists(target):
        shutil.rmtree(target)
    main(target)
