"""The acme-core walkthrough: ACME's quickstart, run on a local dask cluster.

Run it with ``python examples/walkthrough.py``; it writes into a scratch directory
(``ACME_walkthrough`` next to this file, or the directory given as argument).
"""

from __future__ import annotations

import os
import sys

import h5py
import numpy as np

from acme_core import ParallelMap, open_results


def f(x, y, z=3):
    return (x + y) * z


def tree(path: str) -> None:
    """Print the run directory like `tree` would."""
    for root, dirs, files in os.walk(path):
        depth = root[len(path):].count(os.sep)
        print("    " * depth + os.path.basename(root) + "/")
        for name in sorted(files):
            print("    " * (depth + 1) + name)
        dirs.sort()


def main(out: str) -> None:
    # 1. Results on disk (the default): one HDF5 file per call + one container.
    with ParallelMap(f, [2, 4, 6, 8], 4, output_dir=out) as pmap:
        paths = pmap.compute()
    with h5py.File(pmap.results_container, "r") as h5f:
        values = [int(h5f[f"comp_{i}"]["result_0"][0]) for i in range(4)]
    print("results read back from", pmap.results_container, ":", values)
    print("the same via open_results:", [int(v[0]) for v in open_results(out)])
    print("per-call files:", [os.path.relpath(p, out) for p in paths])
    print("output tree:")
    tree(out)

    # 2. Results in memory.
    with ParallelMap(f, [2, 4, 6, 8], 4, write_worker_results=False) as pmap:
        print("in memory:", pmap.compute())

    # 3. n_inputs: every call gets the same (shared) arguments.
    with ParallelMap(f, 2, 3, n_inputs=4, write_worker_results=False) as pmap:
        print("n_inputs=4 with scalars:", pmap.compute())

    # 4. An array argument split along its first axis.
    with ParallelMap(f, np.array([2, 4, 6, 8]), 4, write_worker_results=False) as pmap:
        print("array argument:", pmap.compute())


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "ACME_walkthrough")
    if os.path.exists(target):
        import shutil

        shutil.rmtree(target)
    main(target)
