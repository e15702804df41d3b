"""What a run directory may hold, who owns it, and what a reader may trust in it.

Anybody with write access to a run directory (a shared project folder on a
cluster) may have edited it. The rules, for the core and for every store:

* **Names are derived, not read.** Files are named from the manifest's
  ``func_name`` and task ids only; :func:`check_name` refuses a ``func_name`` that
  is not a plain file-name stem (no ``/``, no ``..``, no leading dot), and
  :func:`file_stem` makes such a stem out of any function's ``__name__``.
* **Nothing outside is opened.** :func:`confined` resolves a name inside the run
  directory and refuses it when it, or a directory on the way, is a symbolic
  link, or when it would end up outside.
* **One run at a time.** A run holds :class:`RunLock` (``.acme_lock``: its host,
  pid and an owner id unique to the ParallelMap) from its construction until it finished; a second run in the
  same directory is refused naming the owner; a lock whose process is gone (same
  host) or that was not refreshed for :data:`STALE_AFTER` seconds (another host;
  the holder refreshes it every :data:`HEARTBEAT` seconds) is stale and taken over.
* **Only what the manifest lists counts** (the readers' and ``resume``'s rule; the
  stores apply it).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acme_core.errors import ManifestError, RunDirectoryError

__all__ = ["HEARTBEAT", "LOCK_NAME", "STALE_AFTER", "LockInfo", "RunLock", "RunLockedError", "check_name",
           "confined", "file_stem"]

log = logging.getLogger("acme")

LOCK_NAME = ".acme_lock"
#: seconds after which another host's lock that was not refreshed counts as stale
STALE_AFTER = 5 * 60
#: seconds between two refreshes of a held lock, by a thread of its holder (so a holder
#: that sits idle, e.g. a notebook between cells, is not taken for gone)
HEARTBEAT = 30.0
#: a file-name stem: letters, digits, ``_``, ``.``, ``-``; not starting with a dot
_STEM = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def file_stem(name: str) -> str:
    """A safe file-name stem for a function named ``name``.

    ``"<lambda>"`` becomes ``"lambda"``; any other character that is not a letter,
    digit, ``_``, ``.`` or ``-`` becomes ``_``, and leading dots go, so no
    ``__name__`` can make a path leave the run directory or hide a file.
    """
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", name.strip("<>")).lstrip(".")
    return stem or "func"


def check_name(name: object, what: str = "func_name") -> str:
    """``name`` if it is a plain file-name stem, else a :class:`ManifestError`."""
    if not isinstance(name, str) or not _STEM.fullmatch(name) or len(name) > 200:
        raise ManifestError(f"the manifest's {what} {name!r} is not a plain file name; "
                            "refusing to derive file names from it")
    return name


def confined(run_dir: str | os.PathLike[str], relative: str | os.PathLike[str]) -> Path:
    """``run_dir / relative``, refused when it leaves ``run_dir`` or passes a symlink.

    Raises
    ------
    RunDirectoryError
        ``relative`` is absolute, climbs out (``..``), or one of its components
        inside the run directory is a symbolic link.
    """
    base = Path(run_dir)
    rel = Path(relative)
    if rel.is_absolute() or ".." in rel.parts:
        raise RunDirectoryError(f"{relative!s} is not a name inside the run directory {base}")
    path = base
    for part in rel.parts:
        path = path / part
        if path.is_symlink():
            raise RunDirectoryError(f"{path} is a symbolic link; a run directory's files are "
                                    "read only when they are its own")
    return path


@dataclass(frozen=True)
class LockInfo:
    """Who holds a run directory."""

    host: str
    pid: int
    #: unique to the ParallelMap object holding the lock
    owner: str
    since: str
    #: seconds since the owner last refreshed the lock
    age: float

    def describe(self) -> str:
        return (f"a run of process {self.pid} on host {self.host} (since {self.since}, last "
                f"seen {self.age:.0f} s ago)")


class RunLockedError(RunDirectoryError):
    """Another run owns the run directory (the message names it)."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # somebody else's process: it exists
        return True
    return True


class RunLock:
    """The lock of one run directory, held by one run (see the module docstring)."""

    def __init__(self, run_dir: str | os.PathLike[str], owner: str) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self.owner = owner
        self.held = False
        self._beating: threading.Event | None = None

    def read(self) -> LockInfo | None:
        """The current owner, or None when the directory is not locked (or unreadable)."""
        try:
            with open(self.path, encoding="utf-8") as fh:
                data: Any = json.load(fh)
            age = time.time() - self.path.stat().st_mtime
            return LockInfo(str(data["host"]), int(data["pid"]), str(data["owner"]),
                            str(data.get("since", "?")), age)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def stale(self, info: LockInfo) -> bool:
        """Whether the owner is gone: its process died (this host), or it fell silent."""
        if info.host == socket.gethostname():
            return not _pid_alive(info.pid)
        return info.age > STALE_AFTER

    def acquire(self) -> None:
        """Take the lock, or raise :class:`RunLockedError` naming the owner."""
        for _ in range(3):  # a stale lock removed by a rival at the same time: try again
            if self._create():
                self._hold()
                return
            info = self.read()
            if info is None:
                continue  # gone (or half written) meanwhile
            if info.owner == self.owner:
                self._hold()
                return
            if not self.stale(info):
                raise RunLockedError(
                    f"{self.path.parent} is in use by {info.describe()}. Wait for that run, "
                    f"or if it is gone for good, remove {self.path}")
            log.warning("Taking over the run directory %s from %s, which is gone",
                        self.path.parent, info.describe())
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        raise RunLockedError(f"could not take the lock {self.path}: other runs keep taking it")

    def _hold(self) -> None:
        """Mark the lock held and refresh it every :data:`HEARTBEAT` seconds until released."""
        self.held = True
        if self._beating is None:
            self._beating = stop = threading.Event()
            threading.Thread(target=self._beat, args=(stop,), name="acme-run-lock",
                             daemon=True).start()

    def _beat(self, stop: threading.Event) -> None:
        while not stop.wait(HEARTBEAT) and self.held:
            self.refresh()

    def _create(self) -> bool:
        data = {"host": socket.gethostname(), "pid": os.getpid(), "owner": self.owner,
                "since": time.strftime("%Y-%m-%dT%H:%M:%S")}
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
        return True

    def owned(self) -> bool:
        """Whether this run still holds the lock (nobody took it over meanwhile)."""
        info = self.read()
        return self.held and info is not None and info.owner == self.owner

    def refresh(self) -> None:
        """Say that this run is alive (the lock's time stamp is what others check)."""
        if self.held:
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def release(self) -> None:
        """Give the directory free (only a lock that is still ours is removed)."""
        beating, self._beating = self._beating, None
        if beating is not None:
            beating.set()
        if not self.owned():
            self.held = False
            return
        self.held = False
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
