"""Write throughput (MB/s) of every result store next to plain h5py in one process.

Two measurements, for results of 1, 8 and 64 MB (``--sizes``):

**A. End to end** -- ``ParallelMap(make, range(N), result_shape=(None, n), store=S)``
on a 2-worker local cluster (started once), timing ``compute()``: the workers
create each result (``np.full``) and the store writes it (``"memory"`` sends it
back to the driver instead). Baseline: one process creating the same arrays and
writing them with h5py into one stacked dataset. The cluster is the one
ParallelMap starts by itself (``acme_core.local_cluster_setup``, whose workers
keep freed memory for reuse: ``acme_backends.dask.malloc``); ``--plain-dask``
runs A on a plain ``distributed.LocalCluster`` instead, where every new 1 MB
array is fresh memory.

**B. Store write path** -- the stores' writers only, with the data created
beforehand: ``--workers`` processes (started beforehand, released together by a
barrier) each write their share of the N calls through the store's picklable
writer; the figure includes the driver's ``finalize`` (the ``"hdf5-single"``
merge). Baseline: plain h5py writing the same N slots into one dataset in one
process. ``h5py+lock`` is ACME's single-file design for comparison: every call
takes a cross-process lock, opens the shared file, writes its slot, closes it.

**zarr variants** (``--stores``): ``zarr`` is the store as shipped, whose workers
write whole chunks of the store's own layouts as bytes
(``acme_storage/zarr/_fast.py``: a call's slot by hand, its ``acme_extent``
entry through zarr's ``LocalStore.set_sync``). ``zarr-set_sync`` writes the slot
chunks through ``LocalStore.set_sync`` too; ``zarr-api`` sends every chunk
through zarr-python (``Array.__setitem__``). The last columns give each zarr
variant's MB/s over the first zarr variant's (median, best). ``--inf`` stacks
along an ``np.inf`` axis (``result_shape=(None, np.inf)``): the slots then go
through zarr-python in every variant and only the ``acme_extent`` entry differs
(``zarr-set_sync`` is then the same as ``zarr``).

MB = 10**6 bytes. Nothing is fsync'ed (none of the writers does), so the data
may still be in the page cache: the figures compare write paths, not disks.
Every timed measurement starts after an (untimed) :func:`settle`: ``os.sync()``,
so that no variant pays for the dirty pages of the one before it, then touching
and freeing 1 GiB, so that no variant writes into memory the VM's host has
taken back (see :func:`settle`). The order of the variants rotates from rep to
rep. Finished variants' files are truncated and kept until the end
(:func:`retire`), and the script starts only once creating a file is cheap
(:func:`wait_for_quiet_creates`): on ext4 without a journal, files deleted in the
last minutes make every new file nearby slower to create.

Run::

    python benchmarks/bench_stores.py [--sizes 1 8 64] [--total 256] [--reps 9]
        [--stores hdf5 hdf5-single zarr memory] [--inf] [--skip-e2e]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

MB = 10 ** 6
STORES = ["hdf5", "hdf5-single", "zarr", "memory"]


def store_class(variant: str) -> Any:
    """The store class a variant name stands for (a zarr variant: a subclass, see the docstring)."""
    from acme_core.plugins import list_stores
    from acme_storage.hdf5 import HDF5Store
    from acme_storage.zarr import ZarrStore

    zarr_variants = {"zarr-api": {"fast_chunks": False},
                     "zarr-set_sync": {"slots_by_hand": False}}
    if variant in zarr_variants:
        # defined here, used by the driver only: the workers get ZarrStore's own writer
        return type(f"ZarrStore_{variant.replace('-', '_')}", (ZarrStore,),
                    zarr_variants[variant])
    if variant == "hdf5-fsync":  # every call's file fsync'd before its rename
        return type("HDF5Store_fsync", (HDF5Store,), {"fsync_calls": True})
    return list_stores()[variant]


def make(i: int, n: int) -> np.ndarray:
    """One call's result: ``n`` float64 values."""
    return np.full(n, float(i))


