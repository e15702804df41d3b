"""Atomic writes: a file is complete under its final name or absent."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from acme_core.fileio import is_partial, write_new_file, write_segments_atomic


def test_segments_are_written_in_order_without_joining(tmp_path):
    rng = np.random.default_rng(1)
    # more segments than one writev takes (1,024), some empty, one large array
    segments = [bytes(rng.integers(0, 256, size=k % 7, dtype=np.uint8)) for k in range(3000)]
    big = rng.normal(size=300_000)
    segments.append(big.view(np.uint8).data)
    path = tmp_path / "f.bin"
    write_new_file(str(path), segments)
    assert path.read_bytes() == b"".join(bytes(s) for s in segments)


def test_write_new_file_never_overwrites(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")
    with pytest.raises(FileExistsError):
        write_new_file(str(path), [b"new"])
    assert path.read_bytes() == b"old"


def test_atomic_write_replaces_and_leaves_no_partial(tmp_path):
    final = str(tmp_path / "r.bin")
    assert write_segments_atomic(final, [b"ab", b"cd"])
    assert write_segments_atomic(final, [b"xyz"])  # a rerun replaces the earlier result
    assert Path(final).read_bytes() == b"xyz"
    assert os.listdir(tmp_path) == ["r.bin"]


def test_a_failed_check_keeps_the_old_file_and_removes_the_new_one(tmp_path):
    final = str(tmp_path / "r.bin")
    write_segments_atomic(final, [b"good"])
    seen = []

    def check(path):
        seen.append(path)
        assert is_partial(os.path.basename(path)) and Path(path).read_bytes() == b"bad"
        return False

    assert not write_segments_atomic(final, [b"bad"], check)
    assert Path(final).read_bytes() == b"good"
    assert os.listdir(tmp_path) == ["r.bin"] and len(seen) == 1


def test_an_error_while_writing_leaves_nothing(tmp_path):
    final = str(tmp_path / "r.bin")

    with pytest.raises(TypeError):  # not bytes-like: fails after the file was created
        write_segments_atomic(final, [b"abc", object()])
    assert os.listdir(tmp_path) == []
