"""Calls per second for trivial calls: acme-core next to esi-acme and plain alternatives.

One run prints, side by side and measured on the same machine in the same run:

1. **Throughput**: ``N`` trivial calls (``2 * x``) at N = 1,000 / 10,000 / 100,000, in
   memory (results gathered in the caller) and HDF5 (one file per call) modes, for

   * ``acme-core``: ``with ParallelMap(double, range(N)) as p: p.compute()`` on a
     2-worker dask ``LocalCluster`` that is already up (construction included);
   * ``esi-acme``: the same code with ``from acme import ParallelMap``, run in a
     subprocess with an interpreter that has esi-acme (``--acme-python``), on its
     own 2-worker cluster; at N = 1,000 and 10,000 only (``--acme-ns``): at its
     ~250 calls/s, N = 100,000 alone would take about 7 minutes;
   * ``Client.map``: plain ``distributed``, one future per call, ``client.gather``;
     at N <= 10,000 only (``--map-ns``), for the same reason (~450 calls/s);
   * ``PPE chunked``: ``ProcessPoolExecutor(2).map(f, xs, chunksize=N // 8)``,
     pool started and warmed beforehand;
   * ``joblib warm``: ``Parallel(n_jobs=2)`` used as a context manager, warmed up.

   In HDF5 mode the alternatives' calls write their own ``<fn>_<i>.h5`` with h5py
   (what acme-core's and esi-acme's ``"hdf5"`` store write per call).

2. **Seconds to the first finished call** at N = 100,000 (``--first-n``), from the
   start of the ``with ParallelMap(...)`` line (cluster up) to the first result in the
   caller's hands: ``next(pmap.iter_results())`` for acme-core, the first of
   ``as_completed`` for Client.map (N = 10,000), the first item of the result
   iterator for PPE and joblib (``return_as="generator_unordered"``). esi-acme has
   no such iterator: its figure is the earliest completion time stamped by the
   calls themselves (``time.time()`` returned by each call) in a run of N = 10,000.

3. **Driver peak memory** (``VmHWM`` of the driver process, which also hosts
   the dask scheduler), each in a fresh subprocess: acme-core at N = 1,000,000 in
   memory (``--rss-n``, must stay < 1 GB) and 10,000; the alternatives at 10,000
   (and 1,000,000 for PPE and joblib).

Figures on a shared machine are noisy: compare the ratios of one run. Run::

    python benchmarks/bench_calls.py                  # everything, about 10-15 minutes
    python benchmarks/bench_calls.py --quick          # N = 1,000 / 10,000, fewer extras
    python benchmarks/bench_calls.py --json out.json  # also save the raw figures

Needs ``pip install joblib`` for the joblib column; esi-acme goes into a separate
venv (see ``benchmarks/README.md``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import _common as c

MODES = ("memory", "hdf5")
IMPLS = ("acme-core", "esi-acme", "Client.map", "PPE chunked", "joblib warm")


# --------------------------------------------------------------------- workloads
def double(x: int) -> int:
    return 2 * x


def double_h5(x: int, out: str) -> str:
    """What an alternative does in HDF5 mode: write its own result file with h5py."""
    import h5py
    import numpy as np

    path = f"{out}/double_{x}.h5"
    with h5py.File(path, "w") as h5f:
        h5f.create_dataset("result_0", data=np.asarray([2 * x]))
    return path


def stamp(x: int) -> float:
    """A trivial call that says when it finished."""
    return time.time()


def _check(mode: str, n: int, results: Any, out: Path | None) -> None:
    if mode == "memory":
        values = list(results)
        assert len(values) == n and values[:3] == [0, 2, 4][:n] and values[-1] == 2 * (n - 1), \
            "wrong results"
    else:  # every file is there, and a few read back right (after the clock stopped)
        import h5py

        paths = list(results)
        assert len(paths) == n and all(os.path.exists(p) for p in paths), "missing result files"
        for i in sorted({0, n // 2, n - 1}):
            with h5py.File(paths[i], "r") as h5f:
                assert int(h5f["result_0"][0]) == 2 * i, f"wrong result in {paths[i]}"


# ------------------------------------------------------------- implementations
def run_pmap(module: str, mode: str, n: int) -> float:
    """``ParallelMap`` of ``module`` (acme_core or acme) on the running client."""
    pmap_cls = __import__(module).ParallelMap
    extra: dict[str, Any] = {"verbose": False, "logfile": False}
    if module == "acme_core":
        extra["progress"] = False
    with c.scratch() as tmp:
        kwargs = ({"write_worker_results": False} if mode == "memory"
                  else {"output_dir": str(tmp / "run")})
        start = time.perf_counter()
        with pmap_cls(double, list(range(n)), **kwargs, **extra) as pmap:
            results = pmap.compute()
        seconds = time.perf_counter() - start
        _check(mode, n, results, tmp)
    return seconds


def run_client_map(client: Any, mode: str, n: int) -> float:
    with c.scratch() as tmp:
        start = time.perf_counter()
        if mode == "memory":
            futures = client.map(double, range(n), pure=False)
        else:
            futures = client.map(double_h5, range(n), out=str(tmp), pure=False)
        results = client.gather(futures)
        seconds = time.perf_counter() - start
        del futures
        _check(mode, n, results, tmp)
    return seconds


def run_ppe(pool: ProcessPoolExecutor, mode: str, n: int) -> float:
    with c.scratch() as tmp:
        chunk = max(1, n // 8)
        start = time.perf_counter()
        if mode == "memory":
            results = list(pool.map(double, range(n), chunksize=chunk))
        else:
            results = list(pool.map(double_h5, range(n), [str(tmp)] * n, chunksize=chunk))
        seconds = time.perf_counter() - start
        _check(mode, n, results, tmp)
    return seconds


def run_joblib(parallel: Any, mode: str, n: int) -> float:
    from joblib import delayed

    with c.scratch() as tmp:
        start = time.perf_counter()
        if mode == "memory":
            results = parallel(delayed(double)(i) for i in range(n))
        else:
            results = parallel(delayed(double_h5)(i, str(tmp)) for i in range(n))
        seconds = time.perf_counter() - start
        _check(mode, n, results, tmp)
    return seconds


def repeat(fn: Any, reps: int, budget: float = 20.0) -> float:
    """Median of ``reps`` runs; a run longer than ``budget`` seconds is not repeated."""
    times = []
    for _ in range(reps):
        times.append(fn())
        if times[-1] > budget:
            break
    return c.median(times)


# ------------------------------------------------------------ first result
def first_acme_core(n: int) -> dict[str, float]:
    from acme_core import ParallelMap

    start = time.perf_counter()
    with ParallelMap(double, list(range(n)), write_worker_results=False, progress=False,
                     verbose=False, logfile=False) as pmap:
        results = pmap.iter_results()
        next(results)
        first = time.perf_counter() - start
        rest = sum(1 for _ in results)
    assert rest == n - 1
    return {"first": first, "total": time.perf_counter() - start}


def first_client_map(client: Any, n: int) -> dict[str, float]:
    from distributed import as_completed

    start = time.perf_counter()
    futures = client.map(double, range(n), pure=False)
    iterator = as_completed(futures)
    next(iterator).result()
    first = time.perf_counter() - start
    for future in iterator:
        future.release()
    return {"first": first, "total": time.perf_counter() - start}


def first_ppe(pool: ProcessPoolExecutor, n: int) -> dict[str, float]:
    start = time.perf_counter()
    results = pool.map(double, range(n), chunksize=max(1, n // 8))
    next(results)
    first = time.perf_counter() - start
    sum(1 for _ in results)
    return {"first": first, "total": time.perf_counter() - start}


def first_joblib(n: int) -> dict[str, float]:
    from joblib import Parallel, delayed

    with Parallel(n_jobs=2, return_as="generator_unordered") as parallel:
        list(parallel(delayed(double)(i) for i in range(1000)))  # warm
        start = time.perf_counter()
        results = parallel(delayed(double)(i) for i in range(n))
        next(results)
        first = time.perf_counter() - start
        sum(1 for _ in results)
    return {"first": first, "total": time.perf_counter() - start}


def first_by_stamps(module: str, n: int) -> dict[str, float]:
    """Earliest completion stamped by the calls (for esi-acme, which has no iterator)."""
    pmap_cls = __import__(module).ParallelMap
    t0 = time.time()
    start = time.perf_counter()
    with pmap_cls(stamp, list(range(n)), write_worker_results=False, verbose=False,
                  logfile=False) as pmap:
        stamps = pmap.compute()
    return {"first": min(stamps) - t0, "total": time.perf_counter() - start}


# ------------------------------------------------------------- driver memory
def rss_part(impl: str, n: int) -> dict[str, Any]:
    """In a fresh process: peak driver RSS of ``impl`` running ``n`` trivial calls in memory."""
    before = c.peak_rss_mib()
    if impl in ("acme-core", "esi-acme", "Client.map"):
        client = c.start_cluster()
        ready = c.peak_rss_mib()
        if impl == "Client.map":
            seconds = run_client_map(client, "memory", n)
        else:
            seconds = run_pmap("acme_core" if impl == "acme-core" else "acme", "memory", n)
        c.stop_cluster(client)
    elif impl == "PPE chunked":
        with ProcessPoolExecutor(2) as pool:
            list(pool.map(double, range(100)))
            ready = c.peak_rss_mib()
            seconds = run_ppe(pool, "memory", n)
    else:
        from joblib import Parallel

        with Parallel(n_jobs=2) as parallel:
            run_joblib(parallel, "memory", 1000)
            ready = c.peak_rss_mib()
            seconds = run_joblib(parallel, "memory", n)
    return {"impl": impl, "n": n, "after_import": before, "ready": ready,
            "peak": c.peak_rss_mib(), "seconds": seconds}


# --------------------------------------------------------------- esi-acme part
def esi_acme_part(ns: list[int], reps: int, first_n: int) -> dict[str, Any]:
    """Runs under the esi-acme interpreter: throughput and first-result figures."""
    client = c.start_cluster()
    out: dict[str, Any] = {"version": c.versions("esi-acme", "distributed"), "throughput": {}}
    try:
        for mode in MODES:
            for n in ns:
                c.log(f"  esi-acme {mode} N={n}")
                seconds = repeat(lambda mode=mode, n=n: run_pmap("acme", mode, n), reps)
                out["throughput"][f"{mode}/{n}"] = seconds
        if first_n:
            c.log(f"  esi-acme first result (stamps) N={first_n}")
            out["first"] = first_by_stamps("acme", first_n)
    finally:
        c.stop_cluster(client)
    return out


# ------------------------------------------------------------------- report
def report(res: dict[str, Any]) -> str:
    lines = [f"Machine: {res['machine']}", f"Versions: {res['versions']}", ""]
    head = "| mode | N | " + " | ".join(IMPLS) + " |"
    lines += ["### Trivial calls, calls/s (seconds), 2 workers, cluster/pool already up", "",
              head, "|---|---:|" + "---:|" * len(IMPLS)]
    for key in res["throughput_keys"]:
        mode, n = key.split("/")
        cells = [c.fmt_rate(int(n), res["throughput"].get(impl, {}).get(key)) for impl in IMPLS]
        lines.append(f"| {mode} | {int(n):,} | " + " | ".join(cells) + " |")
    lines += ["", "### Seconds to the first finished call (and to the last)", "",
              "| impl | N | first s | all s | how |", "|---|---:|---:|---:|---|"]
    for row in res["first"]:
        lines.append(f"| {row['impl']} | {row['n']:,} | {row['first']:.3f} | {row['total']:.2f} "
                     f"| {row['how']} |")
    lines += ["", "### Driver peak RSS (VmHWM, MiB; the driver hosts the dask scheduler)", "",
              "| impl | N in memory | at start | cluster/pool up | peak | run s |",
              "|---|---:|---:|---:|---:|---:|"]
    for row in res["rss"]:
        lines.append(f"| {row['impl']} | {row['n']:,} | {row['after_import']:.0f} | "
                     f"{row['ready']:.0f} | {row['peak']:.0f} | {row['seconds']:.2f} |")
    lines += ["", "### The issue's figures (ratios from this run)", ""]
    lines += [f"- {text}" for text in res["checks"]]
    return "\n".join(lines)


def checks(res: dict[str, Any]) -> list[str]:
    """The issue's targets, computed from this run's figures."""
    out = []
    thr = res["throughput"]

    def rate(impl: str, key: str) -> float | None:
        seconds = thr.get(impl, {}).get(key)
        return None if seconds is None else int(key.split("/")[1]) / seconds

    def verdict(ok: bool) -> str:
        return "REACHED" if ok else "NOT reached"

    core_h5, acme_h5 = rate("acme-core", "hdf5/10000"), rate("esi-acme", "hdf5/10000")
    if core_h5 and acme_h5:
        out.append(f"HDF5 N=10,000: acme-core {core_h5:,.0f}/s = {core_h5 / acme_h5:.1f}x "
                   f"esi-acme ({acme_h5:,.0f}/s); target >= 10x: {verdict(core_h5 >= 10 * acme_h5)}")
    core_mem = rate("acme-core", "memory/100000")
    acme_mem = rate("esi-acme", "memory/10000")  # esi-acme is not run at 100,000
    jl = rate("joblib warm", "memory/100000")
    if core_mem and acme_mem:
        out.append(f"memory N=100,000: acme-core {core_mem:,.0f}/s = {core_mem / acme_mem:.0f}x "
                   f"esi-acme's {acme_mem:,.0f}/s (its N=10,000 rate); target >= 100x: "
                   f"{verdict(core_mem >= 100 * acme_mem)}")
    if core_mem and jl:
        out.append(f"memory N=100,000: acme-core = {core_mem / jl:.2f}x joblib warm "
                   f"({jl:,.0f}/s); target >= 0.5x: {verdict(core_mem >= 0.5 * jl)}")
    for row in res["rss"]:
        if row["impl"] == "acme-core" and row["n"] >= 1_000_000:
            mb = row["peak"] * 1.048576
            out.append(f"N={row['n']:,} in memory: driver peak RSS {mb:.0f} MB "
                       f"({row['seconds']:.1f} s); target < 1000 MB: {verdict(mb < 1000)}")
    for row in res["first"]:
        if row["impl"] == "acme-core":
            out.append(f"first finished call at N={row['n']:,}: {row['first']:.2f} s after the "
                       f"cluster was up; target < 2 s: {verdict(row['first'] < 2)}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ns", default="1000,10000,100000")
    parser.add_argument("--acme-ns", default="1000,10000")
    parser.add_argument("--map-ns", default="1000,10000")
    parser.add_argument("--first-n", type=int, default=100_000)
    parser.add_argument("--rss-n", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--acme-python", default=os.environ.get("ACME_PYTHON",
                                                                c.DEFAULT_ACME_PYTHON))
    parser.add_argument("--quick", action="store_true",
                        help="N = 1,000 / 10,000, no esi-acme N=10,000, RSS at 100,000")
    parser.add_argument("--json", help="also write the raw figures here")
    parser.add_argument("--skip", default="", help="comma-separated sections to leave out: "
                        "first, rss")
    # internal: the parts that run in subprocesses
    parser.add_argument("--part", choices=["esi-acme", "rss"], help=argparse.SUPPRESS)
    parser.add_argument("--impl", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.part == "esi-acme":
        ns = [int(v) for v in args.acme_ns.split(",") if v]
        print(json.dumps(esi_acme_part(ns, args.reps, args.first_n)))
        return
    if args.part == "rss":
        print(json.dumps(rss_part(args.impl, args.n)))
        return

    if args.quick:
        args.ns, args.acme_ns, args.first_n, args.rss_n = "1000,10000", "1000", 10_000, 100_000
    ns = [int(v) for v in args.ns.split(",") if v]
    acme_ns = [int(v) for v in args.acme_ns.split(",") if v]
    map_ns = {int(v) for v in args.map_ns.split(",") if v}
    script = Path(__file__).resolve()
    have_acme = c.acme_available(args.acme_python)
    res: dict[str, Any] = {
        "machine": c.machine(),
        "versions": c.versions("acme-core", "dask", "distributed", "h5py", "joblib"),
        "throughput": {impl: {} for impl in IMPLS}, "first": [], "rss": [],
        "throughput_keys": [f"{m}/{n}" for m in MODES for n in sorted(set(ns) | set(acme_ns))],
    }
    c.log(res["machine"])
    from joblib import Parallel

    client = c.start_cluster()
    pool = ProcessPoolExecutor(2)
    try:
        list(pool.map(double, range(100)))  # warm the pool
        with Parallel(n_jobs=2) as parallel:
            run_joblib(parallel, "memory", 1000)  # warm the workers
            run_pmap("acme_core", "hdf5", 10)  # warm: imports on the workers
            for mode in MODES:
                for n in ns:
                    c.log(f"{mode} N={n}")
                    thr = res["throughput"]
                    thr["acme-core"][f"{mode}/{n}"] = repeat(
                        lambda mode=mode, n=n: run_pmap("acme_core", mode, n), args.reps)
                    if n in map_ns:
                        thr["Client.map"][f"{mode}/{n}"] = repeat(
                            lambda mode=mode, n=n: run_client_map(client, mode, n), args.reps,
                            budget=5)
                    thr["PPE chunked"][f"{mode}/{n}"] = repeat(
                        lambda mode=mode, n=n: run_ppe(pool, mode, n), args.reps)
                    thr["joblib warm"][f"{mode}/{n}"] = repeat(
                        lambda mode=mode, n=n: run_joblib(parallel, mode, n), args.reps)
        if "first" not in args.skip:
            c.log(f"first result N={args.first_n}")
            res["first"].append({"impl": "acme-core", "n": args.first_n,
                                 "how": "next(pmap.iter_results())", **first_acme_core(args.first_n)})
            map_first = min(args.first_n, max(map_ns))
            res["first"].append({"impl": "Client.map", "n": map_first,
                                 "how": "first of as_completed", **first_client_map(client, map_first)})
            res["first"].append({"impl": "PPE chunked", "n": args.first_n,
                                 "how": "next(pool.map(...))", **first_ppe(pool, args.first_n)})
            res["first"].append({"impl": "joblib warm", "n": args.first_n,
                                 "how": "generator_unordered", **first_joblib(args.first_n)})
    finally:
        pool.shutdown()
        c.stop_cluster(client)

    finish(args, res, have_acme, acme_ns, script)


def finish(args: argparse.Namespace, res: dict[str, Any], have_acme: bool, acme_ns: list[int],
           script: Path) -> None:
    """The esi-acme part, the driver-memory runs and the report."""
    if have_acme:
        c.log(f"esi-acme with {args.acme_python} (its own 2-worker cluster), N={acme_ns}")
        first_acme = min(max(acme_ns), args.first_n)
        part = c.run_json(args.acme_python, script,
                          ["--part", "esi-acme", "--acme-ns", ",".join(map(str, acme_ns)),
                           "--reps", str(min(args.reps, 1 if max(acme_ns) > 1000 else 3)),
                           "--first-n", str(0 if "first" in args.skip else first_acme)],
                          env={"PATH": c.noslurm_path()})
        res["throughput"]["esi-acme"] = part["throughput"]
        res["versions"] += f"; {part['version']}"
        if "first" not in args.skip:
            res["first"].append({"impl": "esi-acme", "n": first_acme,
                                 "how": "earliest time stamped by the calls", **part["first"]})
    else:
        c.log(f"esi-acme is not importable with {args.acme_python!r}: its column stays empty")

    rss_runs = [("acme-core", args.rss_n), ("acme-core", 10_000), ("Client.map", 10_000),
                ("PPE chunked", args.rss_n), ("joblib warm", args.rss_n)]
    if have_acme:
        rss_runs.insert(2, ("esi-acme", 10_000))
    if "rss" in args.skip:
        rss_runs = []
    for impl, n in rss_runs:
        c.log(f"driver RSS {impl} N={n}")
        python = args.acme_python if impl == "esi-acme" else sys.executable
        env = {"PATH": c.noslurm_path()} if impl == "esi-acme" else None
        res["rss"].append(c.run_json(python, script, ["--part", "rss", "--impl", impl,
                                                      "--n", str(n)], env=env))
    res["checks"] = checks(res)
    print(report(res))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
