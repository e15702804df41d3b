"""``cleanup_threshold_days``: removing old ``ACME_*`` run directories."""

from __future__ import annotations

import os
import time

from acme_core import ParallelMap


def f(x):
    return x


def _make(base, name, age_days):
    path = base / name
    path.mkdir()
    stamp = time.time() - age_days * 86400
    os.utime(path, (stamp, stamp))
    return path


def test_old_run_directories_are_deleted(in_tmp, client):
    old = _make(in_tmp, "ACME_20200101-000000-000000", 5)
    recent = _make(in_tmp, "ACME_20260101-000000-000000", 1)
    other = _make(in_tmp, "keep_me", 50)
    with ParallelMap(f, [1, 2], cleanup_threshold_days=2) as pmap:
        pmap.compute()
    assert not old.exists()
    assert recent.exists() and other.exists()
    new = [p for p in in_tmp.glob("ACME_*") if p != recent]
    assert len(new) == 1 and (new[0] / "f.h5").exists()


def test_zero_deletes_every_run_directory(in_tmp):
    from acme_core.housekeeping import cleanup_old_runs

    dirs = [_make(in_tmp, f"ACME_2020010{i}-000000-000000", 0) for i in range(3)]
    assert sorted(cleanup_old_runs(in_tmp, 0, interactive=False)) == dirs
    assert list(in_tmp.iterdir()) == []


def test_none_deletes_nothing(in_tmp):
    from acme_core.housekeeping import cleanup_old_runs

    dirs = [_make(in_tmp, f"ACME_2020{i:04d}-000000-000000", 30) for i in range(25)]
    assert cleanup_old_runs(in_tmp, None, interactive=False) == []
    assert all(d.exists() for d in dirs)


def test_threshold_ignored_with_explicit_output_dir(in_tmp, client):
    old = _make(in_tmp, "ACME_20200101-000000-000000", 5)
    with ParallelMap(f, [1, 2], output_dir="run", cleanup_threshold_days=0) as pmap:
        pmap.compute()
    assert old.exists()
