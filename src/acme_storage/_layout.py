"""Every name ACME's layout fixes: files of a run directory, groups and datasets in containers.

::

    <out>/<fn>.h5 | <fn>.zarr          the container            (:func:`container`)
    <out>/<fn>_payload/<fn>_<i>.h5     "hdf5": a call's file    (:func:`payload_dir`, :func:`call_file`)
    <out>/<fn>_staging/<fn>_<i>.h5     "hdf5-single": staged    (:func:`staging_dir`)
    <out>/<fn>_<i>.pickle              pickles (and emergency pickles)
    comp_<i>/result_<k>                a call's group and its return values (:func:`comp_name`,
                                       :func:`result_name`), in HDF5 and zarr alike

Readers and writers of every store take their names from here, so a name is
spelt once; ``open_results`` on an ACME run directory depends on them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from acme_core.fileio import final_name_of

__all__ = [
    "call_file",
    "call_name",
    "comp_name",
    "container",
    "is_call_temporary",
    "natural_key",
    "payload_dir",
    "result_keys",
    "result_name",
    "staging_dir",
    "task_id_of",
]

#: prefix of the datasets (arrays) holding a call's return values
RESULT_PREFIX = "result_"


def payload_dir(out: Path, func_name: str) -> Path:
    """``<out>/<fn>_payload``: the ``"hdf5"`` store's per-call files."""
    return out / f"{func_name}_payload"


def staging_dir(out: Path, func_name: str) -> Path:
    """``<out>/<fn>_staging``: where ``"hdf5-single"`` workers stage calls before the merge."""
    return out / f"{func_name}_staging"


def container(out: Path, func_name: str, suffix: str = ".h5") -> Path:
    """``<out>/<fn><suffix>``: the run's aggregate container."""
    return out / f"{func_name}{suffix}"


def call_name(func_name: str, task_id: int, suffix: str) -> str:
    """``<fn>_<i><suffix>``; the suffix is appended, never stripped by characters."""
    return f"{func_name}_{task_id}{suffix}"


def call_file(directory: Path, func_name: str, task_id: int, suffix: str) -> Path:
    """``<dir>/<fn>_<i><suffix>`` (see :func:`call_name`)."""
    return directory / call_name(func_name, task_id, suffix)


def task_id_of(name: str, func_name: str, suffix: str) -> int | None:
    """Inverse of :func:`call_file` for a bare file name (None if it is not one)."""
    match = re.fullmatch(re.escape(func_name) + r"_(\d+)" + re.escape(suffix), name)
    return int(match.group(1)) if match else None


def is_call_temporary(name: str, func_name: str, suffix: str) -> bool:
    """Whether ``name`` is the temporary of a call's file ``<fn>_<i><suffix>``
    (:func:`acme_core.fileio.temporary_name`), e.g. one a killed worker left."""
    final = final_name_of(name)
    return final is not None and task_id_of(final, func_name, suffix) is not None


def comp_name(task_id: int) -> str:
    """``comp_<i>``: call ``i``'s group in a container."""
    return f"comp_{task_id}"


def result_name(k: int) -> str:
    """``result_<k>``: a call's ``k``-th return value (dataset or array)."""
    return f"{RESULT_PREFIX}{k}"


def result_keys(names: Iterable[str], extras_only: bool = False) -> list[str]:
    """The ``result_<k>`` among ``names`` in return order (``result_2`` before ``result_10``).

    With ``extras_only``, without ``result_0`` (the stacked value's slot).
    """
    first = result_name(0)
    keys = (n for n in names if n.startswith(RESULT_PREFIX) and not (extras_only and n == first))
    return sorted(keys, key=natural_key)


def natural_key(text: str) -> list[object]:
    """Sort key that puts ``comp_2`` before ``comp_10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]
