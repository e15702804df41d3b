"""Soak test: run many calls while killing a random dask worker every few seconds.

Prints how many calls were lost (a result missing or wrong on disk); the goal is
``lost: 0``. Usage::

    python benchmarks/soak_kill_workers.py [--calls 2000] [--every 3] [--seconds 0.02]
        [--store hdf5|hdf5-single|zarr|pickle] [--stacked]

Workers are killed with SIGKILL (as the kernel's OOM killer or a lost node
would); the local cluster's nannies start new ones, and acme-core reruns the
calls that were on the dead worker.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import tempfile
import threading
import time

import numpy as np


def work(x: int, seconds: float) -> int:
    time.sleep(seconds)
    return x * 3


def killer(client, every: float, stop: threading.Event, kills: list[int]) -> None:
    """Every ``every`` seconds, SIGKILL one randomly chosen worker process."""
    while not stop.wait(every):
        try:
            pids = list(client.run(os.getpid, on_error="ignore").values())
        except Exception:  # workers are restarting: try again next round
            continue
        pids = [p for p in pids if isinstance(p, int)]
        if pids:
            victim = random.choice(pids)
            try:
                os.kill(victim, signal.SIGKILL)
                kills.append(victim)
            except ProcessLookupError:
                pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--every", type=float, default=3.0, help="seconds between kills")
    parser.add_argument("--seconds", type=float, default=0.02, help="duration of one call")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--output-dir", default=None)
    parser.add_argument("--store", default="hdf5")
    parser.add_argument("--stacked", action="store_true",
                        help="result_shape=(None,): one stacked array")
    args = parser.parse_args()

    from acme_backends.dask import DaskLocalExecutor
    from acme_core import ParallelMap, open_results

    out = args.output_dir or tempfile.mkdtemp(prefix="acme-soak-")
    executor = DaskLocalExecutor(n_workers=args.workers)
    stop, kills = threading.Event(), []
    thread = threading.Thread(target=killer, args=(executor.client, args.every, stop, kills),
                              daemon=True)
    start = time.perf_counter()
    thread.start()
    try:
        with ParallelMap(work, list(range(args.calls)), args.seconds, output_dir=out,
                         backend=executor, store=args.store, progress=False, verbose=False,
                         result_shape=(None,) if args.stacked else None) as pmap:
            pmap.compute()
    finally:
        stop.set()
        thread.join()
        executor.shutdown()
    elapsed = time.perf_counter() - start
    values = open_results(out)
    if args.stacked:
        stacked = np.ma.asarray(values[0] if isinstance(values, list) else values)
        lost = int(np.ma.count_masked(stacked)) + int(
            np.sum(stacked.filled(-1) != np.arange(args.calls) * 3))
    else:
        lost = sum(1 for i, v in enumerate(values)
                   if v is None or int(np.ravel(v)[0]) != i * 3)
    print(f"calls: {args.calls}  workers killed: {len(kills)}  seconds: {elapsed:.1f}  "
          f"run directory: {out}")
    print(f"lost: {lost}")
    return 1 if lost else 0


if __name__ == "__main__":
    raise SystemExit(main())
