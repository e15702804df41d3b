"""Atomic file writing: a result is complete under its final name or absent."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


def temporary_name(final: str | os.PathLike[str]) -> Path:
    """A unique temporary name in the same directory as ``final`` (same file system)."""
    return Path(temporary_str(os.fspath(final)))


def temporary_str(final: str) -> str:
    """:func:`temporary_name` as a plain string (cheap enough for every call's file)."""
    head, name = os.path.split(final)
    return os.path.join(head, f".{name}.{os.urandom(6).hex()}.partial")


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path; on success rename it to ``final``, else delete it.

    The rename is ``os.replace``: atomic on POSIX within one file system, and it
    replaces an earlier complete result (a retried call) in one step.
    """
    tmp = temporary_name(final)
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_bytes_atomic(final: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``final`` atomically (fsync'd before the rename)."""
    with atomic_path(final) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def is_partial(name: str) -> bool:
    """Whether a directory entry is an unfinished temporary file."""
    return name.startswith(".") and name.endswith(".partial")


def remove_partials(directory: str | os.PathLike[str]) -> int:
    """Delete unfinished temporary files left in ``directory`` by workers that died.

    Call only after every call settled (no writer is still at work). Returns how
    many were removed.
    """
    removed = 0
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(directory):
            if is_partial(entry.name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed += 1
    return removed
