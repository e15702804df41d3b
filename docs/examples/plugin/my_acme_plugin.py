"""An example acme-core plugin: two backends and a store of NumPy ``.npy`` files.

Installed with the entry point ``[project.entry-points.acme] my = "my_acme_plugin"``, it makes
``ParallelMap(..., backend="threads" or "processes", store="npy")`` work. The plugin guide and
the architecture page show this file; it uses nothing but the documented contract.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from acme_core import hookimpl
from acme_core.fileio import atomic_path
from acme_core.store import BaseStore, RunInfo


# ---------------------------------------------------------------- a backend
class Threads(ThreadPoolExecutor):
    """Run the calls in threads of the calling process (for I/O-bound functions)."""

    name = "threads"

    def __init__(self, n_workers: int | str = "auto") -> None:
        # ParallelMap passes ACME's n_workers because this signature names it
        super().__init__(max_workers=None if n_workers == "auto" else int(n_workers))

    def worker_count(self) -> int:  # optional: used for logging and chunk sizes
        return self._max_workers


class Processes(ProcessPoolExecutor):
    """Run the calls in worker processes on this machine, with no dask at all.

    The required part of the contract comes from :class:`ProcessPoolExecutor`
    (``submit`` and ``shutdown``); the rest are the optional capabilities of
    :mod:`acme_core.executor`, each a plain method or attribute.
    """

    name: ClassVar[str] = "processes"
    description: ClassVar[str] = "a process pool on this machine (concurrent.futures)"
    #: its workers are spawned: they re-import the user's script, which needs the guard
    starts_local_processes: ClassVar[bool] = True
    #: it started its processes itself: ParallelMap shuts it down after the run
    owns_resources = True

    def __init__(self, n_workers: int | str = "auto") -> None:
        self.workers = (os.cpu_count() or 1) if n_workers == "auto" else int(n_workers)
        super().__init__(max_workers=self.workers,
                         mp_context=multiprocessing.get_context("spawn"))

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        """ChecksOptions: refuse bad options before anything starts."""
        n = options.get("n_workers", "auto")
        if n != "auto" and not (isinstance(n, int) and not isinstance(n, bool) and n >= 1):
            raise ValueError(f"`n_workers` has to be 'auto' or an integer >= 1, not {n!r}")

    @classmethod
    def planned_workers(cls, options: Mapping[str, Any]) -> int | None:
        """PlansWorkers: what the dry run's estimate divides by."""
        n = options.get("n_workers", "auto")
        return os.cpu_count() if n == "auto" else int(n)

    def worker_count(self) -> int:
        """ReportsWorkers: sizes the chunks of calls and the submission window."""
        return self.workers

    def wait_for_workers(self, n: int, timeout: float) -> None:
        """ReportsWorkers: the pool starts its processes on demand, so none to wait for."""

    def lost_worker(self, exc: BaseException) -> bool:
        """DetectsLostWorkers: a dead process is not the call's fault; its calls run again."""
        return isinstance(exc, BrokenProcessPool)


# ---------------------------------------------------------------- a store
class NpyWriter:
    """The worker side: small and picklable, writes one call's result."""

    def __init__(self, directory: str, func_name: str) -> None:
        self.directory = directory
        self.func_name = func_name

    def write(self, task_id: int, value: Any) -> str:
        final = Path(self.directory) / f"{self.func_name}_{task_id}.npy"
        with atomic_path(final) as tmp, open(tmp, "wb") as fh:  # complete or absent
            np.save(fh, np.asarray(value))
        return str(final)


class NpyStore(BaseStore):
    """One ``<out>/<fn>_<i>.npy`` per call."""

    name: ClassVar[str] = "npy"

    def prepare(self, run: RunInfo) -> None:
        super().prepare(run)
        self.out.mkdir(parents=True, exist_ok=True)

    def writer(self) -> NpyWriter:
        assert self.run is not None
        return NpyWriter(str(self.out), self.run.func_name)

    def existing(self) -> dict[int, Any]:  # for resume: what is complete on disk
        assert self.run is not None
        found = {}
        for i in range(self.run.n_calls):
            path = self.out / f"{self.run.func_name}_{i}.npy"
            if path.exists():
                found[i] = str(path)
        return found

    @classmethod
    def read(cls, run_dir: Path, manifest: dict[str, Any]) -> list[Any]:
        fn, n = manifest["func_name"], int(manifest["n_calls"])
        paths = [Path(run_dir) / f"{fn}_{i}.npy" for i in range(n)]
        return [np.load(p) if p.exists() else None for p in paths]


# ---------------------------------------------------------------- the hooks
@hookimpl
def acme_register_executors(register):
    register(Threads)
    register(Processes)


@hookimpl
def acme_register_stores(register):
    register(NpyStore)
