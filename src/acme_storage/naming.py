"""File names of a run directory (ACME's layout)."""

from __future__ import annotations

import re
from pathlib import Path

from acme_core.fileio import final_name_of


def payload_dir(out: Path, func_name: str) -> Path:
    return out / f"{func_name}_payload"


def container(out: Path, func_name: str, suffix: str = ".h5") -> Path:
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


def natural_key(text: str) -> list[object]:
    """Sort key that puts ``comp_2`` before ``comp_10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]
