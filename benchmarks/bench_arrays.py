"""Job arrays on the local SLURM: ``slurm-array`` next to the dask ``"slurm"`` backend and submitit.

One run measures, on the same machine and the same SLURM:

* **workloads**: ``N`` trivial calls (``2 * x``, default N = 10,000) and 200 calls that
  sleep 1 s (``--slow-n``);
* **contenders**, each in a fresh interpreter:

  - ``slurm-array``: ``with ParallelMap(f, range(N), backend="slurm-array",
    n_workers=2) as p: for _ in p.iter_results(): ...`` (the ``"hdf5"`` store, one file
    per call, manifest; ``calls_per_element="auto"``);
  - ``dask slurm``: the same with ``backend="slurm"`` (two dask-jobqueue worker jobs of
    1 core / 1 GB), worker start-up included;
  - ``submitit``: ``AutoExecutor.map_array(f, range(N))`` (one array element per call,
    ``slurm_array_parallelism=2``), then waiting for every job; submitit 1.5.4 installed
    with ``pip install --target`` into a scratch directory (``--submitit-path``), not the
    test venv. Its trivial run is capped at ``--submitit-n`` calls (default 500): the
    single-node SLURM here runs two one-call elements at a time at ~1 s each, so 10,000
    would take hours; and ``map_array`` of more than ``MaxArraySize`` calls fails outright
    (tried and reported first, see submitit#1624);

* **figures**: calls/s over the whole run (construction to the last result), seconds to
  the first result in the caller's hands, and every scheduler command the driver issued
  (``sbatch``, ``squeue``, ``sacct``, ``scancel``, ``sinfo``, ``scontrol``), counted by
  PATH shims that log each call and ``exec`` the real command.

Run::

    python benchmarks/bench_arrays.py                       # about 15 minutes
    python benchmarks/bench_arrays.py --n 2000 --slow-n 40  # a quick look

Figures on a shared machine are noisy: compare the ratios of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
COMMANDS = ("sbatch", "squeue", "sacct", "scancel", "sinfo", "scontrol")
CONTENDERS = ("slurm-array", "dask slurm", "submitit")


def double(x: int) -> int:
    return 2 * x


def sleep1(x: int) -> int:
    time.sleep(1.0)
    return x


# ------------------------------------------------------------------ in the child process
def run_acme(backend: str, kind: str, n: int, out: str) -> dict[str, Any]:
    from acme_core import ParallelMap

    func = double if kind == "trivial" else sleep1
    options: dict[str, Any] = {"interface": "lo"} if backend == "slurm" else {}
    start = time.perf_counter()
    first = None
    count = 0
    with ParallelMap(func, list(range(n)), backend=backend, n_workers=2, mem_per_worker="1GB",
                     output_dir=out, progress=False, setup_timeout=300,
                     backend_options=options) as pmap:
        for _ in pmap.iter_results():
            if first is None:
                first = time.perf_counter() - start
            count += 1
    return {"seconds": time.perf_counter() - start, "first": first, "n": count}


def run_submitit(kind: str, n: int, out: str) -> dict[str, Any]:
    import submitit

    func = double if kind == "trivial" else sleep1
    executor = submitit.AutoExecutor(folder=out)
    executor.update_parameters(slurm_array_parallelism=2, timeout_min=60, mem_gb=1,
                               cpus_per_task=1, slurm_partition="debug")
    start = time.perf_counter()
    try:
        jobs = executor.map_array(func, list(range(n)))
    except Exception as exc:  # more calls than MaxArraySize
        return {"error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1][:200]}",
                "seconds": time.perf_counter() - start}
    first = None
    left = set(range(len(jobs)))
    while left:
        for i in list(left):
            if jobs[i].done():
                jobs[i].result()
                left.discard(i)
                if first is None:
                    first = time.perf_counter() - start
        time.sleep(0.5)
    return {"seconds": time.perf_counter() - start, "first": first, "n": len(jobs)}


def child(args: argparse.Namespace) -> None:
    if args.contender == "submitit":
        result = run_submitit(args.kind, args.n, args.out)
    else:
        backend = "slurm-array" if args.contender == "slurm-array" else "slurm"
        result = run_acme(backend, args.kind, args.n, args.out)
    print("RESULT " + json.dumps(result))


# ------------------------------------------------------------------ in the parent
def make_shims(where: Path) -> Path:
    """A directory of ``sbatch``, ``squeue``, ... that log their name and exec the real one."""
    where.mkdir(parents=True, exist_ok=True)
    for name in COMMANDS:
        real = shutil.which(name)
        if real is None:
            continue
        shim = where / name
        shim.write_text(f'#!/bin/sh\necho {name} >> "$ACME_BENCH_CMDLOG"\nexec {real} "$@"\n')
        shim.chmod(0o755)
    return where


def measure(contender: str, kind: str, n: int, scratch: Path, shims: Path,
            submitit_path: str) -> dict[str, Any]:
    out = scratch / f"{contender}-{kind}-{n}".replace(" ", "")
    log = scratch / f"{out.name}.commands"
    env = {**os.environ, "PATH": f"{shims}{os.pathsep}{os.environ['PATH']}",
           "ACME_BENCH_CMDLOG": str(log)}
    paths = [str(HERE), submitit_path, env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    print(f"{contender} {kind} N={n} ...", file=sys.stderr, flush=True)
    done = subprocess.run([sys.executable, "-c",
                           "import sys, bench_arrays; bench_arrays.main(sys.argv[1:])",
                           "--child", contender, "--kind", kind, "--n", str(n), "--out",
                           str(out)], capture_output=True, text=True, env=env, cwd=scratch,
                          timeout=7200)
    lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    result: dict[str, Any] = json.loads(lines[-1][7:]) if lines else {
        "error": (done.stderr.strip().splitlines() or ["no output"])[-1][:200]}
    commands = log.read_text().split() if log.exists() else []
    result["commands"] = {name: commands.count(name) for name in COMMANDS}
    result.update(contender=contender, kind=kind, requested=n)
    print(f"  {result}", file=sys.stderr, flush=True)
    shutil.rmtree(out, ignore_errors=True)
    return result


def table(results: list[dict[str, Any]]) -> str:
    rows = ["| workload | contender | N | calls/s | s to first result | total s | sbatch | "
            "squeue | sacct | scancel | sinfo+scontrol |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        c = r["commands"]
        if "error" in r:
            rows.append(f"| {r['kind']} | {r['contender']} | {r['requested']:,} | failed: "
                        f"{r['error']} | | | {c['sbatch']} | {c['squeue']} | {c['sacct']} | "
                        f"{c['scancel']} | {c['sinfo'] + c['scontrol']} |")
            continue
        rate = r["n"] / r["seconds"]
        rows.append(f"| {r['kind']} | {r['contender']} | {r['n']:,} | {rate:,.1f} | "
                    f"{r['first']:.1f} | {r['seconds']:.1f} | {c['sbatch']} | {c['squeue']} | "
                    f"{c['sacct']} | {c['scancel']} | {c['sinfo'] + c['scontrol']} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="trivial calls")
    parser.add_argument("--slow-n", type=int, default=200, help="calls of 1 s")
    parser.add_argument("--submitit-n", type=int, default=500,
                        help="trivial calls for submitit (one job per call)")
    parser.add_argument("--submitit-path", default="/tmp/arr/submitit-site",
                        help="a directory with submitit (pip install --target)")
    parser.add_argument("--skip", default="", help="contenders to leave out, comma-separated")
    parser.add_argument("--json", help="also save the raw figures here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--kind", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        args.contender = args.child
        child(args)
        return
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    scratch = Path(tempfile.mkdtemp(prefix="bench-arrays-", dir=Path.cwd()))
    shims = make_shims(scratch / "shims")
    plan = [(c, "trivial", args.n) for c in CONTENDERS]
    plan.insert(2, ("submitit", "trivial", args.n))  # more than MaxArraySize: does it work?
    plan[3] = ("submitit", "trivial", args.submitit_n)
    plan += [(c, "1 s", args.slow_n) for c in CONTENDERS]
    results = [measure(c, k, n, scratch, shims, args.submitit_path)
               for c, k, n in plan if c not in skip]
    shutil.rmtree(scratch, ignore_errors=True)
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
