"""The run manifest: a small JSON file that ``resume`` and ``open_results`` trust.

A call is recorded as finished only after its result was renamed into place, so
the manifest never claims more than is on disk. It is rewritten atomically
(temporary name, then rename), so a crash leaves the previous version intact.

Task ids are stored as sorted ``[first, last]`` ranges to stay small for runs of
millions of calls.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from acme_core.errors import ManifestError
from acme_core.fileio import write_bytes_atomic

MANIFEST_NAME = "acme_manifest.json"
FORMAT_VERSION = 1


def to_ranges(ids: Iterable[int]) -> list[list[int]]:
    """``[0, 1, 2, 5]`` -> ``[[0, 2], [5, 5]]``."""
    unique = ids if isinstance(ids, (set, frozenset)) else set(ids)
    if len(unique) > 1000:  # the manifest is saved every few seconds: keep it cheap
        import numpy as np

        values = np.fromiter(unique, dtype=np.int64, count=len(unique))
        values.sort()
        breaks = np.flatnonzero(np.diff(values) != 1)
        firsts = np.concatenate(([values[0]], values[breaks + 1]))
        lasts = np.concatenate((values[breaks], [values[-1]]))
        return [[int(a), int(b)] for a, b in zip(firsts, lasts, strict=True)]
    ranges: list[list[int]] = []
    for i in sorted(unique):
        if ranges and ranges[-1][1] == i - 1:
            ranges[-1][1] = i
        else:
            ranges.append([i, i])
    return ranges


def from_ranges(ranges: Iterable[Iterable[int]]) -> list[int]:
    out: list[int] = []
    for first, last in ranges:
        out.extend(range(int(first), int(last) + 1))
    return out


class Manifest:
    """In-memory view of a run's manifest; :meth:`save` writes it atomically."""

    def __init__(self, run_dir: str | os.PathLike[str], data: dict[str, Any]) -> None:
        self.run_dir = Path(run_dir)
        self.data = data
        self.finished: set[int] = set(from_ranges(data.get("finished", [])))
        self.failed: dict[int, str] = {int(k): v for k, v in data.get("failed", {}).items()}

    @property
    def path(self) -> Path:
        return self.run_dir / MANIFEST_NAME

    @classmethod
    def new(cls, run_dir: str | os.PathLike[str], *, func_name: str, n_calls: int, store: str,
            **extra: Any) -> Manifest:
        from acme_core._version import __version__

        now = datetime.now().isoformat(timespec="seconds")
        data = {"format": FORMAT_VERSION, "acme_core": __version__, "func_name": func_name,
                "n_calls": n_calls, "store": store, "created": now, "updated": now,
                "complete": False, **extra}
        return cls(run_dir, data)

    @classmethod
    def load(cls, run_dir: str | os.PathLike[str]) -> Manifest:
        path = Path(run_dir) / MANIFEST_NAME
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        if not isinstance(data, dict) or "n_calls" not in data:
            raise ManifestError(f"{path} is not an acme-core manifest")
        return cls(run_dir, data)

    @staticmethod
    def exists(run_dir: str | os.PathLike[str]) -> bool:
        return (Path(run_dir) / MANIFEST_NAME).is_file()

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def mark_finished(self, task_id: int) -> None:
        self.finished.add(task_id)
        self.failed.pop(task_id, None)

    def mark_finished_many(self, task_ids: Iterable[int]) -> None:
        """:meth:`mark_finished` for a batch (one chunk's calls)."""
        task_ids = task_ids if isinstance(task_ids, (list, set)) else list(task_ids)
        self.finished.update(task_ids)
        if self.failed:
            for i in task_ids:
                self.failed.pop(i, None)

    def mark_failed(self, task_id: int, error: str) -> None:
        self.failed[task_id] = error

    def missing(self) -> list[int]:
        return [i for i in range(int(self.data["n_calls"])) if i not in self.finished]

    def save(self, complete: bool | None = None) -> None:
        if complete is not None:
            self.data["complete"] = complete
        self.data["updated"] = datetime.now().isoformat(timespec="seconds")
        self.data["finished"] = to_ranges(self.finished)
        # Error texts are capped so a run of many failures keeps a small manifest.
        self.data["failed"] = {str(k): v[-2000:] for k, v in sorted(self.failed.items())}
        write_bytes_atomic(self.path, json.dumps(self.data, indent=1).encode())
