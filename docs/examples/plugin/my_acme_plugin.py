"""An example acme-core plugin: a thread-pool backend and a store of NumPy ``.npy`` files.

Installed with the entry point ``[project.entry-points.acme] my = "my_acme_plugin"``, it makes
``ParallelMap(..., backend="threads", store="npy")`` work. The plugin guide shows this file.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
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


@hookimpl
def acme_register_stores(register):
    register(NpyStore)
