"""Stacked cases shared by the sharded-store tests (tests/storage/test_shards_stacked.py,
tests/storage/test_zarr_shards.py): functions, their ``result_shape``/``result_dtype``,
and the comparison of two stacked ``open_results``."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from acme_core import ParallelMap


def run_sharded(out: Path, func: Any, n: int, shard: Any, *args: Any, store: str,
                **options: Any) -> Any:
    """``compute()`` of ``func`` over ``range(n)`` on ``store`` with ``shard_calls=shard``."""
    with ParallelMap(func, list(range(n)), *args, output_dir=str(out), store=store,
                     store_options={"shard_calls": shard}, logfile=False, progress=False,
                     verbose=False, **options) as pmap:
        return pmap.compute()


def scalar(i: int) -> float:
    return float(i) / 2


def row(i: int) -> Any:
    return np.arange(3.0) + 10 * i


def plane(i: int) -> Any:
    """A (2, 3) slot, stacked along the middle axis of ``(2, None, 3)``; call 0 all zeros."""
    return np.arange(6.0).reshape(2, 3) * i


def bad_slot(i: int) -> Any:
    """Call 4 returns the wrong shape, call 9 a value the dtype cast changes."""
    if i == 4:
        return np.zeros(5)
    if i == 9:
        return np.array([1.5, 2.0, 3.0])
    return np.arange(3) + i


def die_once_then_fail(i: int, marker: str, flag: str) -> Any:
    """Call 7 kills its worker once (mid-shard); call 25 fails until ``flag`` exists."""
    if i == 25 and not os.path.exists(flag):
        raise ValueError("call 25 fails this time")
    if i == 7 and not os.path.exists(marker):
        Path(marker).touch()
        os._exit(1)
    return np.arange(3.0) + i, np.int64(i)


def cases(with_extras: Callable[[int], Any]) -> dict[str, tuple[Any, tuple[Any, ...], str]]:
    """Case name -> (function, result_shape, result_dtype)."""
    return {
        "scalar": (scalar, (None,), "float64"),
        "axis0": (row, (None, 3), "float64"),
        "middle": (plane, (2, None, 3), "float64"),
        "cast": (row, (None, 3), "float32"),
        "extras": (with_extras, (None, 3), "float64"),
        "failing": (bad_slot, (None, 3), "int16"),
    }


def assert_same_stacked(a: Any, b: Any) -> None:
    """The same ``open_results`` of two stacked runs: values, dtype, mask, extras."""
    if isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b)
        assert_same_stacked(a[0], b[0])
        for x, y in zip(a[1:], b[1:], strict=True):
            assert type(x) is type(y) and np.array_equal(x, y)
        return
    assert type(a) is type(b) and a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(np.ma.getdata(a), np.ma.getdata(b))
    np.testing.assert_array_equal(np.ma.getmaskarray(a), np.ma.getmaskarray(b))
