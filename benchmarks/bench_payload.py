"""Result throughput (MiB/s): 32 array results into the ``"hdf5"`` store vs plain h5py.

For each size (``--sizes``, MiB per result; 1 MiB is the issue's figure), one run
measures, interleaved rep by rep (median of ``--reps``):

* ``acme-core``: ``with ParallelMap(payload, range(32), nbytes) as p: p.compute()``
  on a 2-worker dask ``LocalCluster`` that is already up: the workers create each
  result (``np.full``) and the ``"hdf5"`` store writes one file per call (plus the
  aggregate container and the manifest);
* ``h5py, one process``: this process creates the same 32 arrays and writes the
  same 32 files with plain h5py, one after the other;
* ``esi-acme``: the same ParallelMap code with ``from acme import ParallelMap``, in
  a subprocess with the esi-acme interpreter (``--acme-python``) on its own cluster.

MiB/s = 32 x size / wall seconds (1 MiB = 2**20 bytes). Nothing is fsync'ed, so the
files may still be in the page cache: this compares write paths, not disks.
Run::

    python benchmarks/bench_payload.py [--sizes 1,8] [--reps 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import _common as c
import numpy as np

N_RESULTS = 32
MIB = 2**20


def payload(i: int, nbytes: int) -> np.ndarray:
    """One call's result: ``nbytes`` of float64."""
    return np.full(nbytes // 8, float(i))


def run_pmap(module: str, nbytes: int) -> float:
    pmap_cls = __import__(module).ParallelMap
    extra: dict[str, Any] = {"verbose": False, "logfile": False}
    if module == "acme_core":
        extra["progress"] = False
    with c.scratch() as tmp:
        start = time.perf_counter()
        with pmap_cls(payload, list(range(N_RESULTS)), nbytes, output_dir=str(tmp / "run"),
                      **extra) as pmap:
            paths = pmap.compute()
        seconds = time.perf_counter() - start
        assert len(paths) == N_RESULTS
        size = sum(os.path.getsize(p) for p in paths)
        assert size >= N_RESULTS * nbytes, "result files too small"
    return seconds


def run_h5py(nbytes: int) -> float:
    import h5py

    with c.scratch() as tmp:
        start = time.perf_counter()
        for i in range(N_RESULTS):
            with h5py.File(tmp / f"payload_{i}.h5", "w") as h5f:
                h5f.create_dataset("result_0", data=payload(i, nbytes))
        return time.perf_counter() - start


def prewarm(nbytes: int) -> None:
    """Touch 3x the run's memory once: fresh pages are slow to fault in on some VMs.

    On the project's VM, memory not touched for a while costs ~2.7 s/GiB to fault
    in (research/perf-baseline.md), so every process that creates or writes results
    (this one and each worker) is warmed the same way before each measurement.
    """
    block = np.ones(3 * N_RESULTS * nbytes // 8)
    block.sum()
    del block


def prewarm_all(client: Any, nbytes: int) -> None:
    prewarm(nbytes)
    client.run(prewarm, nbytes)


def part(module: str, sizes: list[int], reps: int) -> dict[str, Any]:
    """The ParallelMap measurements of ``module`` on a cluster of its own."""
    client = c.start_cluster()
    try:
        run_pmap(module, MIB)  # warm: imports on the workers
        out: dict[str, list[float]] = {}
        for mib in sizes:
            out[str(mib)] = []
            for _ in range(reps):
                prewarm_all(client, mib * MIB)
                out[str(mib)].append(run_pmap(module, mib * MIB))
    finally:
        c.stop_cluster(client)
    return {"times": out, "version": c.versions("esi-acme" if module == "acme" else "acme-core")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1,8", help="MiB per result, comma-separated")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--acme-python", default=os.environ.get("ACME_PYTHON",
                                                                c.DEFAULT_ACME_PYTHON))
    parser.add_argument("--json", help="also write the raw figures here")
    parser.add_argument("--part", choices=["esi-acme"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [int(v) for v in args.sizes.split(",") if v]
    if args.part:
        print(json.dumps(part("acme", sizes, args.reps)))
        return

    c.log(c.machine())
    times: dict[str, dict[str, list[float]]] = {"acme-core": {}, "h5py, one process": {}}
    client = c.start_cluster()
    try:
        run_pmap("acme_core", MIB)
        for mib in sizes:
            c.log(f"{mib} MiB x {N_RESULTS}")
            prewarm_all(client, mib * MIB)
            for key in times:
                times[key][str(mib)] = []
            for _ in range(args.reps):  # interleaved: both see the same machine state
                prewarm_all(client, mib * MIB)
                times["acme-core"][str(mib)].append(run_pmap("acme_core", mib * MIB))
                prewarm_all(client, mib * MIB)
                times["h5py, one process"][str(mib)].append(run_h5py(mib * MIB))
    finally:
        c.stop_cluster(client)
    versions = c.versions("acme-core", "distributed", "h5py")
    if c.acme_available(args.acme_python):
        c.log(f"esi-acme with {args.acme_python}")
        res = c.run_json(args.acme_python, Path(__file__).resolve(),
                         ["--part", "esi-acme", "--sizes", args.sizes, "--reps", str(args.reps)],
                         env={"PATH": c.noslurm_path()})
        times["esi-acme"] = res["times"]
        versions += f"; {res['version']}"
    else:
        c.log(f"esi-acme is not importable with {args.acme_python!r}: its column stays empty")

    impls = ["acme-core", "esi-acme", "h5py, one process"]
    lines = [f"Machine: {c.machine()}", f"Versions: {versions}", "",
             f"### {N_RESULTS} array results into \"hdf5\", MiB/s (median of {args.reps}; "
             "min-max)", "",
             "| size | " + " | ".join(impls) + " | acme-core / h5py |",
             "|---|" + "---:|" * (len(impls) + 1)]
    rates: dict[str, dict[str, float]] = {}
    for mib in sizes:
        cells = []
        for impl in impls:
            runs = times.get(impl, {}).get(str(mib))
            if not runs:
                cells.append("-")
                continue
            total = N_RESULTS * mib
            rate = total / c.median(runs)
            rates.setdefault(impl, {})[str(mib)] = rate
            cells.append(f"{rate:,.0f} ({total / max(runs):,.0f}-{total / min(runs):,.0f})")
        ratio = rates["acme-core"][str(mib)] / rates["h5py, one process"][str(mib)]
        lines.append(f"| {mib} MiB x {N_RESULTS} | " + " | ".join(cells) + f" | {ratio:.0%} |")
    if "1" in rates.get("acme-core", {}):
        ratio = rates["acme-core"]["1"] / rates["h5py, one process"]["1"]
        lines += ["", f"- 1 MiB x 32: acme-core at {ratio:.0%} of plain h5py in one process; "
                  f"target >= 80%: {'REACHED' if ratio >= 0.8 else 'NOT reached'}"]
    print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps({"times": times, "machine": c.machine()}, indent=1))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
