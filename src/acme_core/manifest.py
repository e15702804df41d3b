"""The run manifest: a small JSON file that ``resume`` and ``open_results`` trust.

A call is recorded as finished only after its result was renamed into place, so
the manifest never claims more than is on disk. It is rewritten atomically
(temporary name, then rename), so a crash leaves the previous version intact.

Task ids are stored as sorted ``[first, last]`` ranges to stay small for runs of
millions of calls.

What a reader trusts (see :mod:`acme_core.run_directory`): :meth:`Manifest.load`
checks a manifest before anything is derived from it: ``func_name`` is a plain
file-name stem, ``n_calls`` an integer up to :data:`MAX_CALLS`, and every task id
it lists lies in ``range(n_calls)``. ``pickled`` lists the finished calls whose
result is a pickle (an emergency pickle of the ``"hdf5"`` and ``"zarr"`` stores):
readers unpickle nothing else.
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
from acme_core.run_directory import check_name

MANIFEST_NAME = "acme_manifest.json"
FORMAT_VERSION = 1
#: the most calls a run may have: a manifest claiming more is refused before a reader
#: builds anything per call (a list of 10**8 entries already takes 800 MB)
MAX_CALLS = 10 ** 8


def is_pickle_reference(reference: Any) -> bool:
    """Whether a call's reference names a pickle file (what ``pickled`` records)."""
    return isinstance(reference, str) and reference.endswith(".pickle")


def _checked_ranges(data: dict[str, Any], key: str, n_calls: int, path: Path) -> list[Any]:
    ranges: Any = data.get(key, [])
    ok = isinstance(ranges, list) and all(
        isinstance(r, list) and len(r) == 2 and all(type(v) is int for v in r)
        and 0 <= r[0] <= r[1] < n_calls for r in ranges)
    if not ok:
        raise ManifestError(f"{path}: `{key}` is not a list of [first, last] task id ranges "
                            f"within the run's {n_calls} calls")
    return list(ranges)


def check_manifest(data: Any, path: Path) -> None:
    """Refuse a manifest that a reader must not derive names or sizes from.

    Raises
    ------
    ManifestError
        Not a JSON object with ``n_calls``; ``func_name`` not a plain file name;
        ``n_calls`` not an integer in ``[0, MAX_CALLS]``; task ids out of range.
    """
    if not isinstance(data, dict) or "n_calls" not in data:
        raise ManifestError(f"{path} is not an acme-core manifest")
    n_calls = data["n_calls"]
    if type(n_calls) is not int or not 0 <= n_calls <= MAX_CALLS:
        raise ManifestError(f"{path}: n_calls={n_calls!r} is not a number of calls between 0 "
                            f"and the limit of {MAX_CALLS:,} (acme_core.manifest.MAX_CALLS)")
    check_name(data.get("func_name"))
    for key in ("finished", "pickled"):
        _checked_ranges(data, key, n_calls, path)


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
        #: finished calls whose result is a pickle (the only ones readers unpickle)
        self.pickled: set[int] = set(from_ranges(data.get("pickled", [])))

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
        check_manifest(data, path)
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

    def mark_finished_many(self, task_ids: Iterable[int],
                           references: Iterable[Any] | None = None) -> None:
        """:meth:`mark_finished` for a batch (one chunk's calls).

        With ``references`` (one per id), the calls whose reference is a pickle
        file are recorded in :attr:`pickled`, the others taken out of it.
        """
        task_ids = task_ids if isinstance(task_ids, (list, set)) else list(task_ids)
        self.finished.update(task_ids)
        if self.failed:
            for i in task_ids:
                self.failed.pop(i, None)
        if references is not None:
            for i, reference in zip(task_ids, references, strict=True):
                if is_pickle_reference(reference):
                    self.pickled.add(i)
                else:
                    self.pickled.discard(i)

    def mark_failed(self, task_id: int, error: str) -> None:
        self.failed[task_id] = error

    def missing(self) -> list[int]:
        return [i for i in range(int(self.data["n_calls"])) if i not in self.finished]

    def save(self, complete: bool | None = None) -> None:
        if complete is not None:
            self.data["complete"] = complete
        self.data["updated"] = datetime.now().isoformat(timespec="seconds")
        self.data["finished"] = to_ranges(self.finished)
        self.data["pickled"] = to_ranges(self.pickled & self.finished)
        # Error texts are capped so a run of many failures keeps a small manifest.
        self.data["failed"] = {str(k): v[-2000:] for k, v in sorted(self.failed.items())}
        write_bytes_atomic(self.path, json.dumps(self.data, indent=1).encode())
