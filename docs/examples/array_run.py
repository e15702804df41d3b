"""A run that outlives the driver: submit on "slurm-array", collect later (docs: clusters).

``python array_run.py submit OUT`` queues the calls and returns; close the session, log out.
``python array_run.py collect OUT`` (from any later process on a machine that sees OUT) waits
for what is left, with the progress bar, and returns what ``compute()`` would have returned.
"""

from __future__ import annotations

import sys
from typing import Any

from acme_core import ParallelMap, open_results


def f(x, y, z=3):
    return (x + y) * z


def submit(out: str, **site_options: Any) -> str:
    pmap = ParallelMap(f, [2, 4, 6, 8], 4, backend="slurm-array", n_workers=2,
                       mem_per_worker="1GB", output_dir=out, backend_options=site_options)
    handle = pmap.submit()  # returns once the array job is queued
    print(handle.status().n_calls, "calls queued as job(s)", ", ".join(handle.status().jobs))
    return out


def collect(out: str) -> list[int]:
    handle = ParallelMap.attach(out)
    handle.results()  # waits; raises ParallelMapError naming the calls that failed
    return [int(v[0]) for v in open_results(out)]


if __name__ == "__main__":
    print({"submit": submit, "collect": collect}[sys.argv[1]](sys.argv[2]))