def create_cost(directory: Path, n: int = 300) -> float:
    """Microseconds to create (and close) one empty file in ``directory``.

    Printed with the figures because the per-call-file stores pay it for every
    call. On this project's VM it ranged from 9 to 500 us, depending on how many
    files had been deleted nearby in the last minutes (see :func:`retire`).
    """
    probe = directory / "create-probe"
    probe.mkdir()
    start = time.perf_counter()
    for i in range(n):
        os.close(os.open(probe / f"f{i}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    elapsed = time.perf_counter() - start
    retire(probe)
    return elapsed / n * 1e6


def wait_for_quiet_creates(directory: Path, limit_us: float = 40, patience: float = 420) -> str:
    """Wait (up to ``patience`` s) until creating a file in ``directory`` is cheap again.

    Right after many files were deleted nearby (an earlier run of this script,
    a test suite), ext4 without a journal checks every recently deleted inode
    it passes over when it allocates one (see :func:`retire`), for up to 360 s:
    creating a file then took 150-500 us here instead of 15-40. The per-call-file
    stores pay that once per call, the h5py baseline once per run, so figures
    taken then measure what ran before the script. Returns what it saw.
    """
    first = cost = create_cost(directory)
    waited = 0.0
    while cost > limit_us and waited < patience:
        time.sleep(15)
        waited += 15
        cost = create_cost(directory)
    return f"creating a file took {first:.0f} us, {cost:.0f} us after waiting {waited:.0f} s"


def retire(path: Path) -> None:
    """Take a finished variant's output out of the way without deleting it yet.

    Its files are truncated (their data and page cache are freed) and it is
    moved into ``<scratch>/retired``; the script deletes them all at the end.
    Deleting them right away slows down the variants after it: on ext4 without
    a journal (this project's VM), the inode allocator skips inodes deleted less
    than 60 s before (360 s while their inode table block is dirty) and checks
    each one it skips, so after a run deleted 256 files, every file created
    nearby searched past them (creates took up to 500 us instead of 15 us) --
    a cost of this script's own clean-up, not of the store it measured.
    """
    graveyard = path.parent / "retired"
    graveyard.mkdir(exist_ok=True)
    files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
    for f in files:
        os.truncate(f, 0)
    path.rename(graveyard / f"{len(os.listdir(graveyard))}-{path.name}")


def settle() -> None:
    """Flush dirty pages, then touch and free 1 GiB: untimed, before every timed region.

    Virtual machines with free page reporting (virtio-balloon; this project's has
    ``page_reporting_order`` 9) hand memory that stayed free for about two seconds
    back to the host, and a page the guest uses again then faults on the host
    (~1 GB/s here). Which variant meets such pages was luck: a variant that started
    a second or two after the one before it freed its page cache (deleting its
    files) ran at ~1,000 instead of ~6,000 MB/s. Freeing 1 GiB just touched puts
    pages at the head of the free lists that the host still backs. Test at 8 MB,
    9 reps, with a one-second pause after each deletion to provoke it: without
    this step 14 of the 36 timed store runs stalled (8 of 9 for zarr), with it
    none of 45 did.
    """
    os.sync()
    block = np.ones(2**30 // 8)
    del block


# -- A. end to end ---------------------------------------------------------------------
def h5py_one_process(path: Path, n_calls: int, n: int) -> float:
    settle()
    start = time.perf_counter()
    with h5py.File(path, "w") as h5f:
        dset = h5f.create_dataset("result_0", shape=(n_calls, n), dtype="f8")
        for i in range(n_calls):
            dset[i] = make(i, n)
    return time.perf_counter() - start


def end_to_end(store: str, base: Path, n_calls: int, n: int, inf: bool = False) -> float:
    from acme_core import ParallelMap

    write = store != "memory"
    out = base / f"run-{store}"
    with ParallelMap(make, list(range(n_calls)), n, result_shape=(None, np.inf if inf else n),
                     store=store_class(store) if write else None, write_worker_results=write,
                     output_dir=out if write else None, progress=False, verbose=False,
                     logfile=False) as pmap:
        settle()
        start = time.perf_counter()
        result = pmap.compute()
        elapsed = time.perf_counter() - start
    del result
    return elapsed


# -- B. store write path ------------------------------------------------------------------
_BARRIER: Any = None
_LOCK: Any = None


def _init(barrier: Any, lock: Any) -> None:
    global _BARRIER, _LOCK
    _BARRIER, _LOCK = barrier, lock
    # imports are a one-off cost per worker, not part of the write path
    import zarr  # noqa: F401

    import acme_storage.hdf5  # noqa: F401
    import acme_storage.zarr  # noqa: F401


def _write_share(args: tuple[Any, list[int], int]) -> tuple[float, float]:
    writer, ids, n = args
    data = make(1, n)  # created before the clock starts
    _BARRIER.wait()
    start = time.time()
    for i in ids:
        writer.write(i, data)
    return start, time.time()


class LockedH5Writer:
    """ACME's single-file writer: lock, open the shared file, write one slot, close, unlock."""

    def __init__(self, path: str) -> None:
        self.path = path

    def write(self, i: int, value: np.ndarray) -> None:
        with _LOCK, h5py.File(self.path, "a") as h5f:
            h5f["result_0"][i] = value


def write_path(store: str, base: Path, n_calls: int, n: int, pool: Any,
               inf: bool = False) -> float:
    """Seconds from the released barrier to the end of ``finalize``."""
    from acme_core.store import RunInfo

    out = base / f"wp-{store}"
    out.mkdir()
    finalize = None
    if store == "h5py+lock":
        path = out / "f.h5"
        with h5py.File(path, "w") as h5f:
            h5f.create_dataset("result_0", shape=(n_calls, n), dtype="f8")
        writer: Any = LockedH5Writer(str(path))
    else:
        s = store_class(store)()
        s.prepare(RunInfo("f", n_calls, out, result_shape=(n_calls, np.inf if inf else n),
                          result_dtype=np.dtype("f8"), stacking_dim=0))
        writer = s.writer()

        def finalize() -> None:
            s.finalize([str(out)] * n_calls, set())

    workers = pool._processes
    settle()  # no dirty pages of the previous variant, no memory the host took back
    shares = [(writer, list(range(k, n_calls, workers)), n) for k in range(workers)]
    spans = pool.map(_write_share, shares, chunksize=1)
    end = max(e for _, e in spans)
    if finalize is not None:
        finalize()
        end = time.time()
    return end - min(s for s, _ in spans)


def h5py_prepared_one_process(path: Path, n_calls: int, n: int) -> float:
    data = make(1, n)
    settle()
    start = time.perf_counter()
    with h5py.File(path, "w") as h5f:
        dset = h5f.create_dataset("result_0", shape=(n_calls, n), dtype="f8")
        for i in range(n_calls):
            dset[i] = data
    return time.perf_counter() - start


# -- driver ----------------------------------------------------------------------------
def rotated(variants: list[str], rep: int) -> list[str]:
    """The variants in a different order each rep: none always runs after the same one.

    On a shared VM a variant's figure depends on what ran just before it (page
    cache to reclaim, dirty pages, another variant's processes still busy).
    """
    k = rep % len(variants)
    return variants[k:] + variants[:k]


def rate(size_mb: float, n_calls: int, seconds: list[float]) -> str:
    rates = [size_mb * n_calls / s for s in seconds]
    return f"{statistics.median(rates):8.0f} [{min(rates):.0f}-{max(rates):.0f}]"


def ratio(times: dict[str, list[float]], variant: str, reference: str) -> str:
    """``variant``'s MB/s over ``reference``'s: from the median times, and from the best ones.

    On this project's VM (ext4 mounted with ``discard``, memory behind a balloon
    device), a few reps of any variant stall for 0.1-3 s at random; the best
    rep shows what the write path itself costs, the median what a user sees.
    """
    median = statistics.median(times[reference]) / statistics.median(times[variant])
    best = min(times[reference]) / min(times[variant])
    return f"{median:6.0%} {best:6.0%}"


def ratios(variants: list[str]) -> list[tuple[str, str]]:
    """(variant, reference) pairs of the last columns: the first zarr variant over h5py,
    then every other zarr variant over the first."""
    zarrs = [v for v in variants if v.startswith("zarr")]
    if not zarrs:
        return []
    return [(zarrs[0], "h5py"), *((v, zarrs[0]) for v in zarrs[1:])]


def measure(reps: int, variants: list[str], baseline: Any, run: Any,
            n_calls: int, n: int) -> dict[str, list[float]]:
    """Seconds of every rep: ``baseline(n_calls, n)`` as "h5py", ``run(v, n_calls, n)``
    for each variant; the order rotates from rep to rep (see :func:`rotated`).
    """
    times: dict[str, list[float]] = {v: [] for v in ["h5py", *variants]}
    for rep in range(reps):
        for v in rotated(["h5py", *variants], rep):
            times[v].append(baseline(n_calls, n) if v == "h5py" else run(v, n_calls, n))
    return times


def header(variants: list[str]) -> str:
    return (f"{'result':>8} {'calls':>6} {'h5py 1 proc':>20} "
            + " ".join(f"{v:>20}" for v in variants)
            + "".join(f"   {v}/{r} median, best" for v, r in ratios(variants)))


def row(size: float, n_calls: int, times: dict[str, list[float]], variants: list[str]) -> str:
    return (f"{size:6.4g}MB {n_calls:6d} {rate(size, n_calls, times['h5py']):>20} "
            + " ".join(f"{rate(size, n_calls, times[v]):>20}" for v in variants)
            + "".join(f"   {ratio(times, v, r):>{len(v) + len(r) + 14}}"
                      for v, r in ratios(variants)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1, 8, 64],
                        help="result sizes in MB")
    parser.add_argument("--total", type=float, default=256, help="MB written per run")
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-e2e", action="store_true", help="only measurement B")
    parser.add_argument("--stores", nargs="+", default=None,
                        help="stores and zarr variants (zarr-api, zarr-set_sync) to "
                             "run; B skips memory and runs h5py+lock only if named (default: "
                             f"{' '.join(STORES)}, and h5py+lock in B)")
    parser.add_argument("--inf", action="store_true",
                        help="result_shape=(None, np.inf) (the stores' unlimited-axis path)")
    parser.add_argument("--plain-dask", action="store_true",
                        help="run A on a plain distributed.LocalCluster (dask's malloc setting)")
    args = parser.parse_args()
    default_stores = args.stores is None
    args.stores = STORES if default_stores else args.stores

    from distributed import Client, LocalCluster

    tmp = Path(tempfile.mkdtemp(prefix="acme-bench-", dir=os.environ.get("BENCH_DIR")))
    ctx = multiprocessing.get_context("spawn")
    lock = ctx.Lock()
    barrier = ctx.Barrier(args.workers)
    print(f"# {args.workers} workers, {args.total:.0f} MB per run, median [min-max] of "
          f"{args.reps} reps, MB/s (MB = 1e6 B); scratch {tmp} (BENCH_DIR): "
          f"{wait_for_quiet_creates(tmp)}", flush=True)
    try:
        if not args.skip_e2e:
            if args.plain_dask:
                client = Client(LocalCluster(n_workers=args.workers, threads_per_worker=1,
                                             dashboard_address=":0"))
            else:
                from acme_core import local_cluster_setup

                client = local_cluster_setup(n_workers=args.workers, interactive=False)
            kind = "plain dask LocalCluster" if args.plain_dask else "local_cluster_setup"
            stores_a = [v for v in args.stores if not (args.inf and v == "memory")]
            print(f"\n## A. end to end: ParallelMap(..., result_shape=(None, "
                  f"{'np.inf' if args.inf else 'n'})).compute() on {kind}")
            print(header(stores_a))

            def baseline(n_calls: int, n: int) -> float:
                seconds = h5py_one_process(tmp / "h5py.h5", n_calls, n)
                retire(tmp / "h5py.h5")
                return seconds

            def run(v: str, n_calls: int, n: int) -> float:
                seconds = end_to_end(v, tmp, n_calls, n, args.inf)
                if (tmp / f"run-{v}").exists():  # "memory" writes nothing
                    retire(tmp / f"run-{v}")
                return seconds

            for size in args.sizes:
                n = int(size * MB // 8)
                n_calls = max(4, int(args.total // size))
                end_to_end("memory", tmp, 2, n)  # warm the workers up
                times = measure(args.reps, stores_a, baseline, run, n_calls, n)
                print(row(size, n_calls, times, stores_a), flush=True)
            from acme_core import cluster_cleanup

            cluster_cleanup(client)

        print(f"\n## B. store write path: {args.workers} processes writing through the store's "
              f"writer (+ finalize)")
        variants = [v for v in args.stores if v != "memory"]
        variants += ["h5py+lock"] if default_stores else []
        print(header(variants))

        def baseline_b(n_calls: int, n: int) -> float:
            seconds = h5py_prepared_one_process(tmp / "h.h5", n_calls, n)
            retire(tmp / "h.h5")
            return seconds

        with ctx.Pool(args.workers, initializer=_init, initargs=(barrier, lock)) as pool:

            def run_b(v: str, n_calls: int, n: int) -> float:
                seconds = write_path(v, tmp, n_calls, n, pool, args.inf)
                retire(tmp / f"wp-{v}")
                return seconds

            for size in args.sizes:
                n = int(size * MB // 8)
                n_calls = max(4, int(args.total // size))
                for v in variants:  # warm-up round, not counted
                    run_b(v, min(n_calls, 2 * args.workers), n)
                times = measure(args.reps, variants, baseline_b, run_b, n_calls, n)
                print(row(size, n_calls, times, variants), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
