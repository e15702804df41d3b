"""Removing old ``ACME_*`` run directories (``cleanup_threshold_days``)."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

log = logging.getLogger("acme")

#: more run directories than this in one place earns a warning
CROWDED = 20


def acme_dirs(base: Path) -> list[Path]:
    try:
        return sorted(p for p in base.iterdir() if p.is_dir() and p.name.startswith("ACME_"))
    except OSError as exc:
        log.warning("Could not scan %s for old ACME directories: %s", base, exc)
        return []


def age_days(path: Path, now: float | None = None) -> int:
    return int(((now or time.time()) - path.stat().st_mtime) // 86400)


def cleanup_old_runs(base: Path, threshold_days: int | None, interactive: bool) -> list[Path]:
    """Delete ``ACME_*`` directories in ``base`` older than ``threshold_days`` (0: all).

    With ``threshold_days=None`` nothing is deleted; a crowded ``base`` earns a warning.
    Returns the deleted directories.
    """
    dirs = acme_dirs(base)
    if threshold_days is None:
        if len(dirs) > CROWDED:
            log.warning("Found %d ACME directories in %s (set cleanup_threshold_days to remove "
                        "old ones)", len(dirs), base)
        return []
    log.info("Cleanup requested with threshold: %d days", threshold_days)
    old = old_runs(base, threshold_days, dirs)
    if not old:
        log.info("No ACME directories need cleanup in %s", base)
        return []
    if interactive:
        from acme_core.prompts import yes_no

        if not yes_no(f"Do you want to proceed removing {len(old)} directories?", default=False):
            return []
    return remove_runs(old)


def old_runs(base: Path, threshold_days: int, dirs: list[Path] | None = None) -> list[Path]:
    """The ``ACME_*`` directories in ``base`` (or of ``dirs``) older than ``threshold_days``
    (0: all)."""
    dirs = acme_dirs(base) if dirs is None else dirs
    return [d for d in dirs if threshold_days == 0 or age_days(d) > threshold_days]


def remove_runs(old: list[Path]) -> list[Path]:
    """Delete the directories ``old``; return those deleted (a failure is logged).

    The key of a detached run in one of them (``~/.acme/run-keys``) goes with it.
    """
    from acme_core.detached import forget_key

    deleted = []
    for d in old:
        try:
            days = age_days(d)
            forget_key(d)
            shutil.rmtree(d)
            deleted.append(d)
            log.info("Deleted old ACME directory %s (age: %d days)", d, days)
        except OSError as exc:
            log.warning("Could not delete %s: %s", d, exc)
    return deleted
