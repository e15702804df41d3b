"""What the stores' readers trust in a run directory, and how they check the rest.

The rules are :mod:`acme_core.run_directory`'s, applied to the stores' files:

* a reader checks the manifest it is given (:func:`listed`): ``func_name`` a plain
  file-name stem, ``n_calls`` within :data:`acme_core.manifest.MAX_CALLS`, task ids
  in range; it then derives every name itself (:mod:`acme_storage._layout`) and
  opens it only through :func:`inside`, which refuses symbolic links and escapes;
* a call's value is read only when the manifest lists the call as finished, and
  a pickle is unpickled only when the manifest lists it in ``pickled``;
* ``existing()`` (what ``resume`` adopts) reports a file only after it opened
  (:func:`whole_pickle`, and the HDF5 stores' ``opens``): an empty or truncated file, what
  a node crash can leave, is not a result;
* a fresh run refuses a directory holding result files of its function that no
  manifest lists (:func:`refuse_leftovers`): they belong to another run.

Nothing here imports h5py or zarr.
"""

from __future__ import annotations

import os
import pickletools
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

from acme_core.errors import ArgumentValueError
from acme_core.manifest import check_manifest, from_ranges
from acme_core.run_directory import confined
from acme_storage._layout import task_id_of

__all__ = ["Listed", "inside", "listed", "refuse_leftovers", "whole_pickle"]


class Listed(NamedTuple):
    """What a checked manifest says about a run."""

    func_name: str
    n_calls: int
    #: calls recorded as finished
    finished: set[int]
    #: finished calls whose result is a pickle
    pickled: set[int]


def listed(run_dir: Path, manifest: dict[str, Any]) -> Listed:
    """The checked manifest's names and task ids (a ``ManifestError`` if it cannot be trusted)."""
    check_manifest(manifest, Path(run_dir) / "acme_manifest.json")
    finished = set(from_ranges(manifest.get("finished", [])))
    pickled = set(from_ranges(manifest.get("pickled", []))) & finished
    return Listed(str(manifest["func_name"]), int(manifest["n_calls"]), finished, pickled)


def inside(run_dir: Path, *parts: str) -> Path | None:
    """``run_dir/parts...`` when it exists; None when it does not.

    Raises
    ------
    acme_core.errors.RunDirectoryError
        The name (or a directory on its way) is a symbolic link, or leaves ``run_dir``.
    """
    path = confined(run_dir, Path(*parts))
    return path if os.path.lexists(path) else None


def whole_pickle(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` holds one complete pickle, checked without unpickling it.

    :func:`pickletools.genops` walks the opcodes (creating no object, running no
    code) and fails on a truncated stream; the last opcode must be ``STOP``.
    """
    try:
        with open(path, "rb") as fh:
            last = None
            for opcode, _arg, _pos in pickletools.genops(fh):
                last = opcode
    except (OSError, ValueError, EOFError):
        return False
    return last is not None and last.name == "STOP"


def refuse_leftovers(out: Path | None, names: Iterable[str], func_name: str,
                     suffixes: Iterable[str]) -> None:
    """Refuse a fresh run in ``out`` when it holds this function's result files.

    ``names`` are the store's containers and directories (``<fn>.h5``,
    ``<fn>_payload``, ...); ``suffixes`` those of per-call files ``<fn>_<i><suffix>``
    directly in ``out``. Without a manifest nobody can tell which run they belong
    to, so a new run neither adopts nor deletes them.

    Raises
    ------
    acme_core.errors.ArgumentValueError
        ``parameter="output_dir"``, naming one of the files.
    """
    if out is None or not out.is_dir():
        return
    # an empty directory holds nothing of another run
    found = [name for name in names if os.path.lexists(out / name)
             and not ((out / name).is_dir() and not os.listdir(out / name))]
    if not found:
        suffixes = tuple(suffixes)
        for entry in os.scandir(out):
            if any(task_id_of(entry.name, func_name, s) is not None for s in suffixes):
                found.append(entry.name)
                break
    if found:
        raise ArgumentValueError(
            f"`output_dir` {out} holds result files of `{func_name}` that no run manifest "
            f"lists ({found[0]}): they belong to another run. Give a new output_dir, or remove "
            "them (acme-core neither adopts nor deletes them)", parameter="output_dir")

