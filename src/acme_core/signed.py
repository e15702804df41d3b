"""Files that batch jobs unpickle, authenticated with a per-run secret key.

A detached run's elements (:mod:`acme_core.element`) unpickle the function and
the arguments from files in the run directory, which may sit on a shared file
system that others can write. Unpickling is running code, so every such file is
**authenticated**: HMAC-SHA256 over its role (its name inside the run
directory, so one signed file cannot stand in for another), then its bytes, with
a key only the run's owner can read. A file that does not verify is refused
(:class:`~acme_core.errors.TamperedFileError`) before anything of it is unpickled.

Where the key lives, and why: in ``~/.acme/run-keys/<run_id>.key`` (directory
mode 0700, file 0600, refused when readable by others or owned by someone else;
``ACME_KEY_DIR`` moves it). Not in the run directory, where an attacker could
read it; not only in the jobs' environment, because a later process (``acme
wait`` after the driver died) has to sign the chunk files of calls it resubmits.
The home directory is the one place every cluster we know shares between the
login and the compute nodes and keeps private to its user.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from acme_core.errors import RunDirectoryError, TamperedFileError
from acme_core.fileio import write_bytes_atomic
from acme_core.run_directory import check_name, confined

__all__ = ["KEY_DIR_ENV", "TAG_BYTES", "RunKey", "key_dir"]

#: environment variable naming the key directory (default ``~/.acme/run-keys``)
KEY_DIR_ENV = "ACME_KEY_DIR"
#: length of the HMAC-SHA256 tag in front of every signed file
TAG_BYTES = 32


def key_dir() -> Path:
    """The directory of the run keys (created with mode 0700 when missing)."""
    configured = os.environ.get(KEY_DIR_ENV)
    path = Path(configured).expanduser() if configured else Path.home() / ".acme" / "run-keys"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


class RunKey:
    """The secret key of one run: signs and verifies the files its jobs unpickle."""

    def __init__(self, run_id: str, secret: bytes) -> None:
        self.run_id = check_name(run_id, "run_id")
        self._secret = secret

    @staticmethod
    def path_of(run_id: str) -> Path:
        return key_dir() / f"{check_name(run_id, 'run_id')}.key"

    @classmethod
    def create(cls, run_id: str) -> RunKey:
        """A new key for ``run_id``, written with mode 0600 (an existing one is reused)."""
        path = cls.path_of(run_id)
        secret = secrets.token_bytes(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return cls.load(run_id)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secret)
        return cls(run_id, secret)

    @classmethod
    def load(cls, run_id: str) -> RunKey:
        """The key of ``run_id``; refused when missing or not private to this user."""
        path = cls.path_of(run_id)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError as exc:
            raise RunDirectoryError(
                f"the key of run {run_id} ({path}) cannot be read: {exc}. It is written when "
                "the run is submitted; the run's files can be trusted only with it") from exc
        with os.fdopen(fd, "rb") as fh:
            info = os.fstat(fh.fileno())
            if info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
                raise RunDirectoryError(f"the run key {path} is readable by others or not "
                                        "yours; refusing to trust it")
            secret = fh.read()
        if len(secret) < 16:
            raise RunDirectoryError(f"the run key {path} is too short")
        return cls(run_id, secret)

    @classmethod
    def remove(cls, run_id: str) -> None:
        with contextlib.suppress(OSError):
            cls.path_of(run_id).unlink()

    def tag(self, role: str, data: bytes) -> bytes:
        mac = hmac.new(self._secret, role.encode() + b"\0", hashlib.sha256)
        mac.update(data)
        return mac.digest()

    def write(self, base: Path, relative: str, data: bytes) -> None:
        """Write ``data`` signed as ``base / relative`` (atomically)."""
        path = confined(base, relative)
        write_bytes_atomic(path, self.tag(relative, data) + data)

    def read(self, base: Path, relative: str) -> bytes:
        """The bytes of the signed file ``base / relative``, verified.

        Raises
        ------
        TamperedFileError
            The file was not signed with this run's key for this name.
        """
        path = confined(base, relative)
        with open(path, "rb") as fh:
            blob = fh.read()
        data = blob[TAG_BYTES:]
        if len(blob) < TAG_BYTES or not hmac.compare_digest(blob[:TAG_BYTES],
                                                            self.tag(relative, data)):
            raise TamperedFileError(f"{path} was not written by run {self.run_id} (its "
                                    "authentication failed): refusing to unpickle it")
        return data
