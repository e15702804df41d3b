"""File names of a run directory (ACME's layout)."""

from __future__ import annotations

import re
from pathlib import Path


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


def natural_key(text: str) -> list[object]:
    """Sort key that puts ``comp_2`` before ``comp_10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]
