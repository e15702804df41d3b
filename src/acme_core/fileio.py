"""Atomic file writing: a result is complete under its final name or absent."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any


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


def fsync_path(path: str | os.PathLike[str]) -> None:
    """Flush a closed file's data to the disk (before it is renamed into place)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_new_file(path: str, segments: Sequence[Any], fsync: bool = False) -> None:
    """Create ``path`` (which must not exist) holding the concatenation of ``segments``.

    ``segments`` are bytes-like (bytes, memoryviews of arrays): written with
    ``writev`` as they are, without joining them into one copy first. With
    ``fsync`` the data reach the disk before the file is closed.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        todo = [memoryview(s).cast("B") for s in segments if len(s)]
        while todo:
            written = os.writev(fd, todo[:1024])
            while todo and written >= len(todo[0]):  # drop what went out, keep the rest
                written -= len(todo[0])
                todo.pop(0)
            if written:
                todo[0] = todo[0][written:]
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def write_segments_atomic(final: str, segments: Sequence[Any],
                          check: Callable[[str], bool] | None = None,
                          fsync: bool = False) -> bool:
    """Write ``segments`` to ``final`` atomically (temporary name, then rename).

    With ``check``, the complete temporary file is renamed into place only if
    ``check(path)`` is true; else it is removed and False returned. fsync'ed
    before the rename only with ``fsync`` (the HDF5 and zarr libraries' own
    writes are not).
    """
    tmp = temporary_str(final)
    try:
        write_new_file(tmp, segments, fsync)
        if check is not None and not check(tmp):
            os.unlink(tmp)
            return False
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return True


def is_partial(name: str) -> bool:
    """Whether a directory entry is an unfinished temporary file."""
    return name.startswith(".") and name.endswith(".partial")


def final_name_of(name: str) -> str | None:
    """The name a temporary (``.<name>.<hex>.partial``) stands for; None if it is not one."""
    if not is_partial(name):
        return None
    return name[1:].rsplit(".", 2)[0]


def remove_partials(directory: str | os.PathLike[str],
                    match: Callable[[str], bool] = is_partial) -> int:
    """Delete unfinished temporary files and directories left in ``directory``.

    A worker that died between creating its temporary file (or a directory
    store's temporary group) and renaming it leaves it behind. ``match`` tells
    temporary names (default: :func:`is_partial`). Call only after every call
    settled (no writer is still at work). Returns how many were removed.
    """
    removed = 0
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(directory):
            if not match(entry.name):
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
                removed += not os.path.lexists(entry.path)
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed += 1
    return removed
