"""Helpers shared by ``bench_calls.py`` and ``bench_payload.py``.

Only the standard library, numpy, h5py and distributed are imported here, so the
scripts also run under an interpreter that has esi-acme but not acme-core (the
esi-acme part of a benchmark runs in such a subprocess).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
#: the venv that has esi-acme (see README.md); override with --acme-python
DEFAULT_ACME_PYTHON = "/work/venv-acme/bin/python"


def log(*args: Any) -> None:
    """Progress messages go to stderr; stdout carries the tables (or the JSON line)."""
    print(*args, file=sys.stderr, flush=True)


def start_cluster(n_workers: int = 2) -> Any:
    """A plain 2-worker ``LocalCluster`` (one thread each), as ACME's baseline used."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                           memory_limit=None, dashboard_address="127.0.0.1:0", host="127.0.0.1")
    client = Client(cluster)
    client.wait_for_workers(n_workers)
    return client


def stop_cluster(client: Any) -> None:
    cluster = client.cluster
    with contextlib.suppress(Exception):
        client.close()
    with contextlib.suppress(Exception):
        cluster.close()


@contextlib.contextmanager
def scratch(prefix: str = "acme-bench-") -> Iterator[Path]:
    """A fresh directory, removed afterwards (outside every timed region)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def peak_rss_mib() -> float:
    """This process's peak resident set size, MiB.

    ``VmHWM`` from ``/proc/self/status`` where it exists: on Linux ``ru_maxrss``
    survives ``exec`` and would report the parent's peak in a fresh subprocess.
    """
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> str:
    """One line describing where the figures come from."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kib / 1024**2:.0f} GiB RAM"
    one, five, fifteen = os.getloadavg()
    load = f", load average at start {one:.1f}/{five:.1f}/{fifteen:.1f}"
    return (f"{os.cpu_count()} CPUs ({cpu}){mem}, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}{load}")


def versions(*modules: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in modules:
        with contextlib.suppress(PackageNotFoundError):
            out.append(f"{name} {version(name)}")
    return ", ".join(out)


def noslurm_path() -> str:
    """A PATH whose first entry has a ``sinfo`` that prints nothing.

    esi-acme treats "``sinfo`` prints something" as "this is a SLURM node" and
    then refuses to run outside ESI's cluster (see research/perf-baseline.md);
    the shim lets it run locally, as on a machine without SLURM tools.
    """
    shim = Path(tempfile.gettempdir()) / "acme-bench-noslurm"
    shim.mkdir(exist_ok=True)
    sinfo = shim / "sinfo"
    if not sinfo.exists():
        sinfo.write_text("#!/bin/sh\nexit 0\n")
        sinfo.chmod(0o755)
    return f"{shim}{os.pathsep}{os.environ.get('PATH', '')}"


def acme_available(python: str) -> bool:
    if not python or not shutil.which(python) and not os.path.exists(python):
        return False
    probe = subprocess.run([python, "-c", "import acme, distributed"], capture_output=True,
                           env={**os.environ, "PATH": noslurm_path()})
    return probe.returncode == 0


def run_json(python: str, script: Path, args: list[str], timeout: float = 1800,
             env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``script`` with ``python`` and return the JSON object on its last stdout line."""
    proc = subprocess.run([python, str(script), *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, cwd=HERE)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = "\n".join(proc.stderr.splitlines()[-15:])
        raise RuntimeError(f"{script.name} {' '.join(args)} failed ({proc.returncode}):\n{tail}")
    return dict(json.loads(lines[-1]))


def fmt_rate(n: int, seconds: float | None) -> str:
    if seconds is None or seconds != seconds:  # None or NaN
        return "-"
    rate = n / seconds if seconds > 0 else float("inf")
    return f"{rate:,.0f}/s ({seconds:.3g} s)"
