"""Run the walkthrough function on SLURM through the "slurm" backend (docs: clusters).

The backend submits the worker jobs, waits for them, runs the calls and cancels the jobs when
the ``with`` block ends. ``site_options`` are keywords for your site, passed to the backend
and on to dask-jobqueue (e.g. ``{"interface": "ib0", "account": "my-project"}``).
"""

from __future__ import annotations

import sys
from typing import Any

from acme_core import ParallelMap, open_results


def f(x, y, z=3):
    return (x + y) * z


def main(out: str, **site_options: Any) -> list[int]:
    with ParallelMap(f, [2, 4, 6, 8], 4, backend="slurm", partition="auto", n_workers=1,
                     mem_per_worker="1GB", setup_timeout=120, output_dir=out,
                     backend_options=site_options) as pmap:
        pmap.compute()
    # the job logs are in <out>/job-logs
    return [int(v[0]) for v in open_results(out)]


if __name__ == "__main__":
    print(main(sys.argv[1]))
