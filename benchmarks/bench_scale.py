"""Many trivial calls on disk: per-call files against per-task shards (issue 16).

For each N (``--ns``) and each result kind (``--kinds``: ``scalar`` returns a float,
``kib`` a 1 KiB float64 array), on one 2-worker local cluster started once
(:func:`_common.start_cluster`), each variant runs
``ParallelMap(make, range(N), output_dir=<fresh>, store=S, store_options=O).compute()``:

* ``memory``: the in-memory store (results travel back to the driver);
* ``hdf5``: a file per call (``shard_calls=False``, ACME's layout);
* ``hdf5-groups``: a shard file per task holding a group per call
  (``shard_calls="groups"``; the container links ``comp_<i>``);
* ``hdf5-rows``: a shard file per task holding only the stacked rows
  (``shard_calls="rows"``, what ``"auto"`` chooses from its threshold on; the
  container holds a virtual dataset per result);
* ``zarr``: the zarr store's per-call layout (``shard_calls=False``: a chunk file per
  call with ``result_shape``, a group per call without);
* ``zarr-shards``: the zarr store with ``shard_calls=True`` (stacked kinds only:
  ``result_0`` in zarr v3 shards of up to 2,000 calls);
* ``zarr-rows``: the zarr store with ``shard_calls="rows"`` (kinds without
  ``result_shape`` only: a zip file per task holding the calls as stacked rows,
  :mod:`acme_storage.zarr.rows`);
* ``hdf5-auto``, ``zarr-auto``: the stores with their default ``shard_calls="auto"``.

The kinds ``stacked-extras`` (``result_shape=(None,)``, a float and an int32 extra per
call: the extras go into the zip shards with ``zarr-shards``) and ``inf-kib``
(``result_shape=(None, np.inf)``, 64-128 floats per call: zip shards with ``zarr-rows``)
measure the zarr shards' other cases.

The kinds ``stacked-scalar`` and ``stacked-kib`` run the same functions with
``result_shape=(None,)`` and ``(None, 128)`` (ACME's stacked results): ``hdf5`` then
writes a file per call under a virtual dataset, ``hdf5-rows`` shards whose block is
stacked along the stacking axis (``"groups"`` is refused with ``result_shape``).

Reported per variant: calls/s end to end (construction to ``compute()``'s return),
the files and directories the run directory holds afterwards, the driver's peak
RSS growth (``ru_maxrss`` is a high-water mark: the variants run in a fresh
subprocess each, so each has its own), and the seconds ``open_results`` takes to
read every value back (in the same subprocess, after the run), and the 1-minute
load average before and after the variant (the machine is shared).

Run::

    python benchmarks/bench_scale.py [--ns 10000 100000] [--kinds scalar kib]
        [--variants memory hdf5 hdf5-groups hdf5-rows zarr zarr-shards zarr-rows hdf5-auto
                    zarr-auto]
        [--read-max N] [--per-call-max N] [--json]

    python benchmarks/bench_scale.py --kinds stacked-scalar stacked-kib \
        --variants memory hdf5 hdf5-rows zarr zarr-shards
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "memory": ("memory", {}),
    "hdf5": ("hdf5", {"shard_calls": False}),
    "hdf5-groups": ("hdf5", {"shard_calls": "groups"}),
    "hdf5-rows": ("hdf5", {"shard_calls": "rows"}),
    "zarr": ("zarr", {"shard_calls": False}),
    "zarr-shards": ("zarr", {"shard_calls": True}),
    "zarr-rows": ("zarr", {"shard_calls": "rows"}),
    "hdf5-auto": ("hdf5", {}),
    "zarr-auto": ("zarr", {}),
}

#: ``result_shape`` per result kind (None: not stacked)
SHAPES: dict[str, tuple[float | None, ...] | None] = {
    "scalar": None, "kib": None, "stacked-scalar": (None,), "stacked-kib": (None, 128),
    "stacked-extras": (None,), "inf-kib": (None, float("inf"))}


def scalar(i: int) -> float:
    return float(i)


def kib(i: int) -> Any:
    import numpy as np

    return np.full(128, float(i))


def with_extra(i: int) -> Any:
    """A stacked float and an extra return value (``result_1``)."""
    import numpy as np

    return float(i), np.int32(i)


def ragged_kib(i: int) -> Any:
    """Up to 1 KiB along an ``np.inf`` axis: 64-128 floats (a task's calls differ)."""
    import numpy as np

    return np.full(64 + i % 65, float(i))


#: the function of each kind
FUNCS = {"scalar": scalar, "kib": kib, "stacked-scalar": scalar, "stacked-kib": kib,
         "stacked-extras": with_extra, "inf-kib": ragged_kib}


def count_entries(root: Path) -> tuple[int, int]:
    """Files and directories below ``root``."""
    files = dirs = 0
    for _, dirnames, filenames in os.walk(root):
        files += len(filenames)
        dirs += len(dirnames)
    return files, dirs


def one(variant: str, n: int, kind: str, scheduler: str, out: Path,
        read_back: bool = True) -> dict[str, Any]:
    """One run in this process (a fresh subprocess per variant), on the running cluster."""
    from distributed import Client

    from acme_core import ParallelMap, open_results

    client = Client(scheduler)
    store, options = VARIANTS[variant]
    func = FUNCS[kind]
    shape = SHAPES[kind]
    stacked = {"result_shape": shape} if shape is not None else {}
    load0 = os.getloadavg()[0]
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with ParallelMap(func, list(range(n)), output_dir=str(out), store=store,
                     store_options=options, progress=False, verbose=False,
                     logfile=False, **stacked) as pmap:
        pmap.compute()
    seconds = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    files, dirs = count_entries(out)
    read = None
    if variant != "memory" and read_back:
        start = time.perf_counter()
        values = open_results(out)
        read = time.perf_counter() - start
        assert len(values) == n or len(values[0]) == n  # stacked-extras: [array, *extras]
    client.close()
    return {"variant": variant, "n": n, "kind": kind, "seconds": seconds,
            "calls_per_s": n / seconds, "files": files, "dirs": dirs,
            "rss_peak_mb": rss / 1024, "rss_growth_mb": (rss - rss0) / 1024,
            "read_s": read, "load": (round(load0, 2), round(os.getloadavg()[0], 2))}


def _skipped(variant: str, kind: str, n: int, per_call_max: int) -> bool:
    """zarr shards need a finite result_shape, zarr rows are for runs without it or with
    an np.inf axis (with a finite one, "rows" is the sharded array ``zarr-shards``
    measures); per-call layouts only up to a size."""
    shape = SHAPES[kind]
    inf = shape is not None and float("inf") in shape
    if variant == "zarr-shards" and (shape is None or inf):
        return True
    if variant == "zarr-rows" and shape is not None and not inf:
        return True
    if (variant.startswith("hdf5-") and variant != "hdf5-auto" or variant == "memory") and inf:
        return True  # the hdf5 shards refuse an np.inf axis, the memory store fails on it
    return variant in ("hdf5", "zarr") and n > per_call_max


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ns", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--kinds", nargs="+", default=["scalar", "kib"], choices=list(SHAPES))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--read-max", type=int, default=10**7,
                        help="skip open_results for file-per-call variants above this N")
    parser.add_argument("--per-call-max", type=int, default=10**7,
                        help="skip the file-per-call variants (hdf5, zarr) above this N")
    parser.add_argument("--one", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        variant, n, kind, scheduler, out, read_back = args.one
        print(json.dumps(one(variant, int(n), kind, scheduler, Path(out), read_back == "1")))
        return
    import shutil
    import tempfile

    from _common import log, start_cluster, stop_cluster

    client = start_cluster(2)
    rows = []
    try:
        for n in args.ns:
            for kind in args.kinds:
                for variant in args.variants:
                    if _skipped(variant, kind, n, args.per_call_max):
                        continue
                    out = Path(tempfile.mkdtemp(prefix="acme-scale-")) / "run"
                    read_back = variant not in ("hdf5", "zarr") or n <= args.read_max
                    log(f"N={n:,} {kind} {variant} ...")
                    done = subprocess.run(
                        [sys.executable, __file__, "--one", variant, str(n), kind,
                         client.scheduler.address, str(out), str(int(read_back))],
                        check=True, capture_output=True, text=True)
                    row = json.loads(done.stdout.strip().splitlines()[-1])
                    rows.append(row)
                    log(json.dumps(row))
                    shutil.rmtree(out.parent, ignore_errors=True)
    finally:
        stop_cluster(client)
    if args.json:
        print(json.dumps(rows))
        return
    print(f"{'N':>9} {'kind':14} {'variant':12} {'calls/s':>9} {'files':>8} {'dirs':>5} "
          f"{'RSS MB':>7} {'read s':>7} load")
    for r in rows:
        read = "-" if r["read_s"] is None else f"{r['read_s']:.2f}"
        print(f"{r['n']:>9,} {r['kind']:14} {r['variant']:12} {r['calls_per_s']:>9,.0f} "
              f"{r['files']:>8,} {r['dirs']:>5} {r['rss_peak_mb']:>7.0f} {read:>7} "
              f"{r['load'][0]:.1f}-{r['load'][1]:.1f}")


if __name__ == "__main__":
    main()
